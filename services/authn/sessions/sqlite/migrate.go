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
}

// migrate brings the schema to len(migrations) in one transaction (all steps or none), and
// refuses a database that a newer binary has migrated further.
func migrate(ctx context.Context, db *sql.DB) error {
	return migrateTo(ctx, db, migrations)
}

func migrateTo(ctx context.Context, db *sql.DB, steps []string) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock): concurrent starters serialize
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&have); err != nil {
		return fmt.Errorf("migrate: reading schema_version: %w", err)
	}
	if have > len(steps) {
		return &sessions.SchemaTooNewError{Have: have, Known: len(steps)}
	}
	if have == len(steps) {
		return nil
	}
	for i := have; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate: step %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, len(steps)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
