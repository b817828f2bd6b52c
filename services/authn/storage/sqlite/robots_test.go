package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

// A database at schema 2 (the release before robots) is migrated at Open: its sessions and
// lockout counts stay, and robots can be created.
func TestUpgradeFromSchema2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.MigrateSteps(ctx, db, sqlite.Migrations[:2]); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`INSERT INTO sessions VALUES ('ses_old', zeroblob(32), 'alice', 'htpasswd', 'registry.local', 'docker', 1, 1, '', 9000000000000000, 9000000000000000)`,
		`INSERT INTO login_failures VALUES ('addr:192.0.2.1', 3, 1, 1, 9000000000000000, 1)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	_ = db.Close()
	st, err := (&sqlite.Config{Path: path}).Open(ctx, sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if s, err := st.Get(ctx, "ses_old"); err != nil || s.Subject != "alice" {
		t.Fatalf("Get(ses_old) = %+v, %v; want alice's session", s, err)
	}
	if es, err := st.(lockout.Provider).LockoutStore().Get(ctx, []string{"addr:192.0.2.1"}); err != nil || len(es) != 1 || es[0].Failures != 3 {
		t.Fatalf("lockout entry after upgrade = %+v, %v", es, err)
	}
	rs := st.(robots.Provider).RobotStore()
	r := robots.Robot{ID: "rob_1", Name: "ci", KeyHash: robots.HashKey("pcp_x"), CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := rs.Create(ctx, r); err != nil {
		t.Fatalf("robots after upgrade: %v", err)
	}
}
