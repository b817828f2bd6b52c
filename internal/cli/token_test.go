package cli

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"

	"github.com/google/go-containerregistry/pkg/authn"
)

// challengeRegistry answers /v2/ as a registry would: with challenge (a WWW-Authenticate
// value, none for an open registry) unless the request carries the Basic credentials
// alice:alice and basicOK is set.
func challengeRegistry(t *testing.T, challenge string, basicOK bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			http.NotFound(w, r)
			return
		}
		if u, p, ok := r.BasicAuth(); basicOK && ok && u == "alice" && p == "alice" {
			return
		}
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// keychainOf is a docker config holding configs by registry host.
type keychainOf map[string]authn.AuthConfig

func (k keychainOf) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k[r.RegistryStr()]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}

type tokenRun struct {
	code           int
	stdout, stderr string
}

func runTokenWith(kc authn.Keychain, stdin string, args ...string) tokenRun {
	var out, errOut strings.Builder
	c := &tokenCmd{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, keychain: kc, now: time.Now}
	code := c.run(context.Background(), args)
	return tokenRun{code, out.String(), errOut.String()}
}

func runTokenTest(stdin string, args ...string) tokenRun {
	return runTokenWith(keychainOf{}, stdin, args...)
}

// token is stdout as a JWT: one line, three segments.
func (r tokenRun) token(t *testing.T) string {
	t.Helper()
	tok := strings.TrimSuffix(r.stdout, "\n")
	if r.code != 0 || strings.Contains(tok, "\n") || strings.Count(tok, ".") != 2 {
		t.Fatalf("exit %d, stdout %q: want exit 0 and just a token\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return tok
}

func (r tokenRun) stderrHas(t *testing.T, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

// failed checks a one-line error and exit code 1 with nothing on stdout.
func (r tokenRun) failed(t *testing.T, wants ...string) {
	t.Helper()
	r.exited(t, 1, wants...)
}

// exited checks the exit code, and that the command's last line on stderr is its one-line
// error holding wants.
func (r tokenRun) exited(t *testing.T, code int, wants ...string) {
	t.Helper()
	if r.code != code || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q: want exit %d and nothing on stdout\nstderr:\n%s", r.code, r.stdout, code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "portcullis token: ") {
		t.Fatalf("stderr does not end in a one-line error:\n%s", r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error %q lacks %q", last, w)
		}
	}
}

// TestTokenCmdPortcullis runs `portcullis token` against an in-process Portcullis behind a
// registry's Bearer challenge: GET with Basic (offline → refresh token), the refresh grant
// by POST, the OAuth2 password grant, anonymous, docker's config, and refused logins.
func TestTokenCmdPortcullis(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	realm := "http://" + a.GatewayAddr + "/token"
	reg := challengeRegistry(t, `Bearer realm="`+realm+`",service="registry.local"`, false)

	r := runTokenTest("alice\n", "-registry", reg, "-u", "alice", "--password-stdin", "-scope", "repository:alice/app:pull,push", "-offline", "-decode")
	r.token(t)
	r.stderrHas(t, `registry challenge: bearer realm="`+realm+`",service="registry.local"`,
		"token from "+realm+` (service "registry.local") by GET as alice; scope repository:alice/app:pull,push; expires in `,
		"refresh token (secret; use it with -identity-token): pcr_", "decoded WITHOUT verifying the signature",
		"  kid:  ", "  sub:  alice\n", "  aud:  registry.local\n", "  access:\n    repository:alice/app:pull,push\n", " left)\n")
	_, after, _ := strings.Cut(r.stderr, "-identity-token): ")
	refresh := strings.Fields(after)[0]

	r = runTokenTest("", "-registry", reg, "-identity-token", refresh, "-scope", "repository:alice/app:pull", "-decode")
	r.token(t)
	r.stderrHas(t, "by POST with the refresh grant; scope repository:alice/app:pull", "  sub:  alice\n", "    repository:alice/app:pull\n")
	if strings.Contains(r.stderr, "refresh token (secret") {
		t.Errorf("the refresh grant's echoed refresh token was printed again:\n%s", r.stderr)
	}

	r = runTokenTest("", "-registry", reg, "-u", "alice", "-p", "alice", "-oauth", "-offline")
	r.token(t)
	r.stderrHas(t, "by POST as alice; no scope", "refresh token (secret; use it with -identity-token): pcr_")

	runTokenTest("", "-registry", reg, "-u", "alice", "-p", "wrong").failed(t, "GET "+realm+" as alice: 401 Unauthorized: invalid username or password")
	runTokenTest("", "-registry", reg, "-u", "alice", "-p", "wrong", "-oauth").failed(t, "POST "+realm+" as alice: 400 Bad Request: invalid username or password (invalid_grant)")
	runTokenTest("", "-registry", reg, "-identity-token", "pcr_not-a-session").failed(t, "400 Bad Request", "invalid_grant")

	r = runTokenTest("", "-registry", reg, "-scope", "repository:alice/app:pull", "-decode")
	r.token(t)
	r.stderrHas(t, "by GET anonymously", "  access: (empty: grants nothing)")

	kc := keychainOf{strings.TrimPrefix(reg, "http://"): {Username: "alice", Password: "alice"}}
	r = runTokenWith(kc, "", "-registry", reg, "-docker-config", "-scope", "repository:alice/app:push")
	r.token(t)
	r.stderrHas(t, "credentials for "+strings.TrimPrefix(reg, "http://")+" from docker's config: alice (password ***)", "by GET as alice")
	if strings.Contains(r.stderr, "alice (password alice") {
		t.Errorf("the password shows on stderr:\n%s", r.stderr)
	}
	r = runTokenWith(keychainOf{}, "", "-registry", reg, "-docker-config")
	r.token(t)
	r.stderrHas(t, "docker's config has no credentials for", "by GET anonymously")
}

// TestTokenCmdOtherRegistries: a registry answering Basic (ECR style) is said so and the
// credentials checked; an open registry needs nothing; a realm refusing anonymous callers
// says what to give.
func TestTokenCmdOtherRegistries(t *testing.T) {
	t.Parallel()
	basic := challengeRegistry(t, `Basic realm="Amazon ECR"`, true)
	r := runTokenTest("", "-registry", basic, "-u", "alice", "-p", "alice")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("Basic registry, good password: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	r.stderrHas(t, "registry uses Basic auth (e.g. Amazon ECR); no token to fetch", "accepts alice's credentials with Basic")
	r = runTokenTest("", "-registry", basic, "-u", "alice", "-p", "nope")
	r.stderrHas(t, "registry uses Basic auth (e.g. Amazon ECR); no token to fetch")
	r.failed(t, "with Basic credentials as alice: 401 Unauthorized: authentication required")
	runTokenTest("", "-registry", basic).failed(t, "no credentials to check: give -u and -p")

	open := challengeRegistry(t, "", false)
	r = runTokenTest("", "-registry", open, "-u", "alice", "-p", "alice")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("open registry: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	r.stderrHas(t, "the registry needs no authentication; no token to fetch")

	closedRealm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"unauthorized","error_description":"anonymous access is disabled"}`))
	}))
	t.Cleanup(closedRealm.Close)
	reg := challengeRegistry(t, `Bearer realm="`+closedRealm.URL+`/token",service="s"`, false)
	runTokenTest("", "-registry", reg).failed(t, "anonymously: 401 Unauthorized: anonymous access is disabled", "give -u, -identity-token, -docker-config or -exchange")

	// A realm without the OAuth2 form that hands out opaque tokens (not JWTs).
	getOnly := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); r.Method == http.MethodGet && ok && u == "" && p == "rt-1" {
			_, _ = w.Write([]byte(`{"token":"opaque-xyz","expires_in":60}`))
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(getOnly.Close)
	reg = challengeRegistry(t, `Bearer realm="`+getOnly.URL+`/token",service="s"`, false)
	r = runTokenTest("", "-registry", reg, "-identity-token", "rt-1", "-decode")
	if r.code != 0 || r.stdout != "opaque-xyz\n" {
		t.Fatalf("GET fallback: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
	r.stderrHas(t, "the OAuth2 POST was not taken (POST "+getOnly.URL+"/token with the refresh token: 404 Not Found", "fell back to GET with Basic, as containerd does",
		"by GET with the refresh grant", "-decode: the token is not a signed JWT", "nothing to decode")

	negotiate := challengeRegistry(t, `Negotiate`, false)
	runTokenTest("", "-registry", negotiate, "-u", "a", "-p", "b").failed(t, `asks for "negotiate" authentication`)

	runTokenTest("", "-registry", "http://127.0.0.1:1").failed(t, "GET http://127.0.0.1:1/v2/")
}

func TestTokenCmdFlags(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args  []string
		stdin string
		want  string
		code  int
	}{
		{[]string{"-u", "alice", "-p", "x"}, "", "-registry is required", 1},
		{[]string{"-registry", "ftp://x"}, "", "not an http(s) base URL", 1},
		{[]string{"-registry", "https://x?q=1"}, "", "not an http(s) base URL", 1},
		{[]string{"-registry", "https://x", "extra"}, "", `unexpected argument "extra"`, 2},
		{[]string{"-registry", "https://x", "-nope"}, "", "flag provided but not defined: -nope (see -h)", 2},
		{[]string{"-registry", "https://x", "-p", "x"}, "", "a password needs a user", 1},
		{[]string{"-registry", "https://x", "-u", "alice"}, "", "-u needs a password", 1},
		{[]string{"-registry", "https://x", "-u", "a", "-p", "x", "--password-stdin"}, "y", "-p and --password-stdin exclude each other", 1},
		{[]string{"-registry", "https://x", "-identity-token", "t", "-p", "x", "-u", "a"}, "", "-identity-token replaces the password", 1},
		{[]string{"-registry", "https://x", "-docker-config", "-u", "a", "-p", "b"}, "", "-docker-config excludes", 1},
		{[]string{"-registry", "https://x", "-u", "a", "--password-stdin"}, "\n", "standard input holds no password", 1},
		{[]string{"-registry", "https://x", "-u", "a", "-p", "b", "-timeout", "0s"}, "", "-timeout must be positive", 1},
	}
	for _, tc := range cases {
		runTokenTest(tc.stdin, tc.args...).exited(t, tc.code, tc.want)
	}
	r := runTokenTest("", "-h")
	if r.code != 0 || !strings.Contains(r.stderr, "usage: portcullis token -registry URL") || !strings.Contains(r.stderr, "-docker-config") ||
		!strings.Contains(r.stderr, "-exchange FILE|-") || !strings.Contains(r.stderr, "OAuth 2.0 token exchange (RFC 8693)") {
		t.Errorf("-h: exit %d\n%s", r.code, r.stderr)
	}
}

// TestTokenCmdExchange runs `portcullis token -exchange` against an in-process Portcullis
// whose oidc backend trusts a test issuer: the JWT from a file and from standard input, the
// flags it excludes, a JWT the realm refuses, input that is no JWT, and a realm without the
// grant. The subject token never shows in what the command prints.
func TestTokenCmdExchange(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	spec, err := backend.NewSpec("ci", &oidc.Config{Issuers: []oidc.Issuer{{
		Issuer: idp.URL, Audiences: []string{"registry.local"}, Algorithms: []string{"RS256"},
		Claims: map[string]oidc.Strings{"repository": {"myorg/*"}}, Subject: "sub",
	}}})
	if err != nil {
		t.Fatal(err)
	}
	spec.SubjectPrefix = "ci:"
	cfg.Authn.Backends = append(cfg.Authn.Backends, spec)
	a := apptest.Start(t, cfg, "all")
	realm := "http://" + a.GatewayAddr + "/token"
	reg := challengeRegistry(t, `Bearer realm="`+realm+`",service="registry.local"`, false)

	// jwt is a job's token for aud; each has its own jti, as RS256 signs equal claims alike.
	jwt := func(aud string) string {
		c := idp.Claims(aud, time.Now(), 10*time.Minute)
		c["sub"], c["repository"], c["jti"] = "repo:myorg/app:ref:refs/heads/main", "myorg/app", rand.Text()
		return idp.MustSign(t, c)
	}
	file := func(content string) string {
		p := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The default policy lets any caller with credentials pull from library/ and nothing
	// more: asking for push too is granted less, which the realm names.
	const pull, pullPush = "repository:library/app:pull", "repository:library/app:pull,push"
	goodFile, goodStdin, wrongAud := jwt("registry.local"), jwt("registry.local"), jwt("other.example.com")
	cases := []struct {
		name         string
		args         []string
		stdin        string
		secret       string // the subject token, which must not be printed
		code         int
		wantStderr   []string // success: lines of the report
		wantErr      []string // failure: the one-line error
		noGrantedMsg bool
	}{
		{name: "from a file", args: []string{"-exchange", file(goodFile + "\n"), "-scope", pull, "-decode"}, secret: goodFile,
			wantStderr: []string{"token from " + realm + ` (service "registry.local") by token exchange (POST); scope ` + pull + "; expires in ",
				"  sub:  ci:repo:myorg/app:ref:refs/heads/main\n", "  access:\n    " + pull + "\n"}, noGrantedMsg: true},
		{name: "from stdin, granted less", args: []string{"-exchange", "-", "-scope", pullPush}, stdin: "  " + goodStdin + "\r\n", secret: goodStdin,
			wantStderr: []string{"by token exchange (POST); scope " + pullPush, "granted scope (less than asked): " + pull + "\n"}},
		{name: "refused JWT", args: []string{"-exchange", "-", "-scope", pull}, stdin: wrongAud, secret: wrongAud, code: 1,
			wantErr: []string{"POST " + realm, "400 Bad Request", "(invalid_grant)", "the realm refused the JWT"}},
		{name: "not a JWT", args: []string{"-exchange", file("hunter2\n")}, secret: "hunter2", code: 1,
			wantErr: []string{"-exchange ", "not a JWT"}},
		{name: "empty stdin", args: []string{"-exchange", "-"}, stdin: "\n", code: 1, wantErr: []string{"-exchange -: standard input: no subject token"}},
		{name: "no such file", args: []string{"-exchange", filepath.Join(t.TempDir(), "nope")}, code: 1, wantErr: []string{"-exchange: open ", "no such file"}},
		{name: "with -u -p", args: []string{"-exchange", "-", "-u", "alice", "-p", "alice"}, code: 2, wantErr: []string{"-exchange excludes -u, -p:"}},
		{name: "with --password-stdin", args: []string{"-exchange", "-", "-u", "alice", "--password-stdin"}, code: 2, wantErr: []string{"-exchange excludes -u, --password-stdin:"}},
		{name: "with -identity-token", args: []string{"-exchange", "-", "-identity-token", "pcr_x"}, code: 2, wantErr: []string{"-exchange excludes -identity-token:"}},
		{name: "with -docker-config", args: []string{"-exchange", "-", "-docker-config"}, code: 2, wantErr: []string{"-exchange excludes -docker-config:"}},
		{name: "with -offline", args: []string{"-exchange", "-", "-offline"}, code: 2, wantErr: []string{"-exchange excludes -offline:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := runTokenTest(tc.stdin, append([]string{"-registry", reg}, tc.args...)...)
			if tc.code == 0 {
				r.token(t)
				r.stderrHas(t, tc.wantStderr...)
			} else {
				r.exited(t, tc.code, tc.wantErr...)
			}
			if tc.noGrantedMsg && strings.Contains(r.stderr, "granted scope") {
				t.Errorf("all that was asked was granted, yet:\n%s", r.stderr)
			}
			if tc.secret != "" && strings.Contains(r.stdout+r.stderr, tc.secret) {
				t.Errorf("the subject token was printed:\nstdout %q\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}

	// A realm that does not know the grant, as a docker_auth would answer.
	noExchange := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"unsupported_grant_type","error_description":"unsupported grant_type"}`))
	}))
	t.Cleanup(noExchange.Close)
	other := challengeRegistry(t, `Bearer realm="`+noExchange.URL+`/token",service="s"`, false)
	tok := jwt("s")
	r := runTokenTest(tok, "-registry", other, "-exchange", "-")
	r.exited(t, 1, "400 Bad Request", "(unsupported_grant_type)", "the realm does not take the token exchange grant (RFC 8693)")
	if strings.Contains(r.stderr, tok) {
		t.Errorf("the subject token was printed:\n%s", r.stderr)
	}

	// A realm that names the scope even when it granted all that was asked: nothing to say.
	alwaysScope := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"a.b.c","issued_token_type":"urn:ietf:params:oauth:token-type:access_token",` +
			`"token_type":"Bearer","expires_in":60,"scope":"repository:x/y:push repository:x/y:pull"}`))
	}))
	t.Cleanup(alwaysScope.Close)
	other = challengeRegistry(t, `Bearer realm="`+alwaysScope.URL+`/token",service="s"`, false)
	r = runTokenTest(jwt("s"), "-registry", other, "-exchange", "-", "-scope", "repository:x/y:pull", "-scope", "repository:x/y:push")
	r.token(t)
	r.stderrHas(t, "by token exchange (POST); scope repository:x/y:pull repository:x/y:push; expires in 60s")
	if strings.Contains(r.stderr, "granted scope") {
		t.Errorf("the realm granted all that was asked, yet:\n%s", r.stderr)
	}

	// A registry with Basic auth has no realm: the JWT is not sent anywhere.
	basic := challengeRegistry(t, `Basic realm="Amazon ECR"`, true)
	runTokenTest(jwt("s"), "-registry", basic, "-exchange", "-").failed(t, "-exchange: a registry with Basic auth has no realm")
}
