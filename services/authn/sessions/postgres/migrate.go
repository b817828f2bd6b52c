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
}

// migrateLock is the advisory lock key that serializes replicas migrating at the same time.
const migrateLock = 0x706f7274637573 // "portcus"

// migrate brings the schema to len(steps) in one transaction (PostgreSQL DDL is transactional:
// all steps or none), and refuses a database a newer binary has migrated further.
func migrate(ctx context.Context, pool *pgxpool.Pool, steps []string) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&have); err != nil {
			return fmt.Errorf("migrate: reading schema_version: %w", err)
		}
		if have > len(steps) {
			return &sessions.SchemaTooNewError{Have: have, Known: len(steps)}
		}
		if have == len(steps) {
			return nil
		}
		for i := have; i < len(steps); i++ {
			if _, err := tx.Exec(ctx, steps[i]); err != nil {
				return fmt.Errorf("migrate: step %d: %w", i+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, len(steps)); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	})
}
