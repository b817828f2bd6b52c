package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

// A database at schema 5 (the release before sign-in) is migrated at Open: its personal
// access tokens stay, and device flows, web sessions and SSO accounts can be stored.
func testUpgradeFromSchema5(t *testing.T, srv *pgtest.Server) {
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.MigrateSteps(ctx, pool, postgres.Migrations[:5]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO pats VALUES ('pid_1', 'alice', 'ci', decode(repeat('00', 32), 'hex'), '[]', now(), now() + interval '1 day', NULL)`); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	st, err := (&postgres.Config{DSN: dsn}).OpenStore(ctx, storage.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if ps, err := st.PATs().List(ctx, "alice"); err != nil || len(ps) != 1 || ps[0].ID != "pid_1" {
		t.Fatalf("tokens after upgrade = %+v, %v", ps, err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := st.Devices().Create(ctx, device.Authorization{DeviceCodeHash: device.HashCode("x"), UserCode: "BCDFGHJK",
		CreatedAt: now, ExpiresAt: now.Add(time.Minute), Interval: 5 * time.Second, State: device.Pending}); err != nil {
		t.Fatalf("device flows after upgrade: %v", err)
	}
	if err := st.WebSessions().Create(ctx, websessions.Session{ID: "wss_1", TokenHash: websessions.HashToken("pcw_x"),
		Subject: "alice", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatalf("web sessions after upgrade: %v", err)
	}
	if err := st.SSOAccounts().Put(ctx, ssoaccounts.Account{Subject: "alice", IDPSubject: "idp-1", CreatedAt: now, RevalidatedAt: now}); err != nil {
		t.Fatalf("sso accounts after upgrade: %v", err)
	}
}
