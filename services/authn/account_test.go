package authn_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// accountEnv is a Server over one real password backend and a real SQLite session store, the
// way cmd/portcullis wires them, recording session events and audit lines.
type accountEnv struct {
	srv   *authn.Server
	store sessions.Store
	logs  *logBuf
	mu    sync.Mutex
	ended map[string]int // reason → sessions ended
}

func (e *accountEnv) count(reason string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ended[reason]
}

// newAccountEnv builds the server over backend (named "users") and st; a nil st opens a new store.
func newAccountEnv(t *testing.T, backend authn.Backend, st sessions.Store) *accountEnv {
	t.Helper()
	if st == nil {
		st = openStore(t, time.Now)
	}
	e := &accountEnv{store: st, logs: &logBuf{}, ended: map[string]int{}}
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	chain := authn.NewChain([]authn.Member{{Name: "users", Backend: backend}}, nil)
	m := sessions.NewManager(st, sessions.Options{Logger: log})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	count := func(reason string) { e.mu.Lock(); e.ended[reason]++; e.mu.Unlock() }
	e.srv = authn.NewServer(chain, log, authn.ServerOptions{Sessions: m, Resolver: chain, SessionEnded: count})
	return e
}

func (e *accountEnv) offlineLogin(t *testing.T, user, pw string) string {
	t.Helper()
	resp, err := e.srv.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: user, Password: pw,
		Service: "registry", ClientId: "docker", RemoteAddr: "192.0.2.1", Offline: true})
	if err != nil {
		t.Fatalf("offline login %s: %v", user, err)
	}
	if resp.GetRefreshToken() == "" {
		t.Fatalf("offline login %s: no refresh token", user)
	}
	return resp.GetRefreshToken()
}

func (e *accountEnv) refresh(tok string) error {
	_, err := e.srv.Refresh(context.Background(), &authnv1.RefreshRequest{RefreshToken: tok, Service: "registry",
		ClientId: "docker", RemoteAddr: "192.0.2.2"})
	return err
}

// sessionsOf lists the stored sessions of subject.
func (e *accountEnv) sessionsOf(t *testing.T, subject string) []sessions.Session {
	t.Helper()
	ss, _, err := e.store.List(context.Background(), sessions.ListOptions{Subject: subject})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// assertEnded checks that a refresh with tok is refused as an invalid grant, that the session
// is gone from the store, and that the audit event and the ended-session count say why.
func (e *accountEnv) assertEnded(t *testing.T, tok, subject, reason string) {
	t.Helper()
	err := e.refresh(tok)
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "invalid refresh token" {
		t.Fatalf("refresh after the account changed: %v, want Unauthenticated \"invalid refresh token\"", err)
	}
	if ss := e.sessionsOf(t, subject); len(ss) != 0 {
		t.Fatalf("the session is still stored after the refusal: %+v", ss)
	}
	found := false
	for _, ev := range e.logs.audit(t) {
		if ev["msg"] == "session ended" && ev["reason"] == reason && ev["subject"] == subject {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit event \"session ended\" with reason %q for %s:\n%s", reason, subject, e.logs)
	}
	if n := e.count(reason); n != 1 {
		t.Fatalf("sessions ended for %s = %d, want 1", reason, n)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// openWatchedHtpasswd opens an htpasswd backend on path that looks for changes every 10ms;
// the channel receives once per reload the backend saw.
func openWatchedHtpasswd(t *testing.T, path string) (authn.Backend, <-chan struct{}) {
	t.Helper()
	changed := make(chan struct{}, 1)
	b, err := (&htpasswd.Config{Path: path, ReloadInterval: config.Duration(10 * time.Millisecond)}).Open(context.Background(),
		authn.Deps{Changed: func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	return b, changed
}

// TestSessionEndsWhenHtpasswdPasswordChanges is the reproduction: an offline login,
// then the password changed in the htpasswd file (htpasswd -bB). Once the file is reloaded
// the refresh grant is refused and the session is gone; the other user's session is not
// touched, and neither is a session whose user kept the same password line.
func TestSessionEndsWhenHtpasswdPasswordChanges(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	bobLine := "bob:" + bcryptHash(t, "bob-pw", bcrypt.MinCost) + "\n"
	writeFile(t, path, "alice:"+bcryptHash(t, "old-pw", bcrypt.MinCost)+"\n"+bobLine)
	b, changed := openWatchedHtpasswd(t, path)
	e := newAccountEnv(t, b, nil)
	alice := e.offlineLogin(t, "alice", "old-pw")
	bob := e.offlineLogin(t, "bob", "bob-pw")
	if err := e.refresh(alice); err != nil {
		t.Fatalf("refresh before the change: %v", err)
	}

	writeFile(t, path, "alice:"+bcryptHash(t, "new-pw", bcrypt.MinCost)+"\n"+bobLine)
	<-changed

	e.assertEnded(t, alice, "alice", "account_changed")
	if err := e.refresh(bob); err != nil {
		t.Fatalf("bob's password did not change, his refresh was refused: %v", err)
	}
	// The new password logs in and its session refreshes.
	if err := e.refresh(e.offlineLogin(t, "alice", "new-pw")); err != nil {
		t.Fatalf("refresh of a session issued after the change: %v", err)
	}
}

// TestSessionEndsWhenHtpasswdUserRemoved: a user deleted from the file loses the session, and
// the reason says so.
func TestSessionEndsWhenHtpasswdUserRemoved(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, "alice:"+bcryptHash(t, "pw", bcrypt.MinCost)+"\n")
	b, changed := openWatchedHtpasswd(t, path)
	e := newAccountEnv(t, b, nil)
	tok := e.offlineLogin(t, "alice", "pw")
	writeFile(t, path, "bob:"+bcryptHash(t, "pw", bcrypt.MinCost)+"\n")
	<-changed
	e.assertEnded(t, tok, "alice", "account_removed")
}

// TestSessionEndsWhenStaticHashChangesAcrossRestart: a static user's password_hash is changed
// in the config and Portcullis restarted (a new backend over the same session database): the
// session issued before the restart is refused and ended; an unchanged user keeps theirs.
func TestSessionEndsWhenStaticHashChangesAcrossRestart(t *testing.T) {
	t.Parallel()
	st := openStore(t, time.Now)
	bobHash := bcryptHash(t, "bob-pw", bcrypt.MinCost)
	open := func(aliceHash string) authn.Backend {
		b, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: aliceHash}, {Name: "bob", PasswordHash: bobHash}}}).Open(context.Background(), authn.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := newAccountEnv(t, open(bcryptHash(t, "old-pw", bcrypt.MinCost)), st)
	alice := before.offlineLogin(t, "alice", "old-pw")
	bob := before.offlineLogin(t, "bob", "bob-pw")

	after := newAccountEnv(t, open(bcryptHash(t, "new-pw", bcrypt.MinCost)), st)
	after.assertEnded(t, alice, "alice", "account_changed")
	if err := after.refresh(bob); err != nil {
		t.Fatalf("bob's hash did not change, his refresh was refused: %v", err)
	}
}

// TestSessionStoresNoHash: what a session records of a password backend's user is a
// fingerprint, never the bcrypt hash (nor anything of it a reader could recognise).
func TestSessionStoresNoHash(t *testing.T) {
	t.Parallel()
	hash := bcryptHash(t, "pw", bcrypt.MinCost)
	b, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: hash}}}).Open(context.Background(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := newAccountEnv(t, b, nil)
	e.offlineLogin(t, "alice", "pw")
	ss := e.sessionsOf(t, "alice")
	if len(ss) != 1 {
		t.Fatalf("sessions = %+v", ss)
	}
	fp := ss[0].Fingerprint
	if fp == "" || !ss[0].FingerprintSet {
		t.Fatalf("the session recorded no fingerprint: %+v", ss[0])
	}
	// The salt and the hash part of the bcrypt string must not appear.
	if strings.Contains(fp, hash[7:29]) || strings.Contains(fp, hash[29:]) || strings.Contains(fp, "$2") {
		t.Fatalf("fingerprint %q holds part of the hash", fp)
	}
}

// TestSessionFromBeforeFingerprintsRecordsOne: a session stored before this release has no
// fingerprint. Its first refresh succeeds and records the user's current one, so an upgrade
// logs nobody out; a password change after that ends it like any other.
func TestSessionFromBeforeFingerprintsRecordsOne(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, path, "alice:"+bcryptHash(t, "old-pw", bcrypt.MinCost)+"\n")
	b, changed := openWatchedHtpasswd(t, path)
	e := newAccountEnv(t, b, nil)
	tok := sessions.TokenPrefix + strings.Repeat("Q", 43)
	now := time.Now().UTC().Truncate(time.Microsecond)
	old := sessions.Session{ID: "ses_old", TokenHash: sessions.HashToken(tok), Subject: "alice", Backend: "users",
		Service: "registry", ClientID: "docker", CreatedAt: now, LastUsedAt: now,
		IdleExpiresAt: now.Add(time.Hour), ExpiresAt: now.Add(time.Hour)}
	if err := e.store.Create(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if err := e.refresh(tok); err != nil {
		t.Fatalf("first refresh of a session from before fingerprints: %v, want it accepted", err)
	}
	s, err := e.store.Get(context.Background(), "ses_old")
	if err != nil || !s.FingerprintSet || s.Fingerprint == "" {
		t.Fatalf("after the first refresh: %+v, %v; want the fingerprint recorded", s, err)
	}
	if err := e.refresh(tok); err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	writeFile(t, path, "alice:"+bcryptHash(t, "new-pw", bcrypt.MinCost)+"\n")
	<-changed
	e.assertEnded(t, tok, "alice", authn.EndedAccountChanged)
}

// disabledBackend knows alice, whose account may not log in.
type disabledBackend struct{ authn.UnimplementedBackend }

func (disabledBackend) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	if c.Username != "alice" {
		return identity.Identity{}, authn.ErrNoMatch
	}
	return identity.Identity{}, authn.ErrAccountDisabled
}

func (disabledBackend) CanResolve() bool { return true }

func (disabledBackend) Resolve(context.Context, string) (identity.Identity, error) {
	return identity.Identity{}, authn.ErrAccountDisabled
}

// TestDisabledAccountLogin: a disabled account's login looks like a wrong password to the
// caller (401 "invalid credentials") and the audit event says account_disabled.
func TestDisabledAccountLogin(t *testing.T) {
	t.Parallel()
	e := newAccountEnv(t, disabledBackend{}, nil)
	_, err := e.srv.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: "alice", Password: "pw", Service: "registry", Offline: true})
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != "invalid credentials" {
		t.Fatalf("login of a disabled account: %v, want Unauthenticated \"invalid credentials\"", err)
	}
	evs := e.logs.audit(t)
	if len(evs) != 1 || evs[0]["msg"] != "authentication" || evs[0]["reason"] != "account_disabled" || evs[0]["result"] != "failure" {
		t.Fatalf("audit events = %v, want one failed authentication with reason account_disabled", evs)
	}
}
