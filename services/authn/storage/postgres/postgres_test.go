package postgres_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/storetest"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/storage/storagetest"
)

// The store against a real PostgreSQL (Debian's postgresql package; the test fails without it).
func TestStore(t *testing.T) {
	t.Parallel()
	srv := pgtest.StartServer(t)
	// The whole state store (every part of storage.Store) through its one conformance suite.
	t.Run("AuthnStore", func(t *testing.T) {
		t.Parallel()
		storagetest.Run(t, func(t *testing.T) storage.Store {
			st, err := (&postgres.Config{DSN: srv.NewDatabase(t), MaxConns: 4}).OpenStore(context.Background(), storage.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		})
	})
	t.Run("LockoutShared", func(t *testing.T) {
		t.Parallel()
		lockouttest.RunShared(t, func(t *testing.T) (lockout.Store, lockout.Store) {
			dsn := srv.NewDatabase(t)
			var out [2]lockout.Store
			for i := range out { // two replicas: a pool each
				st, err := (&postgres.Config{DSN: dsn, MaxConns: 4}).Open(context.Background(), sessions.Deps{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close(context.Background()) })
				out[i] = st.(lockout.Provider).LockoutStore()
			}
			return out[0], out[1]
		})
	})
	t.Run("UpgradeFromSchema5", func(t *testing.T) {
		t.Parallel()
		testUpgradeFromSchema5(t, srv)
	})
	t.Run("UpgradeFromSchema4", func(t *testing.T) {
		t.Parallel()
		testUpgradeFromSchema4(t, srv)
	})
	t.Run("UpgradeFromSchema2", func(t *testing.T) {
		t.Parallel()
		testUpgradeFromSchema2(t, srv)
	})
	t.Run("UpgradeFromSchema1", func(t *testing.T) {
		t.Parallel()
		testUpgradeFromSchema1(t, srv)
	})
	t.Run("Migrations", func(t *testing.T) {
		t.Parallel()
		testMigrations(t, srv)
	})
	t.Run("MigrationRollsBack", func(t *testing.T) {
		t.Parallel()
		testMigrationRollsBack(t, srv)
	})
	t.Run("DSNFile", func(t *testing.T) {
		t.Parallel()
		f := filepath.Join(t.TempDir(), "dsn")
		if err := os.WriteFile(f, []byte(srv.NewDatabase(t)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := (&postgres.Config{DSNFile: f}).Open(context.Background(), sessions.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Close(context.Background())
	})
}

// Replicas starting together migrate once; reopening is a no-op; a database a newer binary
// migrated is refused at Open with a message that says so.
func testMigrations(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	c := &postgres.Config{DSN: dsn}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			st, err := c.Open(ctx, sessions.Deps{})
			if err == nil {
				err = st.Close(ctx)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Open: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v, rows int
	if err := conn.QueryRow(ctx, `SELECT max(version), count(*) FROM schema_version`).Scan(&v, &rows); err != nil || v != len(postgres.Migrations) || rows != 1 {
		t.Fatalf("schema_version = %d (%d rows), %v; want %d (1 row)", v, rows, err, len(postgres.Migrations))
	}
	newer := len(postgres.Migrations) + 1
	if _, err := conn.Exec(ctx, `UPDATE schema_version SET version = $1`, newer); err != nil {
		t.Fatal(err)
	}
	_, err = c.Open(ctx, sessions.Deps{})
	var tooNew *sessions.SchemaTooNewError
	if !errors.As(err, &tooNew) || tooNew.Have != newer || tooNew.Known != len(postgres.Migrations) {
		t.Fatalf("Open(newer schema) = %v, want SchemaTooNewError{%d, %d}", err, newer, len(postgres.Migrations))
	}
}

// A database at schema 1 (the release before the lockout) is migrated at Open: its sessions
// stay, and the lockout table is there.
func testUpgradeFromSchema1(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateSteps(ctx, pool, postgres.Migrations[:1]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO sessions VALUES ('ses_old', decode(repeat('00', 32), 'hex'), 'alice', 'htpasswd',
		'registry.local', 'docker', now(), now(), '', now() + interval '1 day', now() + interval '1 day')`); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	st, err := (&postgres.Config{DSN: dsn}).Open(ctx, sessions.Deps{})
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

// A database at schema 2 (the release before robots) is migrated at Open: its sessions and
// lockout counts stay, and robots can be created.
func testUpgradeFromSchema2(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateSteps(ctx, pool, postgres.Migrations[:2]); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		`INSERT INTO sessions VALUES ('ses_old', decode(repeat('00', 32), 'hex'), 'alice', 'htpasswd',
			'registry.local', 'docker', now(), now(), '', now() + interval '1 day', now() + interval '1 day')`,
		`INSERT INTO login_failures VALUES ('addr:192.0.2.1', 3, now(), now(), now() + interval '1 day', now())`,
	} {
		if _, err := pool.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	pool.Close()
	st, err := (&postgres.Config{DSN: dsn}).Open(ctx, sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if s, err := st.Get(ctx, "ses_old"); err != nil || s.Subject != "alice" || s.FingerprintSet {
		t.Fatalf("Get(ses_old) = %+v, %v; want alice's session, without a fingerprint", s, err)
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

// A database at schema 4 (the release before personal access tokens) is migrated at Open:
// its robots stay, and tokens can be created.
func testUpgradeFromSchema4(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateSteps(ctx, pool, postgres.Migrations[:4]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO robots VALUES ('rob_1', 'ci', decode(repeat('00', 32), 'hex'), '[]', '{}', now(), NULL, NULL, NULL)`); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	st, err := (&postgres.Config{DSN: dsn}).OpenStore(ctx, storage.Deps{})
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

func testMigrationRollsBack(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	storetest.MigrationRollsBack(t, func(steps []string) error { return postgres.MigrateSteps(ctx, pool, steps) },
		func(q string) (n int, err error) {
			err = pool.QueryRow(ctx, q).Scan(&n)
			return n, err
		})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-pw"
	for _, tc := range []struct {
		name string
		c    postgres.Config
		want []string
	}{
		{"dsn", postgres.Config{DSN: "postgres://u:" + secret + "@db/portcullis"}, nil},
		{"dsn_file", postgres.Config{DSNFile: "/run/secrets/dsn", MaxConns: 20}, nil},
		{"neither", postgres.Config{}, []string{"dsn: one of dsn or dsn_file is required"}},
		{"both, bad max_conns", postgres.Config{DSN: "postgres://db/x", DSNFile: "/f", MaxConns: -1},
			[]string{"dsn: set dsn or dsn_file, not both", "max_conns: must not be negative"}},
		{"unparsable", postgres.Config{DSN: "postgres://u:" + secret + "@db:notaport/x"}, []string{"not a valid PostgreSQL connection string"}},
	} {
		errs := tc.c.Validate()
		if len(errs) != len(tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, errs, tc.want)
			continue
		}
		for i, e := range errs {
			if !strings.Contains(e.Error(), tc.want[i]) || strings.Contains(e.Error(), secret) {
				t.Errorf("%s: %q, want %q and no password", tc.name, e, tc.want[i])
			}
		}
	}
}

// A DSN that cannot be used is an Open error that does not show the password.
func TestOpenDoesNotLeakDSN(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "dsn")
	const secret = "s3cr3t-pw"
	if err := os.WriteFile(f, []byte("postgres://u:"+secret+"@db:notaport/x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&postgres.Config{DSNFile: f}).Open(context.Background(), sessions.Deps{})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Open = %v; want an error without the password", err)
	}
}
