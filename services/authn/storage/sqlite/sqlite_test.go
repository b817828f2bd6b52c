package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/storetest"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
	"github.com/portcullis-dev/portcullis/services/authn/storage/storagetest"
)

// The whole state store (every part of storage.Store) through its one conformance suite.
func TestAuthnStore(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, func(t *testing.T) storage.Store {
		st, err := (&sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")}).OpenStore(context.Background(), storage.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// Two replicas opening one SQLite file (each its own pool) never grant more attempts than
// the threshold between them.
func TestLockoutStoreShared(t *testing.T) {
	t.Parallel()
	lockouttest.RunShared(t, func(t *testing.T) (lockout.Store, lockout.Store) {
		path := filepath.Join(t.TempDir(), "sessions.db")
		var out [2]lockout.Store
		for i := range out {
			st, err := (&sqlite.Config{Path: path}).Open(context.Background(), sessions.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close(context.Background()) })
			out[i] = st.(lockout.Provider).LockoutStore()
		}
		return out[0], out[1]
	})
}

// A database at schema 1 (the release before the lockout) is migrated at Open: its sessions
// stay, and the lockout table is there.
func TestUpgradeFromSchema1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlite.MigrateSteps(ctx, db, sqlite.Migrations[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO sessions VALUES ('ses_old', zeroblob(32), 'alice', 'htpasswd', 'registry.local', 'docker', 1, 1, '', 9000000000000000, 9000000000000000)`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	st, err := (&sqlite.Config{Path: path}).Open(ctx, sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if s, err := st.Get(ctx, "ses_old"); err != nil || s.Subject != "alice" || s.FingerprintSet {
		t.Fatalf("Get(ses_old) = %+v, %v; want alice's session, without a fingerprint", s, err)
	}
	ls := st.(lockout.Provider).LockoutStore()
	if _, err := ls.RecordFailure(ctx, "addr:192.0.2.1", time.Now(), lockout.Policy{MaxFailures: 1, BaseDelay: time.Second, MaxDelay: time.Second, Window: time.Minute}); err != nil {
		t.Fatalf("lockout after upgrade: %v", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		path, want string
	}{
		{"", "path: is required"},
		{":memory:", "must be a file path"},
		{"file:x.db?mode=memory", "must be a file path"},
		{"/data/x.db?cache=shared", "must not contain '?'"},
		{"/data/sessions.db", ""},
	} {
		errs := (&sqlite.Config{Path: tc.path}).Validate()
		if tc.want == "" {
			if len(errs) != 0 {
				t.Errorf("%q: %v", tc.path, errs)
			}
			continue
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.path, errs, tc.want)
		}
	}
}

// Reopening a migrated file is a no-op; a file a newer binary migrated is refused at Open with
// a message that says so, and left untouched.
func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sessions.db")
	c := &sqlite.Config{Path: path}
	for range 2 {
		st, err := c.Open(ctx, sessions.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode: %v %v, want 0600", fi.Mode(), err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var mode string
	if err := db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(sqlite.Migrations) {
		t.Fatalf("schema_version = %d, %v; want %d", v, err, len(sqlite.Migrations))
	}
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()

	_, err = c.Open(ctx, sessions.Deps{})
	var tooNew *sessions.SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Have != 99 || tooNew.Known != len(sqlite.Migrations) || !strings.Contains(err.Error(), "newer than this binary") {
		t.Fatalf("Open(newer schema) = %v, want SchemaTooNewError{99, %d}", err, len(sqlite.Migrations))
	}
}

func TestMigrationRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "sessions.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	storetest.MigrationRollsBack(t, func(steps []string) error { return sqlite.MigrateSteps(ctx, db, steps) },
		func(q string) (n int, err error) {
			err = db.QueryRowContext(ctx, q).Scan(&n)
			return n, err
		})
}

func TestOpenMissingDir(t *testing.T) {
	t.Parallel()
	c := &sqlite.Config{Path: filepath.Join(t.TempDir(), "no", "such", "sessions.db")}
	if _, err := c.Open(context.Background(), sessions.Deps{}); err == nil {
		t.Fatal("Open in a missing directory succeeded")
	}
}
