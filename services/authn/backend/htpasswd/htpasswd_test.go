package htpasswd_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
)

func write(t *testing.T, path string, lines ...string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func hash(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func open(t *testing.T, cfg *htpasswd.Config, deps authn.Deps) authn.Backend {
	t.Helper()
	a, err := cfg.Open(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T, users []backendtest.User, deps authn.Deps) authn.Backend {
		path := filepath.Join(t.TempDir(), "htpasswd")
		var lines []string
		groups := map[string][]string{}
		for _, u := range users {
			lines = append(lines, u.Name+":"+u.Hash)
			for _, g := range u.Groups {
				groups[g] = append(groups[g], u.Name)
			}
		}
		write(t, path, lines...)
		return open(t, &htpasswd.Config{Path: path, Groups: groups}, deps)
	})
}

func TestRejectsWeakHashesWithClearErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ line, want string }{
		{"bob:$apr1$abc$def", "MD5 (apr1)"},
		{"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA1"},
		{"bob:plaintext", "plaintext"},
		{"bob:$5$rounds$x", "unsupported hash"},
		{"no-colon-here", "expected user:hash"},
		{"bob:$2y$05$tooshort", "malformed bcrypt"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "htpasswd")
			write(t, path, tc.line)
			_, err := (&htpasswd.Config{Path: path}).Open(context.Background(), authn.Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "W6ph5Mm5") {
				t.Fatalf("error echoes the hash: %v", err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	errs := (&htpasswd.Config{ReloadInterval: config.Duration(-1), Groups: map[string][]string{"": {""}}}).Validate()
	if len(errs) < 3 {
		t.Fatalf("got %d problems, want ≥3: %v", len(errs), errs)
	}
}

func TestReloadsOnChangeAndKeepsLastGoodFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	write(t, path, "alice:"+hash(t, "one"))
	var changed atomic.Int32
	logs := &syncBuf{}
	a := open(t, &htpasswd.Config{Path: path, ReloadInterval: config.Duration(10 * time.Millisecond)},
		authn.Deps{Changed: func() { changed.Add(1) }, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := context.Background()
	try := func(pw string) error {
		_, err := a.Authenticate(ctx, authn.Credentials{Username: "alice", Password: authn.Password(pw)})
		return err
	}
	if err := try("one"); err != nil {
		t.Fatal(err)
	}
	write(t, path, "alice:"+hash(t, "two"))
	testutil.Eventually(t, 5*time.Second, "the new password", func() bool { return try("two") == nil })
	if changed.Load() == 0 {
		t.Fatal("Changed was not called after reload")
	}
	if err := try("one"); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("old password still works: %v", err)
	}
	// A broken edit is ignored; the previous users keep working. Wait until the watcher has
	// read the broken file (it logs the failure), or the check below could run before it.
	write(t, path, "alice:$apr1$x$y")
	testutil.Eventually(t, 5*time.Second, "the failed reload logged", func() bool { return strings.Contains(logs.String(), "htpasswd reload failed") })
	if err := try("two"); err != nil {
		t.Fatalf("broken file replaced the good one: %v", err)
	}
	if n := changed.Load(); n != 1 {
		t.Fatalf("Changed called %d times, want once (the broken file is no change)", n)
	}
}

// syncBuf is a log sink the watcher goroutine writes while the test reads.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }

func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A session outlives the file line that allowed it: once the user is removed and the file
// reloaded, Resolve (the refresh grant) must refuse them, and see group changes.
func TestResolveFollowsTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	write(t, path, "alice:"+hash(t, "a"), "bob:"+hash(t, "b"))
	a := open(t, &htpasswd.Config{Path: path, ReloadInterval: config.Duration(10 * time.Millisecond),
		Groups: map[string][]string{"admins": {"bob"}}}, authn.Deps{})
	r, ok := a, a.CanResolve()
	if !ok {
		t.Fatal("htpasswd backend cannot resolve: its users could never refresh")
	}
	ctx := context.Background()
	id, err := r.Resolve(ctx, "bob")
	if err != nil || id.Subject != "bob" || len(id.Groups) != 1 || id.Groups[0] != "admins" {
		t.Fatalf("Resolve(bob) = %+v, %v", id, err)
	}
	write(t, path, "alice:"+hash(t, "a"))
	testutil.Eventually(t, 5*time.Second, "bob gone", func() bool {
		_, err := r.Resolve(ctx, "bob")
		return errors.Is(err, authn.ErrNoMatch)
	})
	if _, err := r.Resolve(ctx, "alice"); err != nil {
		t.Fatalf("alice is still in the file: %v", err)
	}
}
