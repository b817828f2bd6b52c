package account_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/account"
	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/storagetest"
)

// users is a password backend that can re-read its people: user → password, fingerprint.
type users struct {
	authn.UnimplementedBackend
	resolvable bool
	mu         sync.Mutex
	pw, fp     map[string]string
	disabled   map[string]bool
}

func newUsers(resolvable bool, up ...string) *users {
	u := &users{resolvable: resolvable, pw: map[string]string{}, fp: map[string]string{}, disabled: map[string]bool{}}
	for i := 0; i+1 < len(up); i += 2 {
		u.pw[up[i]], u.fp[up[i]] = up[i+1], "fp-"+up[i+1]
	}
	return u
}

func (u *users) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	pw, ok := u.pw[c.Username]
	switch {
	case !ok:
		return identity.Identity{}, authn.ErrNoMatch
	case pw != string(c.Password):
		return identity.Identity{}, authn.ErrInvalidCredentials
	case u.disabled[c.Username]:
		return identity.Identity{}, authn.ErrAccountDisabled
	}
	return identity.Identity{Subject: c.Username, Fingerprint: u.fp[c.Username]}, nil
}

func (u *users) Resolve(_ context.Context, subject string) (identity.Identity, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case !u.resolvable:
		return identity.Identity{}, authn.ErrUnsupported
	case u.pw[subject] == "":
		return identity.Identity{}, authn.ErrNoMatch
	case u.disabled[subject]:
		return identity.Identity{}, authn.ErrAccountDisabled
	}
	return identity.Identity{Subject: subject, Fingerprint: u.fp[subject]}, nil
}

func (u *users) CanResolve() bool { return u.resolvable }

func (u *users) set(f func(*users)) { u.mu.Lock(); f(u); u.mu.Unlock() }

// claimer is a backend with credentials of their own shape (a robot key, a token, a JWT).
type claimer struct {
	authn.UnimplementedBackend
	prefix, ns string
	id         func() identity.Identity
}

func (c claimer) Authenticate(_ context.Context, cr authn.Credentials) (identity.Identity, error) {
	return c.id(), nil
}
func (c claimer) Claiming() bool { return true }
func (c claimer) ClaimsCredential(_ context.Context, cr authn.Credentials) bool {
	return strings.HasPrefix(string(cr.Password), c.prefix)
}
func (c claimer) SubjectNamespace() string { return c.ns }
func (c claimer) CanResolve() bool         { return true }

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type env struct {
	srv      *account.Server
	clk      *testutil.Clock
	st       *storagetest.Memory
	users    *users
	sessions *sessions.Manager
	pats     *pats.Manager
	devices  *device.Manager
	deviceSv *device.Server
	chain    *authn.Chain
	logs     *logBuf
}

const (
	alicePW = "alice-password"
	bobPW   = "bob-password"
	addr    = "192.0.2.10:4000"
)

// newEnv is the account service over the memory stores: a password backend "users" (alice,
// bob), one that cannot re-read its users ("static": carol), a robot, the pat backend and a
// workload JWT backend, behind a real lockout; personal access tokens on.
func newEnv(t *testing.T, patsOn bool) *env {
	t.Helper()
	e := &env{clk: testutil.NewClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)), st: storagetest.NewMemory(), logs: &logBuf{}}
	log := slog.New(slog.NewJSONHandler(e.logs, nil))
	e.users = newUsers(true, "alice", alicePW, "bob", bobPW)
	now := func() time.Time { return e.clk.Now() }
	e.chain = authn.NewChain([]authn.Member{
		{Name: "robots", Backend: claimer{prefix: "rk_", ns: identity.RobotPrefix,
			id: func() identity.Identity { return identity.Identity{Subject: "robot:ci"} }}},
		{Name: pats.Backend, Backend: claimer{prefix: "pcp_",
			id: func() identity.Identity {
				return identity.Identity{Subject: "alice", Backend: pats.Backend, ValidUntil: now().Add(time.Second)}
			}}},
		{Name: "ci", Backend: claimer{prefix: "eyJ",
			id: func() identity.Identity { return identity.Identity{Subject: "job", ValidUntil: now().Add(time.Minute)} }}},
		{Name: "users", Backend: e.users},
		{Name: "static", Backend: newUsers(false, "carol", "carol-password")},
	}, nil)
	lk, err := lockout.New(lockout.Options{Store: e.st.Lockout(), Now: now,
		AccountAddress: lockout.Policy{MaxFailures: 3, BaseDelay: time.Minute, MaxDelay: time.Hour, Window: time.Hour},
		Address:        lockout.Policy{MaxFailures: 100, BaseDelay: time.Minute, MaxDelay: time.Hour, Window: time.Hour},
		Unguessable:    e.chain.Claimed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lk.Close(context.Background()) })
	e.sessions = sessions.NewManager(e.st.Sessions(), sessions.Options{Now: now})
	t.Cleanup(func() { _ = e.sessions.Close(context.Background()) })
	if patsOn {
		e.pats = pats.NewManager(e.st.PATs(), pats.Options{Now: now, MaxTTL: 30 * 24 * time.Hour,
			Owner: func(ctx context.Context, subject string) (identity.Identity, error) {
				id, err := e.chain.ResolvePerson(ctx, subject)
				if errors.Is(err, authn.ErrNoMatch) {
					return id, pats.ErrNoOwner
				}
				return id, err
			}})
		t.Cleanup(func() { _ = e.pats.Close(context.Background()) })
	}
	e.devices = device.NewManager(e.st.Devices(), device.Options{Now: now, Logger: log})
	e.deviceSv = device.NewServer(e.devices, func(ctx context.Context, a device.Authorization, remoteAddr string) (string, identity.Identity, error) {
		id, err := e.chain.Resolve(ctx, a.Backend, a.Subject)
		if err != nil || id.Fingerprint != a.Fingerprint {
			return "", identity.Identity{}, device.ErrAccountEnded
		}
		tok, _, err := e.sessions.Issue(ctx, a.Subject, a.Backend, a.Fingerprint, a.Service, a.ClientID, remoteAddr)
		return tok, id, err
	}, log)
	o := account.Options{Logger: log, Now: now, WebSessions: e.st.WebSessions(), Sessions: e.sessions,
		Devices: e.devices, Password: lk.Guard(e.chain), Resolver: e.chain}
	if e.pats != nil {
		o.PATs = e.pats
	}
	e.srv = account.NewServer(o)
	return e
}

func (e *env) signIn(t *testing.T, user, pw string) string {
	t.Helper()
	res, err := e.srv.PasswordSignIn(context.Background(), &authnv1.PasswordSignInRequest{Username: user, Password: pw, RemoteAddr: addr})
	if err != nil {
		t.Fatalf("sign in as %s: %v", user, err)
	}
	if !strings.HasPrefix(res.GetWebSessionToken(), account.TokenPrefix) {
		t.Fatalf("web session token %q", res.GetWebSessionToken())
	}
	return res.GetWebSessionToken()
}

func wantCode(t *testing.T, what string, err error, want codes.Code) {
	t.Helper()
	if status.Code(err) != want {
		t.Fatalf("%s: %v, want %s", what, err, want)
	}
}

func TestPasswordSignIn(t *testing.T) {
	for _, tc := range []struct {
		name, user, pw string
		want           codes.Code
	}{
		{"person", "alice", alicePW, codes.OK},
		{"wrong password", "alice", "nope", codes.Unauthenticated},
		{"unknown user", "zed", "nope", codes.Unauthenticated},
		{"robot key", "ci", "rk_secret", codes.Unauthenticated},
		{"personal access token", "alice", "pcp_secret", codes.Unauthenticated},
		{"workload JWT", "job", "eyJhbGciOi.x.y", codes.Unauthenticated},
		{"backend that cannot re-read its users", "carol", "carol-password", codes.Unauthenticated},
		{"namespaced user name", "robot:ci", "rk_secret", codes.Unauthenticated},
		{"no password", "alice", "", codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			res, err := e.srv.PasswordSignIn(context.Background(), &authnv1.PasswordSignInRequest{Username: tc.user, Password: tc.pw, RemoteAddr: addr})
			wantCode(t, "sign in", err, tc.want)
			if err != nil {
				if status.Convert(err).Message() != "invalid credentials" {
					t.Errorf("message %q: every refusal must read as a wrong password", status.Convert(err).Message())
				}
				return
			}
			acc, err := e.srv.GetAccount(context.Background(), &authnv1.GetAccountRequest{WebSessionToken: res.GetWebSessionToken()})
			if err != nil {
				t.Fatal(err)
			}
			if acc.GetIdentity().GetSubject() != tc.user || acc.GetIdentity().GetBackend() != "users" {
				t.Fatalf("identity %v", acc.GetIdentity())
			}
			if got := acc.GetWebSessionExpiresAt().AsTime(); !got.Equal(e.clk.Now().Add(account.DefaultWebSessionTTL)) {
				t.Fatalf("expires at %v", got)
			}
			if acc.GetPersonalAccessTokens() {
				t.Fatal("personal access tokens on without PATs")
			}
			logs := e.logs.String()
			if !strings.Contains(logs, `"msg":"signed in"`) || !strings.Contains(logs, `"method":"password"`) || strings.Contains(logs, tc.pw) ||
				strings.Contains(logs, res.GetWebSessionToken()) {
				t.Fatalf("audit log:\n%s", logs)
			}
		})
	}
}

// TestWebSession: every call re-reads the person; expiry, a changed credential, a disabled
// or removed account end the web session for good.
func TestWebSession(t *testing.T) {
	ctx := context.Background()
	get := func(e *env, tok string) error {
		_, err := e.srv.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: tok})
		return err
	}
	for _, tc := range []struct {
		name   string
		change func(e *env)
		undo   func(e *env) // the account back as it was: the session must stay ended
	}{
		{"expired", func(e *env) { e.clk.Add(account.DefaultWebSessionTTL) }, func(e *env) { e.clk.Add(-time.Hour) }},
		{"password changed", func(e *env) { e.users.set(func(u *users) { u.fp["alice"] = "fp-new" }) },
			func(e *env) { e.users.set(func(u *users) { u.fp["alice"] = "fp-" + alicePW }) }},
		{"account disabled", func(e *env) { e.users.set(func(u *users) { u.disabled["alice"] = true }) },
			func(e *env) { e.users.set(func(u *users) { delete(u.disabled, "alice") }) }},
		{"account removed", func(e *env) { e.users.set(func(u *users) { delete(u.pw, "alice") }) },
			func(e *env) { e.users.set(func(u *users) { u.pw["alice"] = alicePW }) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			tok := e.signIn(t, "alice", alicePW)
			e.clk.Add(time.Hour)
			if err := get(e, tok); err != nil {
				t.Fatal(err)
			}
			tc.change(e)
			wantCode(t, "after the change", get(e, tok), codes.Unauthenticated)
			tc.undo(e)
			wantCode(t, "after undoing it", get(e, tok), codes.Unauthenticated)
		})
	}
	t.Run("sign out", func(t *testing.T) {
		e := newEnv(t, false)
		tok := e.signIn(t, "alice", alicePW)
		for range 2 { // the second: an unknown token is not an error
			if _, err := e.srv.SignOut(ctx, &authnv1.SignOutRequest{WebSessionToken: tok}); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, "after sign-out", get(e, tok), codes.Unauthenticated)
		if !strings.Contains(e.logs.String(), `"msg":"signed out"`) {
			t.Fatal("no audit event")
		}
	})
	t.Run("malformed and unknown tokens", func(t *testing.T) {
		e := newEnv(t, false)
		for _, tok := range []string{"", "pcw_", "pcr_" + strings.Repeat("A", 43), account.TokenPrefix + strings.Repeat("A", 43)} {
			wantCode(t, tok, get(e, tok), codes.Unauthenticated)
		}
	})
	t.Run("backend unavailable keeps the session", func(t *testing.T) {
		e := newEnv(t, false)
		tok := e.signIn(t, "alice", alicePW)
		e.st.W.Fail(errors.New("db down"))
		wantCode(t, "store down", get(e, tok), codes.Unavailable)
		e.st.W.Fail(nil)
		if err := get(e, tok); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLockout: a password sign-in is a login; the lockout counts its failures and its lock
// answers as every login's (ResourceExhausted, LOGIN_LOCKED, RetryInfo).
func TestLockout(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	for range 3 {
		_, err := e.srv.PasswordSignIn(ctx, &authnv1.PasswordSignInRequest{Username: "alice", Password: "wrong", RemoteAddr: addr})
		wantCode(t, "wrong password", err, codes.Unauthenticated)
	}
	_, err := e.srv.PasswordSignIn(ctx, &authnv1.PasswordSignInRequest{Username: "alice", Password: alicePW, RemoteAddr: addr})
	wantCode(t, "locked", err, codes.ResourceExhausted)
	var info *errdetails.ErrorInfo
	for _, d := range status.Convert(err).Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info == nil || info.GetReason() != authn.LockedReason {
		t.Fatalf("details %v", status.Convert(err).Details())
	}
	if !strings.Contains(e.logs.String(), `"reason":"locked"`) {
		t.Fatalf("audit log:\n%s", e.logs.String())
	}
	// Another address is not locked for alice.
	if _, err := e.srv.PasswordSignIn(ctx, &authnv1.PasswordSignInRequest{Username: "alice", Password: alicePW, RemoteAddr: "198.51.100.1:1"}); err != nil {
		t.Fatal(err)
	}
}

func TestMySessions(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	issue := func(subject string) string {
		_, ses, err := e.sessions.Issue(ctx, subject, "users", "fp", "registry", "docker", addr)
		if err != nil {
			t.Fatal(err)
		}
		return ses.ID
	}
	mine1, mine2, bobs := issue("alice"), issue("alice"), issue("bob")
	tok := e.signIn(t, "alice", alicePW)
	list := func() []string {
		res, err := e.srv.ListMySessions(ctx, &authnv1.ListMySessionsRequest{WebSessionToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, s := range res.GetSessions() {
			ids = append(ids, s.GetId())
		}
		return ids
	}
	// Both created at the same instant (a fixed clock): the list's order is by id then.
	want := []string{mine1, mine2}
	slices.Sort(want)
	if got := list(); !slices.Equal(got, want) {
		t.Fatalf("alice's sessions %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name, id string
		want     codes.Code
	}{
		{"someone else's", bobs, codes.NotFound},
		{"unknown", "ses_nope", codes.NotFound},
		{"own", mine1, codes.OK},
		{"own again", mine1, codes.NotFound},
	} {
		_, err := e.srv.RevokeMySession(ctx, &authnv1.RevokeMySessionRequest{WebSessionToken: tok, Id: tc.id})
		wantCode(t, tc.name, err, tc.want)
	}
	if got := list(); len(got) != 1 || got[0] != mine2 {
		t.Fatalf("after revoking: %v", got)
	}
	if _, err := e.sessions.Store().Get(ctx, bobs); err != nil {
		t.Fatalf("bob's session: %v", err)
	}
	if !strings.Contains(e.logs.String(), `"msg":"session revoked by its owner"`) {
		t.Fatal("no audit event")
	}
	_, err := e.srv.ListMySessions(ctx, &authnv1.ListMySessionsRequest{WebSessionToken: "pcw_nope"})
	wantCode(t, "not signed in", err, codes.Unauthenticated)
}

func TestMyPersonalAccessTokens(t *testing.T) {
	ctx := context.Background()
	t.Run("off", func(t *testing.T) {
		e := newEnv(t, false)
		tok := e.signIn(t, "alice", alicePW)
		_, err := e.srv.ListMyPersonalAccessTokens(ctx, &authnv1.ListMyPersonalAccessTokensRequest{WebSessionToken: tok})
		wantCode(t, "list", err, codes.FailedPrecondition)
		_, err = e.srv.CreateMyPersonalAccessToken(ctx, &authnv1.CreateMyPersonalAccessTokenRequest{WebSessionToken: tok, Name: "ci", ExpiresIn: durationpb.New(time.Hour)})
		wantCode(t, "create", err, codes.FailedPrecondition)
	})
	e := newEnv(t, true)
	alice, bob := e.signIn(t, "alice", alicePW), e.signIn(t, "bob", bobPW)
	acc, err := e.srv.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: alice})
	if err != nil || !acc.GetPersonalAccessTokens() || acc.GetPatMaxTtl().AsDuration() != 30*24*time.Hour {
		t.Fatalf("account %v: %v", acc, err)
	}
	create := func(tok, name string, d time.Duration) (*authnv1.CreateMyPersonalAccessTokenResponse, error) {
		return e.srv.CreateMyPersonalAccessToken(ctx, &authnv1.CreateMyPersonalAccessTokenRequest{WebSessionToken: tok,
			Name: name, ExpiresIn: durationpb.New(d), Scopes: []string{"repository:app/*:pull"}})
	}
	a, err := create(alice, "laptop", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetPersonalAccessToken().GetOwner() != "alice" || !pats.LooksLikeSecret(a.GetSecret()) {
		t.Fatalf("created %v", a)
	}
	b, err := create(bob, "laptop", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what, name string
		d          time.Duration
		want       codes.Code
	}{
		{"same name", "laptop", time.Hour, codes.AlreadyExists},
		{"too long", "x", 365 * 24 * time.Hour, codes.InvalidArgument},
		{"no lifetime", "y", 0, codes.InvalidArgument},
	} {
		_, err := create(alice, tc.name, tc.d)
		wantCode(t, tc.what, err, tc.want)
	}
	list, err := e.srv.ListMyPersonalAccessTokens(ctx, &authnv1.ListMyPersonalAccessTokensRequest{WebSessionToken: alice})
	if err != nil || len(list.GetPersonalAccessTokens()) != 1 || list.GetPersonalAccessTokens()[0].GetId() != a.GetPersonalAccessToken().GetId() {
		t.Fatalf("alice's tokens %v: %v", list, err)
	}
	for _, tc := range []struct {
		name, id string
		want     codes.Code
	}{
		{"bob's", b.GetPersonalAccessToken().GetId(), codes.NotFound},
		{"unknown", "pat_nope", codes.NotFound},
		{"own", a.GetPersonalAccessToken().GetId(), codes.OK},
		{"own again", a.GetPersonalAccessToken().GetId(), codes.NotFound},
	} {
		_, err := e.srv.RevokeMyPersonalAccessToken(ctx, &authnv1.RevokeMyPersonalAccessTokenRequest{WebSessionToken: alice, Id: tc.id})
		wantCode(t, tc.name, err, tc.want)
	}
	if ps, _ := e.pats.List(ctx, "bob"); len(ps) != 1 {
		t.Fatalf("bob's tokens %v", ps)
	}
	logs := e.logs.String()
	for _, want := range []string{`"msg":"personal access token created by its owner"`, `"msg":"personal access token revoked by its owner"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s", want)
		}
	}
	if strings.Contains(logs, a.GetSecret()) {
		t.Error("a secret in the log")
	}
}

// TestDevice: the signed-in person approves `portcullis login`; the device's poll then gets
// a refresh session of that person.
func TestDevice(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	start, err := e.deviceSv.StartDeviceAuthorization(ctx, &authnv1.StartDeviceAuthorizationRequest{ClientId: "portcullis-cli",
		Service: "registry", Scopes: []string{"repository:app:pull"}, RemoteAddr: "203.0.113.5:1", UserAgent: "portcullis/1"})
	if err != nil {
		t.Fatal(err)
	}
	tok := e.signIn(t, "alice", alicePW)
	poll := func() (*authnv1.PollDeviceAuthorizationResponse, error) {
		e.clk.Add(10 * time.Second)
		return e.deviceSv.PollDeviceAuthorization(ctx, &authnv1.PollDeviceAuthorizationRequest{DeviceCode: start.GetDeviceCode(), ClientId: "portcullis-cli"})
	}
	if _, err := poll(); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("poll before approval: %v", err)
	}
	_, err = e.srv.LookupDevice(ctx, &authnv1.LookupDeviceRequest{WebSessionToken: tok, UserCode: "BCDF-GHJK", RemoteAddr: addr})
	wantCode(t, "wrong user code", err, codes.NotFound)
	_, err = e.srv.LookupDevice(ctx, &authnv1.LookupDeviceRequest{WebSessionToken: "pcw_x", UserCode: start.GetUserCode(), RemoteAddr: addr})
	wantCode(t, "not signed in", err, codes.Unauthenticated)
	look, err := e.srv.LookupDevice(ctx, &authnv1.LookupDeviceRequest{WebSessionToken: tok,
		UserCode: strings.ToLower(strings.ReplaceAll(start.GetUserCode(), "-", " ")), RemoteAddr: addr})
	if err != nil {
		t.Fatal(err)
	}
	if d := look.GetDeviceAuthorization(); d.GetUserCode() != start.GetUserCode() || d.GetService() != "registry" ||
		d.GetClientAddress() != "203.0.113.5:1" || d.GetUserAgent() != "portcullis/1" {
		t.Fatalf("lookup %v", d)
	}
	if _, err := e.srv.DecideDevice(ctx, &authnv1.DecideDeviceRequest{WebSessionToken: tok, UserCode: start.GetUserCode(),
		Approve: true, RemoteAddr: addr}); err != nil {
		t.Fatal(err)
	}
	_, err = e.srv.DecideDevice(ctx, &authnv1.DecideDeviceRequest{WebSessionToken: tok, UserCode: start.GetUserCode(), Approve: false, RemoteAddr: addr})
	wantCode(t, "decided twice", err, codes.NotFound)
	res, err := poll()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.GetRefreshToken(), sessions.TokenPrefix) || res.GetIdentity().GetSubject() != "alice" {
		t.Fatalf("poll %v", res)
	}
	ses, err := e.sessions.Lookup(ctx, res.GetRefreshToken(), "registry", "portcullis-cli", addr)
	if err != nil || ses.Subject != "alice" || ses.Backend != "users" || ses.Fingerprint != "fp-"+alicePW {
		t.Fatalf("session %+v: %v", ses, err)
	}

	// Denied: the device is told access_denied.
	start, err = e.deviceSv.StartDeviceAuthorization(ctx, &authnv1.StartDeviceAuthorizationRequest{ClientId: "portcullis-cli", Service: "registry"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.DecideDevice(ctx, &authnv1.DecideDeviceRequest{WebSessionToken: tok, UserCode: start.GetUserCode(), RemoteAddr: addr}); err != nil {
		t.Fatal(err)
	}
	_, err = poll()
	wantCode(t, "poll after a denial", err, codes.PermissionDenied)
}
