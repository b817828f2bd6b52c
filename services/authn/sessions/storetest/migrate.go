package storetest

import (
	"slices"
	"strings"
	"testing"
)

// MigrationRollsBack checks a SQL backend's migration on its real database: a step that fails
// leaves the database as it was, the earlier steps of the same run and the version included.
// migrate runs the backend's migration (lock and transaction as in Open) with other steps;
// queryInt answers a query of one integer. The database must start empty.
func MigrationRollsBack(t *testing.T, migrate func(steps []string) error, queryInt func(q string) (int, error)) {
	t.Helper()
	// exists tells a missing table (an error that names it, in both dialects) from a failure.
	exists := func(table string) bool {
		t.Helper()
		_, err := queryInt(`SELECT COUNT(*) FROM ` + table)
		if err != nil && !strings.Contains(err.Error(), table) {
			t.Fatalf("querying %s: %v", table, err)
		}
		return err == nil
	}
	const a, b, bad = `CREATE TABLE probe_a (x integer)`, `CREATE TABLE probe_b (x integer)`, `CREATE TABLE probe_bad (`
	for _, tc := range []struct {
		steps       []string
		wantErr     string // "" for success
		wantTables  []string
		wantVersion int
	}{
		{[]string{a, bad}, "step 2", nil, 0},
		{[]string{a}, "", []string{"probe_a", "schema_version"}, 1},
		{[]string{a, b, bad}, "step 3", []string{"probe_a", "schema_version"}, 1},
	} {
		err := migrate(tc.steps)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Fatalf("migrate(%d steps) = %v, want %q", len(tc.steps), err, tc.wantErr)
		}
		var tables []string
		for _, name := range []string{"probe_a", "probe_b", "schema_version"} {
			if exists(name) {
				tables = append(tables, name)
			}
		}
		version := 0
		if slices.Contains(tables, "schema_version") {
			if version, err = queryInt(`SELECT COALESCE(MAX(version), 0) FROM schema_version`); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(tables, tc.wantTables) || version != tc.wantVersion {
			t.Fatalf("after migrate(%d steps): tables %q at version %d, want %q at %d", len(tc.steps), tables, version, tc.wantTables, tc.wantVersion)
		}
	}
}
