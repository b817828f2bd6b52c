package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
)

// TestStart needs Debian's postgresql installed: it starts a real server, gives out two
// separate databases, and the server answers queries on both.
func TestStart(t *testing.T) {
	srv := pgtest.StartServer(t)
	a, b := srv.NewDatabase(t), srv.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share a DSN: %s", a)
	}
	ctx := context.Background()
	for _, dsn := range []string{a, b} {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		var db string
		if err := c.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		_ = c.Close(ctx)
		t.Logf("%s -> %s", dsn, db)
	}
}
