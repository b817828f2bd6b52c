package deploy_test

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
)

// TestPostgresSetup runs deploy/postgres/portcullis.sql on a real PostgreSQL (Debian's, via
// pgtest) and opens the session store as the role it creates: the role can migrate and use
// its own database and nothing more.
func TestPostgresSetup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	super, err := url.Parse(pgtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	super.Path = "/postgres"
	sql, err := os.ReadFile("postgres/portcullis.sql")
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, super.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	for _, stmt := range statements(string(sql)) {
		if _, err := c.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	dsn := *super
	dsn.User, dsn.Path = url.User("portcullis"), "/portcullis"
	cfg := postgres.Config{DSN: dsn.String()}
	st, err := cfg.Open(ctx, sessions.Deps{})
	if err != nil {
		t.Fatalf("opening the store as the portcullis role: %v", err)
	}
	defer st.Close(context.Background())
	now := time.Now().UTC().Truncate(time.Microsecond)
	s := sessions.Session{ID: "ses_setup", TokenHash: sessions.HashToken("pcr_setup"), Subject: "alice",
		CreatedAt: now, LastUsedAt: now, IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)}
	if err := st.Create(ctx, s); err != nil {
		t.Fatalf("create a session as the portcullis role: %v", err)
	}

	// Least privilege: the role cannot reach beyond its database.
	as, err := pgx.Connect(ctx, dsn.String())
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close(context.Background())
	for _, stmt := range []string{"CREATE DATABASE other", "CREATE ROLE other", "ALTER ROLE portcullis SUPERUSER"} {
		if _, err := as.Exec(ctx, stmt); err == nil {
			t.Errorf("the portcullis role could run %q", stmt)
		}
	}
}

// statements splits the script into its statements, dropping comment lines.
func statements(script string) []string {
	var b strings.Builder
	for _, line := range strings.Split(script, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			b.WriteString(line + "\n")
		}
	}
	var out []string
	for _, s := range strings.Split(b.String(), ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
