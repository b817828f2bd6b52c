package authn_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

// openStore is the store the session tests run on: the real default, SQLite in a temp dir.
func openStore(t *testing.T, now func() time.Time) sessions.Store {
	t.Helper()
	st, err := (&sqlite.Config{Path: filepath.Join(t.TempDir(), "sessions.db")}).Open(context.Background(), sessions.Deps{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the manager's cleanup, so it runs after it: the last flush reaches the store.
	t.Cleanup(func() {
		if err := st.Close(context.Background()); err != nil {
			t.Errorf("store close: %v", err)
		}
	})
	return st
}
