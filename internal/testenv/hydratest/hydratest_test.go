package hydratest_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-dev/portcullis/internal/testenv/hydratest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// rp is the relying party side of the flows: the callback and back-channel logout endpoints a
// client registers, and the discovery document it reads.
type rp struct {
	t      *testing.T
	hydra  *hydratest.Server
	client hydratest.Client
	srv    *httptest.Server
	disc   struct {
		Issuer   string `json:"issuer"`
		AuthURL  string `json:"authorization_endpoint"`
		TokenURL string `json:"token_endpoint"`
		JWKSURL  string `json:"jwks_uri"`
		BCLogout bool   `json:"backchannel_logout_supported"`
	}

	// assert, when set, authenticates the client with private_key_jwt instead of its secret.
	assert func() url.Values

	mu          sync.Mutex
	logoutToken string
}

func newRP(t *testing.T, h *hydratest.Server) *rp { return newRPWith(t, h, hydratest.ClientConfig{}) }

// newRPWith registers the client cfg describes (ID, callback and back-channel URIs filled in).
func newRPWith(t *testing.T, h *hydratest.Server, cfg hydratest.ClientConfig) *rp {
	r := &rp{t: t, hydra: h}
	mux := http.NewServeMux()
	// The callback answers with the query it got, so the browser's last response carries it.
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, req.URL.RawQuery)
	})
	mux.HandleFunc("POST /backchannel", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.logoutToken = req.PostFormValue("logout_token")
		r.mu.Unlock()
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	cfg.ID = "portcullis"
	cfg.RedirectURIs = []string{r.srv.URL + "/callback"}
	cfg.BackChannelLogoutURI = r.srv.URL + "/backchannel"
	r.client = h.CreateClient(t, cfg)
	getJSON(t, h.Issuer+"/.well-known/openid-configuration", &r.disc)
	return r
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func random(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: time.Minute}
}

// authorize runs the browser through Hydra, the login and the consent app back to the
// callback, and returns the callback's query. challenge "" sends no code_challenge.
func (r *rp) authorize(browser *http.Client, state, nonce, challenge string) url.Values {
	r.t.Helper()
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {r.client.ID},
		"redirect_uri":  {r.client.RedirectURIs[0]},
		"scope":         {"openid offline_access email profile groups"},
		"state":         {state},
		"nonce":         {nonce},
	}
	if challenge != "" {
		q.Set("code_challenge", challenge)
		q.Set("code_challenge_method", "S256")
	}
	res, err := browser.Get(r.disc.AuthURL + "?" + q.Encode())
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Request.URL.String(), r.srv.URL+"/callback") {
		r.t.Fatalf("authorization ended at %s with %s: %s", res.Request.URL, res.Status, b)
	}
	got, err := url.ParseQuery(string(b))
	if err != nil {
		r.t.Fatal(err)
	}
	return got
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
}

// token posts form to the token endpoint with the client's secret (client_secret_basic), or
// its signed assertion (private_key_jwt).
func (r *rp) token(form url.Values) (int, tokens) {
	r.t.Helper()
	if r.assert != nil {
		for k, v := range r.assert() {
			form[k] = v
		}
	}
	req, err := http.NewRequest(http.MethodPost, r.disc.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.assert == nil {
		req.SetBasicAuth(url.QueryEscape(r.client.ID), url.QueryEscape(r.client.Secret))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	var tok tokens
	if err := json.NewDecoder(res.Body).Decode(&tok); err != nil {
		r.t.Fatalf("token endpoint: %s: %v", res.Status, err)
	}
	return res.StatusCode, tok
}

func (r *rp) keys() *jose.JSONWebKeySet {
	r.t.Helper()
	var set jose.JSONWebKeySet
	getJSON(r.t, r.disc.JWKSURL, &set)
	return &set
}

// verify checks raw's signature against Hydra's JWKS and returns its claims.
func (r *rp) verify(raw string) (jwt.Claims, map[string]any) {
	r.t.Helper()
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		r.t.Fatalf("parse %q: %v", raw, err)
	}
	if len(tok.Headers) != 1 {
		r.t.Fatalf("%d signatures", len(tok.Headers))
	}
	keys := r.keys().Key(tok.Headers[0].KeyID)
	if len(keys) != 1 {
		r.t.Fatalf("kid %q: %d keys in Hydra's JWKS", tok.Headers[0].KeyID, len(keys))
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(keys[0].Key, &std, &all); err != nil {
		r.t.Fatalf("signature: %v", err)
	}
	return std, all
}

// idToken verifies an ID token as a relying party must: signature, iss, aud, expiry, nonce.
func (r *rp) idToken(raw, nonce string) map[string]any {
	r.t.Helper()
	std, all := r.verify(raw)
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: r.disc.Issuer, AnyAudience: jwt.Audience{r.client.ID}, Time: time.Now()}, time.Minute); err != nil {
		r.t.Fatalf("ID token claims %v: %v", all, err)
	}
	if all["nonce"] != nonce {
		r.t.Fatalf("nonce %v, want %q", all["nonce"], nonce)
	}
	return all
}

func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

var alice = hydratest.User{Subject: "alice", Claims: map[string]any{
	"email": "alice@example.com", "email_verified": true, "preferred_username": "alice",
	"groups": []string{"developers", "ops"},
}}

// TestCodeFlowRefreshDisable signs in with the authorization code flow (PKCE S256, state,
// nonce), refreshes with the offline_access refresh token, disables the user and sees the
// refresh and a new sign-in refused.
func TestCodeFlowRefreshDisable(t *testing.T) {
	h := hydratest.Start(t)
	h.AddUser(alice)
	h.AddUser(hydratest.User{Subject: "bob", Claims: map[string]any{"preferred_username": "bob"}})
	r := newRP(t, h)
	if r.disc.Issuer != h.Issuer || !strings.HasPrefix(r.disc.Issuer, "http://127.0.0.1:") {
		t.Fatalf("issuer %q (harness says %q)", r.disc.Issuer, h.Issuer)
	}

	browser := newBrowser(t)
	state, nonce, verifier := random(t), random(t), random(t)
	cb := r.authorize(browser, state, nonce, s256(verifier))
	if cb.Get("state") != state || cb.Get("code") == "" {
		t.Fatalf("callback %v: want a code and state %q", cb, state)
	}
	redirect := r.client.RedirectURIs[0]
	code := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {redirect}}

	// A code is bound to its verifier: a wrong one is refused (the exchange below uses a new code).
	wrong := url.Values{"code_verifier": {random(t)}}
	for k, v := range code {
		wrong[k] = v
	}
	if st, tok := r.token(wrong); st != http.StatusBadRequest || tok.Error != "invalid_grant" {
		t.Fatalf("wrong code_verifier: %d %q, want 400 invalid_grant", st, tok.Error)
	}

	cb = r.authorize(browser, state, nonce, s256(verifier))
	code.Set("code", cb.Get("code"))
	code.Set("code_verifier", verifier)
	st, tok := r.token(code)
	if st != http.StatusOK || tok.IDToken == "" || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %d %+v, want an ID token and a refresh token", st, tok)
	}
	claims := r.idToken(tok.IDToken, nonce)
	if claims["sub"] != "alice" || claims["email"] != "alice@example.com" || claims["preferred_username"] != "alice" ||
		claims["email_verified"] != true || claims["sid"] == nil {
		t.Fatalf("ID token claims %v", claims)
	}
	if g, _ := claims["groups"].([]any); !slices.Equal(g, []any{"developers", "ops"}) {
		t.Fatalf("groups %v", claims["groups"])
	}
	if !slices.Contains(h.SessionIDs("alice"), claims["sid"].(string)) {
		t.Fatalf("sid %v not among the harness's sessions %v", claims["sid"], h.SessionIDs("alice"))
	}

	// The refresh token works and is rotated; the new ID token is still alice's.
	st, ref := r.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if st != http.StatusOK || ref.RefreshToken == "" || ref.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %d %+v", st, ref)
	}
	if std, _ := r.verify(ref.IDToken); std.Subject != "alice" {
		t.Fatalf("refreshed ID token sub %q", std.Subject)
	}

	// Another user's refresh token is untouched by alice's account ending.
	h.SignInAs("bob")
	bobState, bobNonce, bobVerifier := random(t), random(t), random(t)
	bobCB := r.authorize(newBrowser(t), bobState, bobNonce, s256(bobVerifier))
	st, bobTok := r.token(url.Values{"grant_type": {"authorization_code"}, "code": {bobCB.Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {bobVerifier}})
	if st != http.StatusOK {
		t.Fatalf("bob's code exchange: %d %+v", st, bobTok)
	}

	h.DisableUser(t, "alice")
	if st, got := r.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ref.RefreshToken}}); st != http.StatusBadRequest || got.Error != "invalid_grant" {
		t.Fatalf("refresh after disabling alice: %d %q, want 400 invalid_grant", st, got.Error)
	}
	if st, got := r.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {bobTok.RefreshToken}}); st != http.StatusOK {
		t.Fatalf("bob's refresh after disabling alice: %d %q", st, got.Error)
	}
	// Signing in again (alice's browser, its Hydra session revoked) ends at the callback with access_denied.
	h.SignInAs("alice")
	cb = r.authorize(browser, state, nonce, s256(verifier))
	if cb.Get("error") != "access_denied" || cb.Get("code") != "" {
		t.Fatalf("sign-in of a disabled user: callback %v, want error=access_denied", cb)
	}
}

// TestPKCEEnforced: Hydra refuses an authorization request without a code challenge (after
// login and consent: it checks PKCE when it issues the code), so a relying party that forgot
// PKCE fails against the harness as it would at a strict IdP.
func TestPKCEEnforced(t *testing.T) {
	h := hydratest.Start(t)
	h.AddUser(alice)
	r := newRP(t, h)
	cb := r.authorize(newBrowser(t), random(t), random(t), "")
	if cb.Get("error") != "invalid_request" || cb.Get("code") != "" {
		t.Fatalf("no code_challenge: callback %v, want error=invalid_request", cb)
	}
}

// TestBackChannelLogout ends alice's Hydra session by sid and receives the signed logout token
// at the client's backchannel_logout_uri.
func TestBackChannelLogout(t *testing.T) {
	h := hydratest.Start(t)
	h.AddUser(alice)
	r := newRP(t, h)
	if !r.disc.BCLogout {
		t.Fatal("discovery does not list backchannel_logout_supported")
	}
	nonce, verifier := random(t), random(t)
	cb := r.authorize(newBrowser(t), random(t), nonce, s256(verifier))
	st, tok := r.token(url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")},
		"redirect_uri": {r.client.RedirectURIs[0]}, "code_verifier": {verifier}})
	if st != http.StatusOK {
		t.Fatalf("code exchange: %d %+v", st, tok)
	}
	sid, _ := r.idToken(tok.IDToken, nonce)["sid"].(string)
	if sid == "" {
		t.Fatal("ID token without sid")
	}

	h.BackChannelLogout(t, sid)
	var raw string
	testutil.Eventually(t, time.Minute, "Hydra's back-channel logout POST", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		raw = r.logoutToken
		return raw != ""
	})
	std, claims := r.verify(raw)
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: r.disc.Issuer, AnyAudience: jwt.Audience{r.client.ID}, Time: time.Now()}, time.Minute); err != nil {
		t.Fatalf("logout token %v: %v", claims, err)
	}
	events, _ := claims["events"].(map[string]any)
	if claims["sid"] != sid || events == nil || events["http://schemas.openid.net/event/backchannel-logout"] == nil || claims["nonce"] != nil {
		t.Fatalf("logout token claims %v", claims)
	}
}

// TestPrivateKeyJWT registers a client by its public key (sso.private_key_jwt) and exchanges the
// code with an ES256 client assertion; an assertion signed by another key is refused.
func TestPrivateKeyJWT(t *testing.T) {
	h := hydratest.Start(t)
	h.AddUser(alice)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}
	r := newRPWith(t, h, hydratest.ClientConfig{AuthMethod: "private_key_jwt", JWKS: jwks, AuthSigningAlg: "ES256"})
	if r.client.Secret != "" {
		t.Fatalf("a private_key_jwt client got a secret")
	}
	signWith := func(k *ecdsa.PrivateKey) func() url.Values {
		return func() url.Values {
			sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			raw, err := jwt.Signed(sig).Claims(jwt.Claims{
				Issuer: r.client.ID, Subject: r.client.ID, Audience: jwt.Audience{r.disc.TokenURL},
				ID: random(t), IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)),
			}).Serialize()
			if err != nil {
				t.Fatal(err)
			}
			return url.Values{"client_id": {r.client.ID}, "client_assertion": {raw},
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}}
		}
	}
	nonce, verifier := random(t), random(t)
	cb := r.authorize(newBrowser(t), random(t), nonce, s256(verifier))
	code := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")},
		"redirect_uri": {r.client.RedirectURIs[0]}, "code_verifier": {verifier}}

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r.assert = signWith(other)
	if st, tok := r.token(code); st != http.StatusUnauthorized || tok.Error != "invalid_client" {
		t.Fatalf("assertion signed by another key: %d %q, want 401 invalid_client", st, tok.Error)
	}
	r.assert = signWith(key)
	st, tok := r.token(code)
	if st != http.StatusOK {
		t.Fatalf("code exchange with a client assertion: %d %q", st, tok.Error)
	}
	if claims := r.idToken(tok.IDToken, nonce); claims["sub"] != "alice" {
		t.Fatalf("ID token claims %v", claims)
	}
}
