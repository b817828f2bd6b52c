package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// migrations are the schema steps in order; migrations[i] brings the schema to version i+1.
// Append only: a released step is never edited, a change is a new step.
var migrations = []string{
	// 1: sessions, looked up by token hash (unique), listed by (created_at, id), per subject.
	`CREATE TABLE sessions (
		id               text        NOT NULL PRIMARY KEY,
		token_hash       bytea       NOT NULL UNIQUE,
		subject          text        NOT NULL,
		backend          text        NOT NULL,
		service          text        NOT NULL,
		client_id        text        NOT NULL,
		created_at       timestamptz NOT NULL,
		last_used_at     timestamptz NOT NULL,
		last_remote_addr text        NOT NULL,
		idle_expires_at  timestamptz NOT NULL,
		expires_at       timestamptz NOT NULL
	);
	CREATE INDEX sessions_created ON sessions (created_at, id);
	CREATE INDEX sessions_subject ON sessions (subject, created_at, id);
	CREATE INDEX sessions_expires ON sessions (expires_at);
	CREATE INDEX sessions_idle_expires ON sessions (idle_expires_at);`,
	// 2: failed-login counts of the lockout (services/authn/lockout), by key.
	`CREATE TABLE login_failures (
		key          text        NOT NULL PRIMARY KEY,
		failures     integer     NOT NULL,
		window_start timestamptz NOT NULL,
		locked_until timestamptz NOT NULL,
		expires_at   timestamptz NOT NULL,
		updated_at   timestamptz NOT NULL
	);
	CREATE INDEX login_failures_expires ON login_failures (expires_at);`,
	// 3: robot accounts (services/authn/robots): looked up by key hash, listed by name (in
	// byte order, which page tokens continue in whatever the database's collation); a NULL
	// time is "never".
	`CREATE TABLE robots (
		id           text        NOT NULL PRIMARY KEY,
		name         text        COLLATE "C" NOT NULL UNIQUE,
		key_hash     bytea       NOT NULL UNIQUE,
		group_names  jsonb       NOT NULL,
		labels       jsonb       NOT NULL,
		created_at   timestamptz NOT NULL,
		expires_at   timestamptz,
		last_used_at timestamptz,
		revoked_at   timestamptz
	);`,
	// 4: what a session was issued against (the account's credential fingerprint); NULL for
	// sessions issued before, recorded at their first refresh. Adding a nullable column
	// without a default rewrites no rows.
	`ALTER TABLE sessions ADD COLUMN account_fingerprint text;`,
	// 5: personal access tokens (services/authn/pats): looked up by secret hash, listed by
	// owner and name (unique together, in byte order whatever the database's collation).
	`CREATE TABLE pats (
		id           text        NOT NULL PRIMARY KEY,
		owner        text        COLLATE "C" NOT NULL,
		name         text        COLLATE "C" NOT NULL,
		secret_hash  bytea       NOT NULL UNIQUE,
		scopes       jsonb       NOT NULL,
		created_at   timestamptz NOT NULL,
		expires_at   timestamptz NOT NULL,
		last_used_at timestamptz,
		UNIQUE (owner, name)
	);`,
	// 6: sign-in: device flows (services/authn/device), found by device code hash or user code
	// (both unique), the poll interval in µs; browser sessions (services/authn/websessions),
	// found by token hash, removed by subject; people known through the IdP
	// (services/authn/ssoaccounts), by subject (listed in byte order whatever the database's
	// collation) and by the IdP's subject. A NULL time is "none", as is a NULL sealed refresh
	// token.
	`CREATE TABLE device_authorizations (
		device_code_hash bytea       NOT NULL PRIMARY KEY,
		user_code        text        NOT NULL UNIQUE,
		client_id        text        NOT NULL,
		service          text        NOT NULL,
		scopes           jsonb       NOT NULL,
		client_addr      text        NOT NULL,
		user_agent       text        NOT NULL,
		created_at       timestamptz NOT NULL,
		expires_at       timestamptz NOT NULL,
		interval_us      bigint      NOT NULL,
		last_poll_at     timestamptz,
		state            text        NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
		subject          text        NOT NULL,
		backend          text        NOT NULL,
		fingerprint      text        NOT NULL,
		decided_at       timestamptz,
		decided_addr     text        NOT NULL
	);
	CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);
	CREATE TABLE web_sessions (
		id             text        NOT NULL PRIMARY KEY,
		token_hash     bytea       NOT NULL UNIQUE,
		subject        text        NOT NULL,
		backend        text        NOT NULL,
		fingerprint    text        NOT NULL,
		idp_session_id text        NOT NULL,
		remote_addr    text        NOT NULL,
		user_agent     text        NOT NULL,
		created_at     timestamptz NOT NULL,
		expires_at     timestamptz NOT NULL
	);
	CREATE INDEX web_sessions_subject ON web_sessions (subject);
	CREATE INDEX web_sessions_idp_session ON web_sessions (idp_session_id);
	CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
	CREATE TABLE sso_accounts (
		subject              text        COLLATE "C" NOT NULL PRIMARY KEY,
		idp_subject          text        NOT NULL,
		group_names          jsonb       NOT NULL,
		labels               jsonb       NOT NULL,
		sealed_refresh_token bytea,
		created_at           timestamptz NOT NULL,
		revalidated_at       timestamptz NOT NULL
	);
	CREATE INDEX sso_accounts_idp_subject ON sso_accounts (idp_subject, subject);`,
}

// migrateLock is the advisory lock key that serializes replicas migrating at the same time.
const migrateLock = 0x706f7274637573 // "portcus"

// migrate brings the schema to len(steps) in one transaction (PostgreSQL DDL is transactional:
// all steps or none).
func migrate(ctx context.Context, pool *pgxpool.Pool, steps []string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		return sessions.Migrate(ctx, migrationTx{tx}, steps)
	})
}

type migrationTx struct{ tx pgx.Tx }

func (m migrationTx) Exec(ctx context.Context, stmt string) error {
	_, err := m.tx.Exec(ctx, stmt)
	return err
}

func (m migrationTx) QueryInt(ctx context.Context, query string) (n int, err error) {
	err = m.tx.QueryRow(ctx, query).Scan(&n)
	return n, err
}
