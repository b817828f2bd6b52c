// Package hydratest starts a real ORY Hydra (v2.3.0, built by scripts/install-tools.sh hydra)
// as the OpenID provider for the SSO suites, and is its login and consent app: Hydra sends the
// browser to the harness's /login and /consent, and the harness accepts or refuses through
// Hydra's admin API, as a company's login app does in a real deployment. Users, their claims,
// and whether they may still sign in are set by the test.
//
// Hydra runs with the in-memory SQLite database (DSN "memory", migrated at start), --dev for an
// http issuer on loopback, PKCE enforced for every client, on random loopback ports. It never
// fakes Hydra: a test that needs it and finds no hydra binary fails with the install command.
//
// Hydra 2.3 has no device authorization grant (Portcullis is the device flow's server; the IdP
// only sees the authorization code flow), and sends OIDC Back-Channel Logout when a login
// session is ended by its sid (BackChannelLogout).
package hydratest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// Version is the Hydra the harness is written against; scripts/install-tools.sh pins it too.
const Version = "v2.3.0"

// User is a person at the IdP. Claims go into the ID token (and userinfo) as they are:
// email, email_verified, preferred_username, groups, department…
type User struct {
	Subject string
	Claims  map[string]any
}

// Client is an OAuth 2.0 client registered at Hydra.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// ClientConfig describes a client to register. Zero values get defaults: a random ID and
// secret, the authorization_code and refresh_token grants, client_secret_basic, and the scopes
// openid offline_access offline email profile groups.
type ClientConfig struct {
	ID, Secret   string
	RedirectURIs []string // required
	Scopes       []string
	// AuthMethod is token_endpoint_auth_method: client_secret_basic, client_secret_post,
	// private_key_jwt (with JWKS, the client's public keys as a JWK Set, and AuthSigningAlg,
	// RS256 unless set) or none.
	AuthMethod     string
	JWKS           any
	AuthSigningAlg string
	// BackChannelLogoutURI receives Hydra's logout_token (form POST) when a login session
	// this client took part in ends by sid.
	BackChannelLogoutURI string
}

// Server is a running Hydra and its login/consent app.
type Server struct {
	Issuer    string // iss of its tokens; discovery at Issuer/.well-known/openid-configuration
	PublicURL string
	AdminURL  string
	AppURL    string // the login/consent app the harness serves

	bin, dir string
	log      *os.File
	cmd      *exec.Cmd
	exited   chan struct{}
	app      *httptest.Server
	http     *http.Client

	mu       sync.Mutex
	users    map[string]User
	current  string
	disabled map[string]bool
	sids     map[string][]string // subject → login session ids (the ID token's sid)
	logins   map[string]int      // subject → logins accepted
}

// Binary finds hydra: $HYDRA_BIN, the project's .cache/bin, then PATH.
func Binary(t testutil.T) string {
	t.Helper()
	if b := os.Getenv("HYDRA_BIN"); b != "" {
		return b
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	if b := filepath.Join(root, ".cache", "bin", "hydra"); isExec(b) {
		return b
	}
	if b, err := exec.LookPath("hydra"); err == nil {
		return b
	}
	t.Fatal("hydra binary not found (run scripts/install-tools.sh hydra): the SSO suites need a real ORY Hydra " + Version)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start runs Hydra for the test and waits until both its APIs are ready. It is stopped when
// the test ends (its log tail is printed if the test failed).
func Start(t testutil.T) *Server {
	t.Helper()
	s := &Server{
		bin: Binary(t), dir: t.TempDir(),
		exited:   make(chan struct{}),
		http:     &http.Client{Timeout: 30 * time.Second},
		users:    map[string]User{},
		disabled: map[string]bool{},
		sids:     map[string][]string{},
		logins:   map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.serveLogin)
	mux.HandleFunc("GET /consent", s.serveConsent)
	mux.HandleFunc("GET /logout", s.serveLogout)
	mux.HandleFunc("GET /error", s.serveError)
	s.app = httptest.NewServer(mux)
	t.Cleanup(s.app.Close)
	s.AppURL = s.app.URL

	public, admin := freePort(t), freePort(t)
	s.PublicURL = "http://127.0.0.1:" + strconv.Itoa(public)
	s.AdminURL = "http://127.0.0.1:" + strconv.Itoa(admin)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	cfg := map[string]any{
		"dsn": "memory",
		"serve": map[string]any{
			"public":  map[string]any{"host": "127.0.0.1", "port": public},
			"admin":   map[string]any{"host": "127.0.0.1", "port": admin},
			"cookies": map[string]any{"same_site_mode": "Lax"},
		},
		"urls": map[string]any{
			"self":    map[string]any{"issuer": s.PublicURL, "public": s.PublicURL},
			"login":   s.AppURL + "/login",
			"consent": s.AppURL + "/consent",
			"logout":  s.AppURL + "/logout",
			"error":   s.AppURL + "/error",
		},
		"secrets": map[string]any{"system": []string{hex.EncodeToString(secret)}},
		"oauth2": map[string]any{
			"pkce":                   map[string]any{"enforced": true},
			"expose_internal_errors": true,
		},
		"oidc": map[string]any{"subject_identifiers": map[string]any{"supported_types": []string{"public"}}},
		// warn: errors (why a flow failed) without a line per request.
		"log": map[string]any{"level": "warn", "format": "text"},
		"sqa": map[string]any{"opt_out": true},
	}
	// Hydra reads YAML; JSON is YAML.
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(s.dir, "hydra.yml")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if s.log, err = os.Create(filepath.Join(s.dir, "hydra.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(s.dir, "hydra.log"))
			lines := strings.Split(string(b), "\n")
			t.Logf("hydra log tail:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	s.cmd = exec.Command(s.bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", cfgFile)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), "SQA_OPT_OUT=true")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start hydra: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()

	// The in-memory database is migrated before the listeners open; a loaded machine takes a while.
	testutil.WaitFor(t, 2*time.Minute, 50*time.Millisecond, "hydra's public and admin APIs to be ready", func() error {
		select {
		case <-s.exited:
			return testutil.Abort(fmt.Errorf("hydra exited: %v (see its log)", s.cmd.ProcessState))
		default:
		}
		for _, u := range []string{s.AdminURL + "/health/ready", s.PublicURL + "/health/ready"} {
			res, err := s.http.Get(u)
			if err != nil {
				return err
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", u, res.Status)
			}
		}
		return nil
	})
	var disc struct {
		Issuer string `json:"issuer"`
	}
	if err := s.getJSON(s.PublicURL+"/.well-known/openid-configuration", &disc); err != nil {
		t.Fatalf("hydra discovery: %v", err)
	}
	s.Issuer = disc.Issuer
	return s
}

func freePort(t testutil.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
}

// AddUser adds (or replaces) a user the login app may sign in. The first user added is the
// one signed in unless SignInAs or the authorization request's login_hint says otherwise.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.Subject] = u
	if s.current == "" {
		s.current = u.Subject
	}
}

// SignInAs makes the login app sign in subject at the next login that has no login_hint.
// A browser that still holds a Hydra login session (its cookies) stays signed in as whoever
// it signed in as, as at a real IdP.
func (s *Server) SignInAs(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.current = subject
}

// Logins says how many logins the app accepted for subject (a remembered session skips the
// login page but still counts: Hydra asks, the app accepts).
func (s *Server) Logins(subject string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins[subject]
}

// SessionIDs lists the login session ids (the sid claim of its ID tokens) Hydra gave subject.
func (s *Server) SessionIDs(subject string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sids[subject])
}

// DisableUser is the account ending at the IdP: the login app refuses the user from now on,
// and Hydra revokes every consent of the user (with it their access and refresh tokens, so the
// next refresh is refused) and every login session. No back-channel logout is sent: an IdP
// need not send one when an account is disabled (see BackChannelLogout).
func (s *Server) DisableUser(t testutil.T, subject string) {
	t.Helper()
	s.mu.Lock()
	s.disabled[subject] = true
	s.mu.Unlock()
	q := url.Values{"subject": {subject}, "all": {"true"}}
	if err := s.admin(http.MethodDelete, "/admin/oauth2/auth/sessions/consent?"+q.Encode(), nil, nil); err != nil {
		t.Fatalf("hydra: revoke consent sessions of %s: %v", subject, err)
	}
	q = url.Values{"subject": {subject}}
	if err := s.admin(http.MethodDelete, "/admin/oauth2/auth/sessions/login?"+q.Encode(), nil, nil); err != nil {
		t.Fatalf("hydra: revoke login sessions of %s: %v", subject, err)
	}
}

// EnableUser lets a disabled user sign in again (their revoked tokens stay revoked).
func (s *Server) EnableUser(subject string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.disabled, subject)
}

// BackChannelLogout ends the login session sid at Hydra, which then POSTs an OIDC
// Back-Channel Logout token (iss, aud, iat, jti, sid, events) to the backchannel_logout_uri of
// every client the session signed in to. Hydra sends it asynchronously after answering.
func (s *Server) BackChannelLogout(t testutil.T, sid string) {
	t.Helper()
	if err := s.admin(http.MethodDelete, "/admin/oauth2/auth/sessions/login?"+url.Values{"sid": {sid}}.Encode(), nil, nil); err != nil {
		t.Fatalf("hydra: end login session %s: %v", sid, err)
	}
}

// CreateClient registers an OAuth 2.0 client through the admin API.
func (s *Server) CreateClient(t testutil.T, c ClientConfig) Client {
	t.Helper()
	if len(c.RedirectURIs) == 0 {
		t.Fatal("hydratest: a client needs redirect URIs")
	}
	if c.ID == "" {
		c.ID = "client-" + randomHex(8)
	}
	if c.AuthMethod == "" {
		c.AuthMethod = "client_secret_basic"
	}
	if c.Secret == "" && (c.AuthMethod == "client_secret_basic" || c.AuthMethod == "client_secret_post") {
		c.Secret = randomHex(24)
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"openid", "offline_access", "offline", "email", "profile", "groups"}
	}
	body := map[string]any{
		"client_id":                  c.ID,
		"redirect_uris":              c.RedirectURIs,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"scope":                      strings.Join(c.Scopes, " "),
		"token_endpoint_auth_method": c.AuthMethod,
	}
	if c.Secret != "" {
		body["client_secret"] = c.Secret
	}
	if c.JWKS != nil {
		body["jwks"] = c.JWKS
	}
	if c.AuthSigningAlg != "" {
		body["token_endpoint_auth_signing_alg"] = c.AuthSigningAlg
	}
	if c.BackChannelLogoutURI != "" {
		body["backchannel_logout_uri"] = c.BackChannelLogoutURI
		body["backchannel_logout_session_required"] = true
	}
	var got struct {
		ID string `json:"client_id"`
	}
	if err := s.admin(http.MethodPost, "/admin/clients", body, &got); err != nil {
		t.Fatalf("hydra: create client %s: %v", c.ID, err)
	}
	if got.ID != c.ID {
		t.Fatalf("hydra: created client %q, asked for %q", got.ID, c.ID)
	}
	return Client{ID: c.ID, Secret: c.Secret, RedirectURIs: c.RedirectURIs}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serveLogin is Hydra's urls.login: it signs in the login_hint user, the remembered subject
// (skip) or the current user, unless that user is unknown or disabled.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	q := "?" + url.Values{"login_challenge": {challenge}}.Encode()
	var req struct {
		Skip        bool   `json:"skip"`
		Subject     string `json:"subject"`
		SessionID   string `json:"session_id"`
		OIDCContext struct {
			LoginHint string `json:"login_hint"`
		} `json:"oidc_context"`
	}
	if err := s.admin(http.MethodGet, "/admin/oauth2/auth/requests/login"+q, nil, &req); err != nil {
		http.Error(w, "login app: "+err.Error(), http.StatusBadGateway)
		return
	}
	s.mu.Lock()
	subject := s.current
	if req.Skip {
		subject = req.Subject // Hydra requires the remembered subject
	} else if h := req.OIDCContext.LoginHint; h != "" {
		subject = h
	}
	_, known := s.users[subject]
	refused := !known || s.disabled[subject]
	if !refused {
		s.logins[subject]++
		if req.SessionID != "" && !slices.Contains(s.sids[subject], req.SessionID) {
			s.sids[subject] = append(s.sids[subject], req.SessionID)
		}
	}
	s.mu.Unlock()
	var next struct {
		RedirectTo string `json:"redirect_to"`
	}
	var err error
	if refused {
		err = s.admin(http.MethodPut, "/admin/oauth2/auth/requests/login/reject"+q, map[string]any{
			"error": "access_denied", "error_description": "the account is unknown or disabled", "status_code": 403,
		}, &next)
	} else {
		// remember: Hydra keeps a login session (sid) that BackChannelLogout can end.
		err = s.admin(http.MethodPut, "/admin/oauth2/auth/requests/login/accept"+q, map[string]any{
			"subject": subject, "remember": true, "remember_for": 0, "amr": []string{"pwd"},
		}, &next)
	}
	if err != nil {
		http.Error(w, "login app: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, next.RedirectTo, http.StatusFound)
}

// serveConsent is Hydra's urls.consent: it grants what the client asked for and puts the
// user's claims into the ID token (and userinfo).
func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("consent_challenge")
	q := "?" + url.Values{"consent_challenge": {challenge}}.Encode()
	var req struct {
		Subject        string   `json:"subject"`
		RequestedScope []string `json:"requested_scope"`
		RequestedAud   []string `json:"requested_access_token_audience"`
	}
	if err := s.admin(http.MethodGet, "/admin/oauth2/auth/requests/consent"+q, nil, &req); err != nil {
		http.Error(w, "consent app: "+err.Error(), http.StatusBadGateway)
		return
	}
	s.mu.Lock()
	u, known := s.users[req.Subject]
	refused := !known || s.disabled[req.Subject]
	s.mu.Unlock()
	var next struct {
		RedirectTo string `json:"redirect_to"`
	}
	var err error
	if refused {
		err = s.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/reject"+q, map[string]any{
			"error": "access_denied", "error_description": "the account is unknown or disabled", "status_code": 403,
		}, &next)
	} else {
		claims := u.Claims
		if claims == nil {
			claims = map[string]any{}
		}
		err = s.admin(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept"+q, map[string]any{
			"grant_scope":                 req.RequestedScope,
			"grant_access_token_audience": req.RequestedAud,
			"session":                     map[string]any{"id_token": claims},
		}, &next)
	}
	if err != nil {
		http.Error(w, "consent app: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, next.RedirectTo, http.StatusFound)
}

// serveLogout is Hydra's urls.logout (RP-initiated logout): it accepts.
func (s *Server) serveLogout(w http.ResponseWriter, r *http.Request) {
	q := "?" + url.Values{"logout_challenge": {r.URL.Query().Get("logout_challenge")}}.Encode()
	var next struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := s.admin(http.MethodPut, "/admin/oauth2/auth/requests/logout/accept"+q, nil, &next); err != nil {
		http.Error(w, "logout app: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, next.RedirectTo, http.StatusFound)
}

// serveError is Hydra's urls.error: errors it cannot send back to the client end here.
func (s *Server) serveError(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	http.Error(w, fmt.Sprintf("hydra error: %s: %s %s", q.Get("error"), q.Get("error_description"), q.Get("error_hint")), http.StatusBadRequest)
}

// admin calls Hydra's admin API with a JSON body (when in is not nil) and decodes a JSON
// answer into out (when not nil). A status of 300 or more is an error carrying Hydra's body.
func (s *Server) admin(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.AdminURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, res.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

func (s *Server) getJSON(u string, out any) error {
	res, err := s.http.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return errors.New(res.Status)
	}
	return json.NewDecoder(res.Body).Decode(out)
}
