package account_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testenv/hydratest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/account"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/storage/storagetest"
)

// directory stands in for ssoaccounts.Directory: it keeps accounts in the ssoaccounts store
// and answers logouts by sub (the store) or sid (the caller's lookup). Its people are the
// "sso" backend's.
type directory struct {
	authn.UnimplementedBackend
	st ssoaccounts.Store
}

func (d *directory) SignedIn(ctx context.Context, in *sso.SignIn) (identity.Identity, error) {
	err := d.st.Put(ctx, ssoaccounts.Account{Subject: in.Identity.Subject, IDPSubject: in.IDPSubject,
		Groups: in.Identity.Groups, SealedRefreshToken: in.SealedRefreshToken, CreatedAt: time.Now(), RevalidatedAt: time.Now()})
	id := in.Identity
	id.Fingerprint = "sso"
	return id, err
}

func (d *directory) Logout(ctx context.Context, l *sso.Logout, sidSubjects func(context.Context, string) ([]string, error)) ([]string, error) {
	var out []string
	if l.Subject != "" {
		as, err := d.st.ByIDPSubject(ctx, l.Subject)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			out = append(out, a.Subject)
		}
	}
	if l.SessionID != "" {
		subs, err := sidSubjects(ctx, l.SessionID)
		if err != nil {
			return nil, err
		}
		out = append(out, subs...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (d *directory) Authenticate(context.Context, authn.Credentials) (identity.Identity, error) {
	return identity.Identity{}, authn.ErrNoMatch
}

func (d *directory) Resolve(ctx context.Context, subject string) (identity.Identity, error) {
	a, err := d.st.Get(ctx, subject)
	if errors.Is(err, ssoaccounts.ErrNotFound) {
		return identity.Identity{}, authn.ErrNoMatch
	}
	return identity.Identity{Subject: a.Subject, Groups: a.Groups, Backend: sso.Backend, Fingerprint: "sso"}, err
}

func (d *directory) CanResolve() bool { return true }

// TestSSO signs people in through a real Hydra: BeginSignIn, the browser through Hydra's
// login and consent, CompleteSignIn; then Hydra's back-channel logout ends their sessions.
func TestSSO(t *testing.T) {
	h := hydratest.Start(t)
	h.AddUser(hydratest.User{Subject: "idp-alice", Claims: map[string]any{"preferred_username": "alice", "email": "alice@example.com"}})
	h.AddUser(hydratest.User{Subject: "idp-mallory", Claims: map[string]any{"preferred_username": "robot:ci"}})

	var (
		mu     sync.Mutex
		srv    *account.Server
		logout []error
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /signin/callback", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.URL.RawQuery) })
	mux.HandleFunc("POST /backchannel", func(w http.ResponseWriter, r *http.Request) {
		_, err := srv.BackChannelLogout(r.Context(), &authnv1.BackChannelLogoutRequest{LogoutToken: r.PostFormValue("logout_token")})
		mu.Lock()
		logout = append(logout, err)
		mu.Unlock()
	})
	gw := httptest.NewServer(mux)
	t.Cleanup(gw.Close)
	callback := gw.URL + "/signin/callback"
	client := h.CreateClient(t, hydratest.ClientConfig{RedirectURIs: []string{callback}, BackChannelLogoutURI: gw.URL + "/backchannel"})

	dir := t.TempDir()
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	for name, b := range map[string][]byte{"key": key, "secret": []byte(client.Secret)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := sso.New(sso.Config{Issuer: h.Issuer, ClientID: client.ID, ClientSecretFile: filepath.Join(dir, "secret"),
		EncryptionKeyFile: filepath.Join(dir, "key"), Subject: "preferred_username",
		Scopes: []string{"openid", "offline_access", "email", "profile"}, SessionMaxTTL: config.Duration(time.Hour)},
		sso.Options{RedirectURL: callback})
	if err != nil {
		t.Fatal(err)
	}

	st := storagetest.NewMemory()
	d := &directory{st: st.SSOAccounts()}
	users := newUsers(true, "alice", alicePW)
	chain := authn.NewChain([]authn.Member{{Name: "users", Backend: users}, {Name: sso.Backend, Backend: d}}, nil)
	sm := sessions.NewManager(st.Sessions(), sessions.Options{})
	t.Cleanup(func() { _ = sm.Close(context.Background()) })
	ws := st.WebSessions()
	clk := testutil.NewRealClock()
	logs := &logBuf{}
	srv = account.NewServer(account.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Now: clk.Now,
		WebSessions: ws, Sessions: sm, Password: chain, Resolver: chain, SSO: p, Directory: d})
	ctx := context.Background()

	browser := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: time.Minute}
	}
	// authorize begins a sign-in and sends a browser through Hydra back to the callback.
	authorize := func(t *testing.T, b *http.Client, returnTo string) (flow string, q url.Values) {
		t.Helper()
		begin, err := srv.BeginSignIn(ctx, &authnv1.BeginSignInRequest{RedirectUri: callback, ReturnTo: returnTo})
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Get(begin.GetAuthorizationUrl())
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Request.URL.String(), callback) {
			t.Fatalf("authorization ended at %s with %s: %s", res.Request.URL, res.Status, body)
		}
		q, err = url.ParseQuery(string(body))
		if err != nil {
			t.Fatal(err)
		}
		return begin.GetFlow(), q
	}
	complete := func(flow string, q url.Values, mod func(*authnv1.CompleteSignInRequest)) (*authnv1.CompleteSignInResponse, error) {
		req := &authnv1.CompleteSignInRequest{Code: q.Get("code"), State: q.Get("state"), Flow: flow, RedirectUri: callback, RemoteAddr: addr}
		if mod != nil {
			mod(req)
		}
		return srv.CompleteSignIn(ctx, req)
	}

	var aliceTok string
	var aliceExp time.Time
	t.Run("sign in", func(t *testing.T) {
		h.SignInAs("idp-alice")
		flow, q := authorize(t, browser(), "/device?user_code=ABCD-EFGH")
		res, err := complete(flow, q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.GetReturnTo() != "/device?user_code=ABCD-EFGH" {
			t.Fatalf("return_to %q", res.GetReturnTo())
		}
		aliceTok, aliceExp = res.GetWebSessionToken(), res.GetExpiresAt().AsTime()
		if d := time.Until(aliceExp); d > time.Hour || d < 59*time.Minute {
			t.Fatalf("expires in %s, want sso.session_max_ttl (1h) below the default 12h", d)
		}
		acc, err := srv.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: aliceTok})
		if err != nil {
			t.Fatal(err)
		}
		if acc.GetIdentity().GetSubject() != "alice" || acc.GetIdentity().GetBackend() != sso.Backend {
			t.Fatalf("identity %v", acc.GetIdentity())
		}
		if _, err := complete(flow, q, nil); err == nil {
			t.Fatal("the same code twice")
		}
		if l := logs.String(); !strings.Contains(l, `"method":"sso"`) || strings.Contains(l, q.Get("code")) || strings.Contains(l, aliceTok) {
			t.Fatalf("audit log:\n%s", l)
		}
	})

	t.Run("refused", func(t *testing.T) {
		otherFlow, _ := authorize(t, browser(), "/")
		for _, tc := range []struct {
			name string
			mod  func(*authnv1.CompleteSignInRequest)
			want codes.Code
		}{
			{"wrong state", func(r *authnv1.CompleteSignInRequest) { r.State = "x" + r.State }, codes.Unauthenticated},
			{"another redirect_uri", func(r *authnv1.CompleteSignInRequest) { r.RedirectUri = gw.URL + "/elsewhere" }, codes.Unauthenticated},
			{"tampered flow", func(r *authnv1.CompleteSignInRequest) { r.Flow = r.Flow[:len(r.Flow)-2] + "AA" }, codes.Unauthenticated},
			{"another sign-in's flow", func(r *authnv1.CompleteSignInRequest) { r.Flow = otherFlow }, codes.Unauthenticated},
			{"no flow", func(r *authnv1.CompleteSignInRequest) { r.Flow = "" }, codes.Unauthenticated},
			{"made-up code", func(r *authnv1.CompleteSignInRequest) { r.Code = "nope" }, codes.Unauthenticated},
		} {
			t.Run(tc.name, func(t *testing.T) {
				flow, q := authorize(t, browser(), "/")
				_, err := complete(flow, q, tc.mod)
				wantCode(t, tc.name, err, tc.want)
			})
		}
		t.Run("subject with ':'", func(t *testing.T) {
			h.SignInAs("idp-mallory")
			defer h.SignInAs("idp-alice")
			flow, q := authorize(t, browser(), "/")
			_, err := complete(flow, q, nil)
			wantCode(t, "robot:ci", err, codes.PermissionDenied)
		})
		t.Run("expired flow", func(t *testing.T) {
			flow, q := authorize(t, browser(), "/")
			clk.Add(11 * time.Minute)
			defer clk.Add(-11 * time.Minute)
			_, err := complete(flow, q, nil)
			wantCode(t, "expired", err, codes.Unauthenticated)
		})
	})

	t.Run("another redirect_uri at the start", func(t *testing.T) {
		_, err := srv.BeginSignIn(ctx, &authnv1.BeginSignInRequest{RedirectUri: gw.URL + "/elsewhere"})
		wantCode(t, "BeginSignIn", err, codes.InvalidArgument)
	})

	t.Run("return_to stays on the gateway", func(t *testing.T) {
		for _, rt := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "x"} {
			flow, q := authorize(t, browser(), rt)
			res, err := complete(flow, q, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.GetReturnTo() != "/" {
				t.Errorf("return_to %q became %q", rt, res.GetReturnTo())
			}
		}
	})

	t.Run("back-channel logout", func(t *testing.T) {
		_, ssoSes, err := sm.Issue(ctx, "alice", sso.Backend, "sso", "registry", "portcullis-cli", addr)
		if err != nil {
			t.Fatal(err)
		}
		_, pwSes, err := sm.Issue(ctx, "alice", "users", "fp-"+alicePW, "registry", "docker", addr)
		if err != nil {
			t.Fatal(err)
		}
		sids := h.SessionIDs("idp-alice")
		if len(sids) == 0 {
			t.Fatal("no Hydra login session")
		}
		h.BackChannelLogout(t, sids[0])
		testutil.Eventually(t, time.Minute, "Hydra's back-channel logout", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(logout) > 0
		})
		mu.Lock()
		err = logout[0]
		mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		_, err = srv.GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: aliceTok})
		wantCode(t, "web session after logout", err, codes.Unauthenticated)
		if _, err := st.Sessions().Get(ctx, ssoSes.ID); !errors.Is(err, sessions.ErrNotFound) {
			t.Fatalf("the sso session: %v", err)
		}
		if _, err := st.Sessions().Get(ctx, pwSes.ID); err != nil {
			t.Fatalf("the password session ended too: %v", err)
		}
		if !strings.Contains(logs.String(), `"msg":"back-channel logout"`) {
			t.Fatal("no audit event")
		}
		_, err = srv.BackChannelLogout(ctx, &authnv1.BackChannelLogoutRequest{LogoutToken: "not.a.jwt"})
		wantCode(t, "bad logout token", err, codes.InvalidArgument)
	})
}

// TestNoSSO: without an sso: section the IdP's calls are refused as not configured.
func TestNoSSO(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	_, err := e.srv.BeginSignIn(ctx, &authnv1.BeginSignInRequest{RedirectUri: "https://gw/signin/callback"})
	wantCode(t, "BeginSignIn", err, codes.FailedPrecondition)
	_, err = e.srv.CompleteSignIn(ctx, &authnv1.CompleteSignInRequest{Code: "c", State: "s", Flow: "f"})
	wantCode(t, "CompleteSignIn", err, codes.FailedPrecondition)
	_, err = e.srv.BackChannelLogout(ctx, &authnv1.BackChannelLogoutRequest{LogoutToken: "x"})
	wantCode(t, "BackChannelLogout", err, codes.FailedPrecondition)
}
