package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// migrations are the schema steps in order; migrations[i] brings the schema to version i+1.
// Append only: a released step is never edited, a change is a new step.
var migrations = []string{
	// 1: sessions, looked up by token hash (unique), listed by (created_at, id), per subject.
	`CREATE TABLE sessions (
		id               TEXT    NOT NULL PRIMARY KEY,
		token_hash       BLOB    NOT NULL UNIQUE,
		subject          TEXT    NOT NULL,
		backend          TEXT    NOT NULL,
		service          TEXT    NOT NULL,
		client_id        TEXT    NOT NULL,
		created_at       INTEGER NOT NULL,
		last_used_at     INTEGER NOT NULL,
		last_remote_addr TEXT    NOT NULL,
		idle_expires_at  INTEGER NOT NULL,
		expires_at       INTEGER NOT NULL
	);
	CREATE INDEX sessions_created ON sessions (created_at, id);
	CREATE INDEX sessions_subject ON sessions (subject, created_at, id);
	CREATE INDEX sessions_expires ON sessions (expires_at);
	CREATE INDEX sessions_idle_expires ON sessions (idle_expires_at);`,
	// 2: failed-login counts of the lockout (services/authn/lockout), by key; times in µs.
	`CREATE TABLE login_failures (
		key          TEXT    NOT NULL PRIMARY KEY,
		failures     INTEGER NOT NULL,
		window_start INTEGER NOT NULL,
		locked_until INTEGER NOT NULL,
		expires_at   INTEGER NOT NULL,
		updated_at   INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX login_failures_expires ON login_failures (expires_at);`,
	// 3: robot accounts (services/authn/robots): looked up by key hash, listed by name; a
	// NULL time is "never". Groups and labels are JSON. Times in µs.
	`CREATE TABLE robots (
		id           TEXT    NOT NULL PRIMARY KEY,
		name         TEXT    NOT NULL UNIQUE,
		key_hash     BLOB    NOT NULL UNIQUE,
		group_names  TEXT    NOT NULL,
		labels       TEXT    NOT NULL,
		created_at   INTEGER NOT NULL,
		expires_at   INTEGER,
		last_used_at INTEGER,
		revoked_at   INTEGER
	);`,
	// 4: what a session was issued against (the account's credential fingerprint); NULL for
	// sessions issued before, recorded at their first refresh.
	`ALTER TABLE sessions ADD COLUMN account_fingerprint TEXT;`,
	// 5: personal access tokens (services/authn/pats): looked up by secret hash, listed by
	// owner and name (unique together). Scopes are JSON. Times in µs; expires_at is required.
	`CREATE TABLE pats (
		id           TEXT    NOT NULL PRIMARY KEY,
		owner        TEXT    NOT NULL,
		name         TEXT    NOT NULL,
		secret_hash  BLOB    NOT NULL UNIQUE,
		scopes       TEXT    NOT NULL,
		created_at   INTEGER NOT NULL,
		expires_at   INTEGER NOT NULL,
		last_used_at INTEGER,
		UNIQUE (owner, name)
	);`,
	// 6: sign-in: device flows (services/authn/device), found by device code hash or user code
	// (both unique), the poll interval in µs; browser sessions (services/authn/websessions),
	// found by token hash, removed by subject; people known through the IdP
	// (services/authn/ssoaccounts), by subject and by the IdP's subject. Lists and labels are
	// JSON; a NULL time is "none", as is a NULL sealed refresh token. Times in µs.
	`CREATE TABLE device_authorizations (
		device_code_hash BLOB    NOT NULL PRIMARY KEY,
		user_code        TEXT    NOT NULL UNIQUE,
		client_id        TEXT    NOT NULL,
		service          TEXT    NOT NULL,
		scopes           TEXT    NOT NULL,
		client_addr      TEXT    NOT NULL,
		user_agent       TEXT    NOT NULL,
		created_at       INTEGER NOT NULL,
		expires_at       INTEGER NOT NULL,
		interval_us      INTEGER NOT NULL,
		last_poll_at     INTEGER,
		state            TEXT    NOT NULL CHECK (state IN ('pending', 'approved', 'denied')),
		subject          TEXT    NOT NULL,
		backend          TEXT    NOT NULL,
		fingerprint      TEXT    NOT NULL,
		decided_at       INTEGER,
		decided_addr     TEXT    NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX device_authorizations_expires ON device_authorizations (expires_at);
	CREATE TABLE web_sessions (
		id             TEXT    NOT NULL PRIMARY KEY,
		token_hash     BLOB    NOT NULL UNIQUE,
		subject        TEXT    NOT NULL,
		backend        TEXT    NOT NULL,
		fingerprint    TEXT    NOT NULL,
		idp_session_id TEXT    NOT NULL,
		remote_addr    TEXT    NOT NULL,
		user_agent     TEXT    NOT NULL,
		created_at     INTEGER NOT NULL,
		expires_at     INTEGER NOT NULL
	);
	CREATE INDEX web_sessions_subject ON web_sessions (subject);
	CREATE INDEX web_sessions_idp_session ON web_sessions (idp_session_id);
	CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
	CREATE TABLE sso_accounts (
		subject              TEXT    NOT NULL PRIMARY KEY,
		idp_subject          TEXT    NOT NULL,
		group_names          TEXT    NOT NULL,
		labels               TEXT    NOT NULL,
		sealed_refresh_token BLOB,
		created_at           INTEGER NOT NULL,
		revalidated_at       INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX sso_accounts_idp_subject ON sso_accounts (idp_subject, subject);`,
}

// migrate brings the schema to len(steps) in one transaction: all steps or none.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock): concurrent starters serialize
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := sessions.Migrate(ctx, migrationTx{tx}, steps); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

type migrationTx struct{ tx *sql.Tx }

func (m migrationTx) Exec(ctx context.Context, stmt string) error {
	_, err := m.tx.ExecContext(ctx, stmt)
	return err
}

func (m migrationTx) QueryInt(ctx context.Context, query string) (n int, err error) {
	err = m.tx.QueryRowContext(ctx, query).Scan(&n)
	return n, err
}
