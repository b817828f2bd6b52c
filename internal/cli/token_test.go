package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

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
	runTokenTest("", "-registry", reg).failed(t, "anonymously: 401 Unauthorized: anonymous access is disabled", "give -u, -identity-token or -docker-config")

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
	if r.code != 0 || !strings.Contains(r.stderr, "usage: portcullis token -registry URL") || !strings.Contains(r.stderr, "-docker-config") {
		t.Errorf("-h: exit %d\n%s", r.code, r.stderr)
	}
}
