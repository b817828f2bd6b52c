package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

// A database at schema 4 (the release before personal access tokens) is migrated at Open:
// its robots stay, and tokens can be created.
func TestUpgradeFromSchema4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.MigrateSteps(ctx, db, sqlite.Migrations[:4]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO robots VALUES ('rob_1', 'ci', zeroblob(32), '[]', '{}', 1, NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	st, err := (&sqlite.Config{Path: path}).OpenStore(ctx, storage.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if r, err := st.Robots().Get(ctx, "ci"); err != nil || r.ID != "rob_1" {
		t.Fatalf("robot after upgrade = %+v, %v", r, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	p := pats.PAT{ID: "pid_1", Owner: "alice", Name: "ci", SecretHash: pats.HashSecret("pat_x"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := st.PATs().Create(ctx, p); err != nil {
		t.Fatalf("tokens after upgrade: %v", err)
	}
	if got, err := st.PATs().ByHash(ctx, p.SecretHash); err != nil || got.ID != p.ID {
		t.Fatalf("ByHash after upgrade = %+v, %v", got, err)
	}
}
