package sso_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testenv/hydratest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

// rp is Portcullis's side at a real Hydra: the callback (it answers with the query it got, so
// the browser's last response carries code and state) and the back-channel logout endpoint.
type rp struct {
	t      *testing.T
	hydra  *hydratest.Server
	srv    *httptest.Server
	client hydratest.Client
	p      *sso.Provider
	// down makes every request of the provider to Hydra fail, as if the IdP were unreachable.
	down atomic.Bool

	mu     sync.Mutex
	logout []string
}

func (r *rp) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.down.Load() {
		return nil, errors.New("connection refused (test)")
	}
	return http.DefaultTransport.RoundTrip(req)
}

// newRP registers a client at Hydra (cc's ID, redirect and back-channel URIs filled in) and
// opens a provider for it with cfg (issuer, client, key file and redirect URL filled in).
func newRP(t *testing.T, h *hydratest.Server, id string, cc hydratest.ClientConfig, cfg sso.Config) *rp {
	t.Helper()
	r := &rp{t: t, hydra: h}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, req.URL.RawQuery)
	})
	mux.HandleFunc("POST /backchannel", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.logout = append(r.logout, req.PostFormValue("logout_token"))
		r.mu.Unlock()
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	cc.ID = id
	cc.RedirectURIs = []string{r.srv.URL + "/callback"}
	cc.BackChannelLogoutURI = r.srv.URL + "/backchannel"
	r.client = h.CreateClient(t, cc)

	dir := t.TempDir()
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	writeFile(t, filepath.Join(dir, "key"), key)
	cfg.Issuer, cfg.ClientID, cfg.EncryptionKeyFile = h.Issuer, r.client.ID, filepath.Join(dir, "key")
	if r.client.Secret != "" {
		cfg.ClientSecretFile = filepath.Join(dir, "secret")
		writeFile(t, cfg.ClientSecretFile, []byte(r.client.Secret+"\n"))
	}
	if cfg.Subject == "" {
		cfg.Subject = "preferred_username"
	}
	cfg.Scopes = []string{"openid", "offline_access", "email", "profile", "groups"}
	p, err := sso.New(cfg, sso.Options{RedirectURL: r.client.RedirectURIs[0], HTTPClient: &http.Client{Transport: r, Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	return r
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: time.Minute}
}

// authorize sends a browser through AuthCodeURL, Hydra, its login and consent app back to
// the callback as user, and returns the callback's query.
func (r *rp) authorize(browser *http.Client, req sso.AuthRequest, user string) url.Values {
	r.t.Helper()
	u, err := r.p.AuthCodeURL(context.Background(), req, url.Values{"login_hint": {user}})
	if err != nil {
		r.t.Fatal(err)
	}
	res, err := browser.Get(u)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Request.URL.String(), r.srv.URL+"/callback") {
		r.t.Fatalf("authorization ended at %s with %s: %s", res.Request.URL, res.Status, b)
	}
	q, err := url.ParseQuery(string(b))
	if err != nil {
		r.t.Fatal(err)
	}
	return q
}

// signIn is a whole sign-in of user: the callback's state checked, the code exchanged.
func (r *rp) signIn(browser *http.Client, user string) *sso.SignIn {
	r.t.Helper()
	req := sso.NewAuthRequest()
	q := r.authorize(browser, req, user)
	if err := req.CheckState(q.Get("state")); err != nil {
		r.t.Fatalf("callback %v: %v", q, err)
	}
	in, err := r.p.Exchange(context.Background(), q.Get("code"), req)
	if err != nil {
		r.t.Fatalf("exchange for %s: %v", user, err)
	}
	return in
}

// rawIDToken is an ID token for r's client got by hand (client_secret_basic), for the checks
// that need the token itself.
func (r *rp) rawIDToken(user string) (raw, nonce string) {
	r.t.Helper()
	req := sso.NewAuthRequest()
	q := r.authorize(newBrowser(r.t), req, user)
	var disc struct {
		TokenURL string `json:"token_endpoint"`
	}
	res, err := http.Get(r.hydra.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&disc); err != nil {
		r.t.Fatal(err)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {r.client.RedirectURIs[0]}, "code_verifier": {req.Verifier}}
	hreq, _ := http.NewRequest(http.MethodPost, disc.TokenURL, strings.NewReader(form.Encode()))
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.SetBasicAuth(url.QueryEscape(r.client.ID), url.QueryEscape(r.client.Secret))
	tres, err := http.DefaultClient.Do(hreq)
	if err != nil {
		r.t.Fatal(err)
	}
	defer tres.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(tres.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		r.t.Fatalf("token endpoint: %s: %v", tres.Status, err)
	}
	return tok.IDToken, req.Nonce
}

func user(sub string, extra map[string]any) hydratest.User {
	c := map[string]any{"email": sub + "@example.com", "email_verified": true, "preferred_username": sub,
		"groups": []string{"developers", "ops"}, "department": "R&D"}
	for k, v := range extra {
		c[k] = v
	}
	return hydratest.User{Subject: "idp-" + sub, Claims: c}
}

var mapping = sso.Config{
	Groups: claims.Strings{"groups"},
	Labels: map[string]string{"department": "department", "email": "email"},
	Claims: map[string]claims.Strings{"email_verified": {"true"}},
}

// TestHydra runs the relying party against a real ORY Hydra (hydratest): the code flow with
// PKCE, the ID token's checks, revalidation before and after the account ends, a
// private_key_jwt client and a back-channel logout. One Hydra for all, a user per part.
func TestHydra(t *testing.T) {
	h := hydratest.Start(t)
	for _, u := range []hydratest.User{
		user("alice", nil), user("bob", nil), user("carol", nil), user("dave", nil),
		user("eve", map[string]any{"email_verified": false}),
		user("mallory", map[string]any{"preferred_username": "robot:ci"}),
	} {
		h.AddUser(u)
	}
	r := newRP(t, h, "portcullis", hydratest.ClientConfig{}, mapping)
	ctx := context.Background()

	t.Run("code flow", func(t *testing.T) {
		r.t = t
		in := r.signIn(newBrowser(t), "idp-alice")
		want := identity.Identity{Subject: "alice", Backend: "sso", Groups: []string{"developers", "ops"},
			Labels: map[string][]string{"department": {"R&D"}, "email": {"alice@example.com"}}}
		if !reflect.DeepEqual(in.Identity, want) {
			t.Fatalf("identity %+v, want %+v", in.Identity, want)
		}
		if in.IDPSubject != "idp-alice" || in.SessionID == "" || !slices.Contains(h.SessionIDs("idp-alice"), in.SessionID) {
			t.Fatalf("sub %q sid %q, Hydra's sessions %v", in.IDPSubject, in.SessionID, h.SessionIDs("idp-alice"))
		}
		if _, err := r.p.Sealer().Open("alice", in.SealedRefreshToken); err != nil {
			t.Fatalf("sealed refresh token: %v", err)
		}
	})

	t.Run("state, nonce, verifier", func(t *testing.T) {
		r.t = t
		browser := newBrowser(t)
		req := sso.NewAuthRequest()
		q := r.authorize(browser, req, "idp-alice")
		if err := sso.NewAuthRequest().CheckState(q.Get("state")); !errors.Is(err, sso.ErrState) {
			t.Fatalf("another request's state: %v", err)
		}
		wrongVerifier := req
		wrongVerifier.Verifier = sso.NewAuthRequest().Verifier
		_, err := r.p.Exchange(ctx, q.Get("code"), wrongVerifier)
		var oe *sso.OAuthError
		if !errors.Is(err, sso.ErrExchange) || !errors.As(err, &oe) || oe.Code != "invalid_grant" {
			t.Fatalf("wrong PKCE verifier: %v, want ErrExchange invalid_grant", err)
		}
		q = r.authorize(browser, req, "idp-alice")
		wrongNonce := req
		wrongNonce.Nonce = sso.NewAuthRequest().Nonce
		var te *sso.TokenError
		if _, err := r.p.Exchange(ctx, q.Get("code"), wrongNonce); !errors.As(err, &te) || te.Reason != "nonce mismatch" {
			t.Fatalf("wrong nonce: %v, want a nonce mismatch", err)
		}
		if _, err := r.p.Exchange(ctx, "not-a-code", req); !errors.Is(err, sso.ErrExchange) {
			t.Fatalf("made-up code: %v", err)
		}
	})

	t.Run("ID token checks", func(t *testing.T) {
		r.t = t
		raw, nonce := r.rawIDToken("idp-alice")
		if id, err := r.p.VerifyIDToken(ctx, raw, nonce); err != nil || id.Identity.Subject != "alice" {
			t.Fatalf("the token itself: %+v, %v", id, err)
		}
		other := newRP(t, h, "other-client", hydratest.ClientConfig{}, mapping)
		otherRaw, otherNonce := other.rawIDToken("idp-alice")
		future := func(d time.Duration) *sso.Provider {
			p, err := sso.New(r.p.Config(), sso.Options{RedirectURL: r.client.RedirectURIs[0], Now: func() time.Time { return time.Now().Add(d) }})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		parts := strings.Split(raw, ".")
		cases := []struct {
			name, raw, nonce, reason string
			p                        *sso.Provider
		}{
			{"another client's token", otherRaw, otherNonce, "aud is not our client", r.p},
			{"wrong nonce", raw, otherNonce, "nonce mismatch", r.p},
			{"expired", raw, nonce, "expired", future(2 * time.Hour)},
			{"issued in the future", raw, nonce, "issued in the future (iat)", future(-time.Hour)},
			{"tampered payload", parts[0] + "." + otherRawPart(otherRaw, 1) + "." + parts[2], nonce, "bad signature", r.p},
			{"alg none", noneToken(parts[1]), nonce, "malformed, or signed with an algorithm the IdP does not list", r.p},
			{"HS256 with the client secret", hsToken(t, parts[1], r.client.Secret), nonce, "malformed, or signed with an algorithm the IdP does not list", r.p},
		}
		for _, tc := range cases {
			var te *sso.TokenError
			if _, err := tc.p.VerifyIDToken(ctx, tc.raw, tc.nonce); !errors.As(err, &te) || te.Reason != tc.reason {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.reason)
			}
		}
	})

	t.Run("who may sign in", func(t *testing.T) {
		r.t = t
		for _, tc := range []struct {
			user string
			want error
		}{{"idp-eve", claims.ErrClaimMismatch}, {"idp-mallory", identity.ErrNamespaceSep}} {
			req := sso.NewAuthRequest()
			q := r.authorize(newBrowser(t), req, tc.user)
			if _, err := r.p.Exchange(ctx, q.Get("code"), req); !errors.Is(err, sso.ErrNotAllowed) || !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want ErrNotAllowed (%v)", tc.user, err, tc.want)
			}
		}
	})

	t.Run("revalidate", func(t *testing.T) {
		r.t = t
		alice := r.signIn(newBrowser(t), "idp-alice")
		bob := r.signIn(newBrowser(t), "idp-bob")

		rv, err := r.p.Revalidate(ctx, "alice", alice.SealedRefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if rv.Identity == nil || rv.Identity.Subject != "alice" || !slices.Equal(rv.Identity.Groups, []string{"developers", "ops"}) {
			t.Fatalf("refreshed identity %+v", rv.Identity)
		}
		old, _ := r.p.Sealer().Open("alice", alice.SealedRefreshToken)
		if rt, err := r.p.Sealer().Open("alice", rv.SealedRefreshToken); err != nil || rt == old {
			t.Fatalf("refresh token not rotated (%v)", err)
		}
		if _, err := r.p.Revalidate(ctx, "bob", rv.SealedRefreshToken); !errors.Is(err, sso.ErrUnsealable) {
			t.Fatalf("alice's token as bob's: %v, want ErrUnsealable", err)
		}

		// The IdP unreachable: the session is kept (ErrUnavailable), its token still good.
		r.down.Store(true)
		_, err = r.p.Revalidate(ctx, "alice", rv.SealedRefreshToken)
		r.down.Store(false)
		if !errors.Is(err, sso.ErrUnavailable) || errors.Is(err, sso.ErrAccountEnded) {
			t.Fatalf("IdP down: %v, want ErrUnavailable", err)
		}
		if rv, err = r.p.Revalidate(ctx, "alice", rv.SealedRefreshToken); err != nil {
			t.Fatalf("after the IdP is back: %v", err)
		}

		h.DisableUser(t, "idp-alice")
		if _, err := r.p.Revalidate(ctx, "alice", rv.SealedRefreshToken); !errors.Is(err, sso.ErrAccountEnded) || errors.Is(err, sso.ErrUnavailable) {
			t.Fatalf("disabled account: %v, want ErrAccountEnded", err)
		}
		if _, err := r.p.Revalidate(ctx, "bob", bob.SealedRefreshToken); err != nil {
			t.Fatalf("bob after alice's account ended: %v", err)
		}
	})

	t.Run("back-channel logout", func(t *testing.T) {
		r.t = t
		in := r.signIn(newBrowser(t), "idp-dave")
		h.BackChannelLogout(t, in.SessionID)
		var raw string
		testutil.Eventually(t, time.Minute, "Hydra's back-channel logout POST", func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.logout) > 0 {
				raw = r.logout[0]
			}
			return raw != ""
		})
		lo, err := r.p.VerifyLogoutToken(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if lo.SessionID != in.SessionID || (lo.Subject != "" && lo.Subject != in.IDPSubject) {
			t.Fatalf("logout %+v, signed in as %s with sid %s", lo, in.IDPSubject, in.SessionID)
		}
		var te *sso.TokenError
		if _, err := r.p.VerifyLogoutToken(ctx, raw); !errors.As(err, &te) || !strings.Contains(te.Reason, "replay") {
			t.Fatalf("the same logout token again: %v", err)
		}
		idt, _ := r.rawIDToken("idp-dave")
		if _, err := r.p.VerifyLogoutToken(ctx, idt); !errors.As(err, &te) || te.Reason != "no back-channel logout event" {
			t.Fatalf("an ID token as a logout token: %v", err)
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		kid, err := sso.Thumbprint(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		keyFile := filepath.Join(t.TempDir(), "client.pem")
		writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
		cfg := mapping
		cfg.PrivateKeyJWT = &sso.PrivateKeyJWT{KeyFile: keyFile}
		jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"}}}
		pk := newRP(t, h, "portcullis-pkjwt", hydratest.ClientConfig{AuthMethod: "private_key_jwt", JWKS: jwks, AuthSigningAlg: "ES256"}, cfg)
		in := pk.signIn(newBrowser(t), "idp-carol")
		if in.Identity.Subject != "carol" {
			t.Fatalf("identity %+v", in.Identity)
		}
		if _, err := pk.p.Revalidate(ctx, "carol", in.SealedRefreshToken); err != nil {
			t.Fatalf("revalidate with a client assertion: %v", err)
		}
	})
}
