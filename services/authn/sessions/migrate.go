package sessions

import (
	"context"
	"fmt"
)

// MigrationTx is what Migrate needs of a backend's open transaction. The backend begins it,
// takes its own lock first (concurrent starters must serialize), commits it when Migrate
// returns nil and rolls it back otherwise, so the steps apply all or not at all.
type MigrationTx interface {
	Exec(ctx context.Context, stmt string) error
	QueryInt(ctx context.Context, query string) (int, error)
}

// Migrate brings the schema to len(steps): steps[i] brings it to version i+1, and the version
// reached is kept in a schema_version table. A database that a newer binary has migrated
// further is refused with SchemaTooNewError.
func Migrate(ctx context.Context, tx MigrationTx, steps []string) error {
	if err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	have, err := tx.QueryInt(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`)
	if err != nil {
		return fmt.Errorf("migrate: reading schema_version: %w", err)
	}
	if have > len(steps) {
		return &SchemaTooNewError{Have: have, Known: len(steps)}
	}
	if have == len(steps) {
		return nil
	}
	for i := have; i < len(steps); i++ {
		if err := tx.Exec(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate: step %d: %w", i+1, err)
		}
	}
	// The version is our own count, written as a literal so no placeholder dialect is needed.
	for _, stmt := range []string{`DELETE FROM schema_version`, fmt.Sprintf(`INSERT INTO schema_version (version) VALUES (%d)`, len(steps))} {
		if err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}
