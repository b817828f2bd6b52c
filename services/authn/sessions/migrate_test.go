package sessions_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// fakeTx stands for a database at schema version `version`; it records what Migrate executes
// and fails the statement failOn, or the version read when readErr is set.
type fakeTx struct {
	version int
	readErr error
	failOn  string
	execed  []string
}

var errBoom = errors.New("boom")

func (f *fakeTx) Exec(_ context.Context, stmt string) error {
	if stmt == f.failOn {
		return errBoom
	}
	f.execed = append(f.execed, stmt)
	return nil
}

func (f *fakeTx) QueryInt(_ context.Context, query string) (int, error) {
	if !strings.Contains(query, "schema_version") {
		return 0, errors.New("unexpected query " + query)
	}
	return f.version, f.readErr
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	const create = `CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)`
	steps := []string{"step one", "step two", "step three"}
	setVersion := []string{`DELETE FROM schema_version`, `INSERT INTO schema_version (version) VALUES (3)`}
	for _, tc := range []struct {
		name    string
		tx      fakeTx
		want    []string // statements executed, in order
		wantErr string   // "" for success
		wantIs  error
		tooNew  *sessions.SchemaTooNewError
	}{
		{name: "fresh", tx: fakeTx{}, want: slices.Concat([]string{create}, steps, setVersion)},
		{name: "up to date", tx: fakeTx{version: 3}, want: []string{create}},
		{name: "partial", tx: fakeTx{version: 1}, want: slices.Concat([]string{create}, steps[1:], setVersion)},
		{
			name: "too new", tx: fakeTx{version: 5}, want: []string{create},
			wantErr: "newer than this binary", tooNew: &sessions.SchemaTooNewError{Have: 5, Known: 3},
		},
		{
			// The backend rolls back on any error; what matters here is that nothing after the
			// failed step runs, above all not the version write.
			name: "failing step", tx: fakeTx{failOn: "step two"}, want: []string{create, "step one"},
			wantErr: "migrate: step 2: boom", wantIs: errBoom,
		},
		{
			name: "failing version write", tx: fakeTx{version: 2, failOn: setVersion[1]},
			want:    []string{create, "step three", setVersion[0]},
			wantErr: "migrate: boom", wantIs: errBoom,
		},
		{
			name: "failing version read", tx: fakeTx{readErr: errBoom}, want: []string{create},
			wantErr: "reading schema_version", wantIs: errBoom,
		},
		{name: "failing create", tx: fakeTx{failOn: create}, wantErr: "migrate: boom", wantIs: errBoom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tx := tc.tx
			err := sessions.Migrate(context.Background(), &tx, steps)
			if !slices.Equal(tx.execed, tc.want) {
				t.Errorf("executed %q\nwant     %q", tx.execed, tc.want)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Migrate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Migrate = %v, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Migrate = %v, want it to wrap %v", err, tc.wantIs)
			}
			var tooNew *sessions.SchemaTooNewError
			if tc.tooNew != nil && (!errors.As(err, &tooNew) || *tooNew != *tc.tooNew) {
				t.Errorf("Migrate = %#v, want %#v", err, tc.tooNew)
			}
		})
	}
}
