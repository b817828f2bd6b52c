package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"golang.org/x/crypto/bcrypt"
)

// TestSessionEndsWhenStaticHashChangesAcrossRestart: a static user's password_hash is changed
// in the config file and Portcullis restarted on the same session database. The refresh token
// issued before the restart is refused (invalid_grant), and a second attempt is refused too:
// the session was ended, not just refused once. bob, whose hash stayed, keeps his session.
func TestSessionEndsWhenStaticHashChangesAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	bobHash := hash("bob")
	path := filepath.Join(dir, "portcullis.yml")
	writeConfig := func(aliceHash string) {
		t.Helper()
		cfg := fmt.Sprintf(`gateway:
  listen: 127.0.0.1:0
  services: [registry.local]
  public_url: http://localhost:5001
authn:
  backends:
    - name: users
      type: static
      config:
        users:
          - {name: alice, password_hash: %q, groups: [developers]}
          - {name: bob, password_hash: %q}
signer:
  key: {type: local, config: {path: %q, kid_mode: thumbprint}}
sessions:
  store: {type: sqlite, config: {path: %q}}
`, aliceHash, bobHash, filepath.Join(dir, "key.pem"), filepath.Join(dir, "sessions.db"))
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// run starts Portcullis from the config file and returns its gateway address and a stop.
	run := func() (string, func()) {
		t.Helper()
		cfg, err := app.Load(path, false)
		if err != nil {
			t.Fatal(err)
		}
		a := app.New(cfg, slog.New(slog.DiscardHandler))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx, "all") }()
		select {
		case <-a.Ready:
		case err := <-done:
			t.Fatalf("did not start: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("did not start")
		}
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		t.Cleanup(stop)
		return a.GatewayAddr, stop
	}

	writeConfig(hash("alice"))
	gw, stop := run()
	alice := apptest.OfflineLogin(t, gw, "alice", "alice")
	bob := apptest.OfflineLogin(t, gw, "bob", "bob")
	if code, ans := apptest.Refresh(t, gw, alice); code != 200 {
		t.Fatalf("refresh before the restart: %d %v", code, ans)
	}
	stop()

	writeConfig(hash("alice-new"))
	gw, _ = run()
	for i := range 2 {
		if code, ans := apptest.Refresh(t, gw, alice); code != 400 || ans["error"] != "invalid_grant" {
			t.Fatalf("refresh %d after alice's hash changed: %d %v, want 400 invalid_grant", i+1, code, ans)
		}
	}
	if code, ans := apptest.Refresh(t, gw, bob); code != 200 {
		t.Fatalf("bob's hash did not change: refresh %d %v", code, ans)
	}
	apptest.OfflineLogin(t, gw, "alice", "alice-new")
}
