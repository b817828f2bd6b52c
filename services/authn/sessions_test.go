package authn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// directory is a backend whose users change under the test: passwords are "<name>-pw".
type directory struct {
	authn.UnimplementedBackend
	mu     sync.Mutex
	groups map[string][]string // user → groups
	down   bool
}

func (d *directory) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	id, err := d.lookup(c.Username)
	if err == nil && string(c.Password) != c.Username+"-pw" {
		return identity.Identity{}, authn.ErrInvalidCredentials
	}
	return id, err
}

func (d *directory) CanResolve() bool { return true }

func (d *directory) Resolve(_ context.Context, subject string) (identity.Identity, error) {
	return d.lookup(subject)
}

func (d *directory) lookup(name string) (identity.Identity, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return identity.Identity{}, authn.ErrUnavailable
	}
	g, ok := d.groups[name]
	if !ok {
		return identity.Identity{}, authn.ErrNoMatch
	}
	return identity.Identity{Subject: name, Groups: slices.Clone(g)}, nil
}

func (d *directory) set(f func(map[string][]string)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.groups)
}

// plain knows carol but cannot re-read her later (no CanResolve): no sessions for her.
type plain struct{ authn.UnimplementedBackend }

func (plain) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	if c.Username != "carol" {
		return identity.Identity{}, authn.ErrNoMatch
	}
	return identity.Identity{Subject: "carol"}, nil
}

// flaky is a store that fails on demand, as a store whose database is down does.
type flaky struct {
	sessions.Store
	mu   sync.Mutex
	down bool
}

var errDown = errors.New("dial tcp 10.0.0.9:5432: connection refused")

func (f *flaky) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	return nil
}

func (f *flaky) setDown(v bool) { f.mu.Lock(); f.down = v; f.mu.Unlock() }

func (f *flaky) Create(ctx context.Context, s sessions.Session) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Create(ctx, s)
}

func (f *flaky) ByTokenHash(ctx context.Context, h [32]byte) (sessions.Session, error) {
	if err := f.fail(); err != nil {
		return sessions.Session{}, err
	}
	return f.Store.ByTokenHash(ctx, h)
}

func (f *flaky) Get(ctx context.Context, id string) (sessions.Session, error) {
	if err := f.fail(); err != nil {
		return sessions.Session{}, err
	}
	return f.Store.Get(ctx, id)
}

func (f *flaky) List(ctx context.Context, o sessions.ListOptions) ([]sessions.Session, string, error) {
	if err := f.fail(); err != nil {
		return nil, "", err
	}
	return f.Store.List(ctx, o)
}

func (f *flaky) RevokeSubject(ctx context.Context, subject string) (int, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.Store.RevokeSubject(ctx, subject)
}

// logBuf collects JSON log lines from every goroutine.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// audit returns the audit events' messages and attributes, in order.
func (l *logBuf) audit(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["log_type"] == "audit" {
			out = append(out, m)
		}
	}
	return out
}

type env struct {
	srv    *authn.Server
	admin  *authn.SessionAdminServer
	dir    *directory
	store  *flaky
	clock  *testutil.Clock
	logs   *logBuf
	mu     sync.Mutex
	events map[string]int
}

const idleTTL, maxTTL = time.Hour, 24 * time.Hour

func newEnv(t *testing.T, withSessions bool) *env {
	t.Helper()
	e := &env{
		dir:    &directory{groups: map[string][]string{"alice": {"developers"}, "bob": nil}},
		clock:  testutil.NewClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)),
		logs:   &logBuf{},
		events: map[string]int{},
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	chain := authn.NewChain([]authn.Member{{Name: "dir", Backend: e.dir}, {Name: "plain", Backend: plain{}}}, nil)
	count := func(ev string) { e.mu.Lock(); e.events[ev]++; e.mu.Unlock() }
	opts := authn.ServerOptions{Resolver: chain, SessionEvent: count}
	if withSessions {
		e.store = &flaky{Store: openStore(t, e.clock.Now)}
		m := sessions.NewManager(e.store, sessions.Options{IdleTTL: idleTTL, MaxTTL: maxTTL, Now: e.clock.Now, Logger: log})
		t.Cleanup(func() {
			e.store.setDown(false)
			if err := m.Close(context.Background()); err != nil {
				t.Errorf("manager close: %v", err)
			}
		})
		opts.Sessions = m
		e.admin = authn.NewSessionAdminServer(m, log)
		e.admin.SessionEvent = count
	}
	// The cache sits in front of the chain for logins, as in cmd/portcullis; refreshes bypass it.
	e.srv = authn.NewServer(authn.NewCache(chain, time.Minute, 100, e.clock.Now), log, opts)
	return e
}

func (e *env) count(ev string) int { e.mu.Lock(); defer e.mu.Unlock(); return e.events[ev] }

func (e *env) login(t *testing.T, user, service string, offline bool) *authnv1.AuthenticateResponse {
	t.Helper()
	resp, err := e.srv.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: user, Password: user + "-pw",
		Service: service, ClientId: "docker", RemoteAddr: "192.0.2.1", Offline: offline})
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return resp
}

func (e *env) refresh(token, service string) (*authnv1.RefreshResponse, error) {
	return e.srv.Refresh(context.Background(), &authnv1.RefreshRequest{RefreshToken: token, Service: service,
		ClientId: "containerd-client", RemoteAddr: "192.0.2.2"})
}

func TestOfflineLoginIssuesRefreshToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		sessions bool
		user     string
		offline  bool
		want     bool
	}{
		{"offline login", true, "alice", true, true},
		{"online login", true, "alice", false, false},
		{"backend cannot resolve", true, "carol", true, false},
		{"sessions disabled", false, "alice", true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.sessions)
			resp := e.login(t, tc.user, "registry", tc.offline)
			if resp.GetIdentity().GetSubject() != tc.user {
				t.Fatalf("identity = %v", resp.GetIdentity())
			}
			tok := resp.GetRefreshToken()
			if got := tok != ""; got != tc.want {
				t.Fatalf("refresh token issued = %v, want %v", got, tc.want)
			}
			if !tc.want {
				return
			}
			if !strings.HasPrefix(tok, "pcr_") || len(tok) < 4+43 {
				t.Fatalf("token %q: want pcr_ and ≥256 bits", tok)
			}
			if e.count(authn.EventCreated) != 1 {
				t.Fatalf("created events = %d, want 1", e.count(authn.EventCreated))
			}
			ss, _, err := e.store.List(context.Background(), sessions.ListOptions{Subject: tc.user, PageSize: 10})
			if err != nil || len(ss) != 1 {
				t.Fatalf("stored sessions = %v, %v", ss, err)
			}
			if s := ss[0]; s.Backend != "dir" || s.Service != "registry" || s.ClientID != "docker" {
				t.Fatalf("session = %+v", s)
			}
		})
	}
}

// A login whose session cannot be stored fails: answering without a refresh token would
// make docker keep the password instead.
func TestOfflineLoginWithStoreDownIsUnavailable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	e.store.setDown(true)
	_, err := e.srv.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: "alice", Password: "alice-pw", Service: "registry", Offline: true})
	if st := status.Convert(err); st.Code() != codes.Unavailable || strings.Contains(st.Message(), "10.0.0.9") {
		t.Fatalf("err = %v, want Unavailable without internal text", err)
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// change runs after the offline login; it returns the token and service to refresh with.
		change     func(t *testing.T, e *env, tok string) (string, string)
		wantCode   codes.Code
		wantGroups []string
	}{
		{"same groups", func(t *testing.T, e *env, tok string) (string, string) { return tok, "registry" }, codes.OK, []string{"developers"}},
		{"groups re-read", func(t *testing.T, e *env, tok string) (string, string) {
			e.dir.set(func(m map[string][]string) { m["alice"] = []string{"admins", "developers"} })
			return tok, "registry"
		}, codes.OK, []string{"admins", "developers"}},
		{"user removed", func(t *testing.T, e *env, tok string) (string, string) {
			e.dir.set(func(m map[string][]string) { delete(m, "alice") })
			return tok, "registry"
		}, codes.Unauthenticated, nil},
		{"session revoked", func(t *testing.T, e *env, tok string) (string, string) {
			if _, err := e.admin.RevokeUserSessions(context.Background(), &authnv1.RevokeUserSessionsRequest{Subject: "alice"}); err != nil {
				t.Fatal(err)
			}
			return tok, "registry"
		}, codes.Unauthenticated, nil},
		{"other service", func(t *testing.T, e *env, tok string) (string, string) { return tok, "other-registry" }, codes.Unauthenticated, nil},
		{"idle expired", func(t *testing.T, e *env, tok string) (string, string) {
			e.clock.Add(idleTTL + time.Second)
			return tok, "registry"
		}, codes.Unauthenticated, nil},
		{"unknown token", func(t *testing.T, e *env, tok string) (string, string) {
			return "pcr_" + strings.Repeat("A", 43), "registry"
		}, codes.Unauthenticated, nil},
		{"not a refresh token", func(t *testing.T, e *env, tok string) (string, string) { return "alice-pw", "registry" }, codes.Unauthenticated, nil},
		{"empty token", func(t *testing.T, e *env, tok string) (string, string) { return "", "registry" }, codes.Unauthenticated, nil},
		{"store down", func(t *testing.T, e *env, tok string) (string, string) {
			e.store.setDown(true)
			return tok, "registry"
		}, codes.Unavailable, nil},
		{"backend down", func(t *testing.T, e *env, tok string) (string, string) {
			e.dir.set(func(map[string][]string) { e.dir.down = true })
			return tok, "registry"
		}, codes.Unavailable, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, true)
			tok := e.login(t, "alice", "registry", true).GetRefreshToken()
			rtok, service := tc.change(t, e, tok)
			resp, err := e.refresh(rtok, service)
			st := status.Convert(err)
			if st.Code() != tc.wantCode {
				t.Fatalf("code = %v, want %v (%v)", st.Code(), tc.wantCode, err)
			}
			switch tc.wantCode {
			case codes.OK:
				id := resp.GetIdentity()
				if id.GetSubject() != "alice" || id.GetBackend() != "dir" || !slices.Equal(id.GetGroups(), tc.wantGroups) {
					t.Fatalf("identity = %v, want alice of dir with groups %v", id, tc.wantGroups)
				}
				if e.count(authn.EventRefreshed) != 1 {
					t.Fatalf("refreshed events = %d, want 1", e.count(authn.EventRefreshed))
				}
			case codes.Unauthenticated:
				// One message for every way a token fails: no oracle for which sessions exist.
				if st.Message() != "invalid refresh token" {
					t.Fatalf("message = %q", st.Message())
				}
				if e.count(authn.EventRefused) != 1 {
					t.Fatalf("refused events = %d, want 1", e.count(authn.EventRefused))
				}
			default:
				if strings.Contains(st.Message(), "10.0.0.9") {
					t.Fatalf("message echoes internal text: %q", st.Message())
				}
			}
			assertNoToken(t, e.logs, tok)
			assertNoToken(t, e.logs, rtok)
		})
	}
}

func TestRefreshWithSessionsDisabledIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	_, err := e.refresh("pcr_"+strings.Repeat("A", 43), "registry")
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("err = %v, want Unauthenticated", err)
	}
}

// A refresh must not answer from the login cache (which still holds alice's verified
// password) once she is gone from the backend.
func TestRefreshDoesNotUseTheLoginCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	tok := e.login(t, "alice", "registry", true).GetRefreshToken()
	e.login(t, "alice", "registry", false) // cached now
	e.dir.set(func(m map[string][]string) { delete(m, "alice") })
	if _, err := e.refresh(tok, "registry"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("err = %v, want Unauthenticated", err)
	}
}

func assertNoToken(t *testing.T, logs *logBuf, tok string) {
	t.Helper()
	if tok == "" {
		return
	}
	secret := strings.TrimPrefix(tok, "pcr_")
	if len(secret) < 16 {
		return
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, secret[:16]) {
			t.Fatalf("a log line holds the refresh token: %s", line)
		}
	}
}

func TestAuditEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, true)
	tok := e.login(t, "alice", "registry", true).GetRefreshToken()
	if _, err := e.refresh(tok, "registry"); err != nil {
		t.Fatal(err)
	}
	ss, err := e.admin.ListSessions(context.Background(), &authnv1.ListSessionsRequest{Subject: "alice"})
	if err != nil || len(ss.GetSessions()) != 1 {
		t.Fatalf("list: %v, %v", ss, err)
	}
	id := ss.GetSessions()[0].GetId()
	if _, err := e.admin.RevokeSession(context.Background(), &authnv1.RevokeSessionRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.refresh(tok, "registry"); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("refresh after revoke: %v", err)
	}
	var got []string
	for _, ev := range e.logs.audit(t) {
		if ev["msg"] == "authentication" { // the login's own event (TestEveryLoginIsOneAuditEvent)
			continue
		}
		got = append(got, ev["msg"].(string))
		if ev["msg"] != "session refused" && ev["session_id"] != id {
			t.Errorf("%s: session_id = %v, want %s", ev["msg"], ev["session_id"], id)
		}
		if ev["msg"] != "session refused" && ev["subject"] != "alice" {
			t.Errorf("%s: subject = %v", ev["msg"], ev["subject"])
		}
	}
	want := []string{"session created", "session refreshed", "session revoked", "session refused"}
	if !slices.Equal(got, want) {
		t.Fatalf("audit events = %q, want %q", got, want)
	}
	counts := map[string]int{authn.EventCreated: 1, authn.EventRefreshed: 1, authn.EventRevoked: 1, authn.EventRefused: 1}
	e.mu.Lock()
	defer e.mu.Unlock()
	if !maps.Equal(e.events, counts) {
		t.Fatalf("events = %v, want %v", e.events, counts)
	}
	assertNoToken(t, e.logs, tok)
}

// TestEndSession: the gateway ends the session of a refresh token it could not deliver. Only
// that session ends; unknown tokens are no error; a store that is down is Unavailable.
func TestEndSession(t *testing.T) {
	t.Parallel()
	end := func(e *env, tok string) error {
		_, err := e.srv.EndSession(context.Background(), &authnv1.EndSessionRequest{RefreshToken: tok, RemoteAddr: "192.0.2.1"})
		return err
	}
	t.Run("ends only its own session", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true)
		undelivered := e.login(t, "alice", "registry", true).GetRefreshToken()
		kept := e.login(t, "alice", "registry", true).GetRefreshToken()
		if err := end(e, undelivered); err != nil {
			t.Fatal(err)
		}
		if _, err := e.refresh(undelivered, "registry"); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("refresh with the ended token: %v, want Unauthenticated", err)
		}
		if _, err := e.refresh(kept, "registry"); err != nil {
			t.Fatalf("refresh with the other session's token: %v", err)
		}
		if e.count(authn.EventRevoked) != 1 {
			t.Fatalf("revoked events = %d, want 1", e.count(authn.EventRevoked))
		}
		if !strings.Contains(e.logs.String(), "ended by the refresh token's holder") {
			t.Fatalf("no audit event for the ended session:\n%s", e.logs)
		}
		assertNoToken(t, e.logs, undelivered)
	})
	t.Run("unknown, empty and again", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true)
		tok := e.login(t, "alice", "registry", true).GetRefreshToken()
		for _, tk := range []string{"pcr_" + strings.Repeat("A", 43), "", "not-a-token", tok, tok} {
			if err := end(e, tk); err != nil {
				t.Fatalf("EndSession(%.8q): %v", tk, err)
			}
		}
		if e.count(authn.EventRevoked) != 1 {
			t.Fatalf("revoked events = %d, want 1", e.count(authn.EventRevoked))
		}
	})
	t.Run("sessions disabled", func(t *testing.T) {
		t.Parallel()
		if err := end(newEnv(t, false), "pcr_"+strings.Repeat("A", 43)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("store down", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, true)
		tok := e.login(t, "alice", "registry", true).GetRefreshToken()
		e.store.setDown(true)
		if err := end(e, tok); status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v, want Unavailable", err)
		}
	})
}
