package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	"github.com/portcullis-dev/portcullis/internal/testenv/credhelpertest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

const (
	stubDeviceCode   = "dc_secretDeviceCode0123456789"
	stubRefreshToken = "pcr_loginSessionTokenEEEEEEEEEEEEEEEEEEEEEEEEEEE"
	stubUserCode     = "WDJB-MJHT"
	// stubAccessToken is JWT-shaped with sub alice (its signature is not checked: the CLI only
	// reads the user name to write beside the identity token).
	stubAccessToken = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"
)

// tokenStub is a token server speaking the device flow: its /token answers the script's
// errors in turn ("" for the approval; "unavailable" a 503), then approves.
type tokenStub struct {
	srv *httptest.Server
	// metadata, when set, replaces the RFC 8414 document (base is the stub's URL).
	metadata func(base string) map[string]any
	script   []string

	mu       sync.Mutex
	requests []string // "METHOD /path"
	starts   []string // the forms device_authorization got
	polls    int
}

func newTokenStub(t *testing.T, script ...string) *tokenStub {
	t.Helper()
	s := &tokenStub{script: script}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

// base is where the stub's documents point: its own URL, unless a test routes a name to it.
func (s *tokenStub) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	base := "http://" + r.Host
	w.Header().Set("Content-Type", "application/json")
	writeJSON := func(code int, v any) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /.well-known/oauth-authorization-server":
		md := map[string]any{"issuer": base, "token_endpoint": base + "/token", "device_authorization_endpoint": base + "/device_authorization",
			"revocation_endpoint": base + "/revoke"}
		if s.metadata != nil {
			md = s.metadata(base)
		}
		if md == nil {
			writeJSON(404, map[string]string{"error": "not_found"})
			return
		}
		writeJSON(200, md)
	case "POST /device_authorization":
		_ = r.ParseForm()
		s.starts = append(s.starts, r.PostForm.Encode())
		writeJSON(200, map[string]any{"device_code": stubDeviceCode, "user_code": stubUserCode,
			"verification_uri": base + "/device", "verification_uri_complete": base + "/device?user_code=" + stubUserCode,
			"expires_in": 600, "interval": 5})
	case "POST /token":
		_ = r.ParseForm()
		f := r.PostForm
		if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" || f.Get("device_code") != stubDeviceCode || f.Get("client_id") != "portcullis-cli" {
			writeJSON(400, map[string]string{"error": "invalid_request", "error_description": "bad poll " + f.Encode()})
			return
		}
		step := ""
		if s.polls < len(s.script) {
			step = s.script[s.polls]
		}
		s.polls++
		switch step {
		case "":
			writeJSON(200, map[string]any{"access_token": stubAccessToken, "token": stubAccessToken, "token_type": "Bearer", "expires_in": 300, "refresh_token": stubRefreshToken})
		case "unavailable":
			writeJSON(503, map[string]string{"error": "temporarily_unavailable"})
		default:
			writeJSON(400, map[string]string{"error": step, "error_description": "step " + step})
		}
	default:
		writeJSON(404, map[string]string{"error": "not_found"})
	}
}

func (s *tokenStub) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// routedClient is hc whose connections to name (host:port) go to the stub instead, so a
// test can name a token server off this machine.
func routedClient(hc *http.Client, name, to string) *http.Client {
	tr := hc.Transport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == name {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// loginRig is what a test injects into loginCmd and reads back.
type loginRig struct {
	mu     sync.Mutex
	sleeps []time.Duration
	opened []string
	// onSleep, when set, runs at each sleep (e.g. to cancel the context).
	onSleep func(ctx context.Context, n int)
}

func (g *loginRig) cmd(stdout, stderr *bytes.Buffer, hc *http.Client, env map[string]string) *loginCmd {
	return &loginCmd{stdout: stdout, stderr: stderr, http: hc, goos: "linux",
		getenv: func(k string) string { return env[k] },
		open: func(_ context.Context, u string) error {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.opened = append(g.opened, u)
			return nil
		},
		sleep: func(ctx context.Context, d time.Duration) error {
			g.mu.Lock()
			g.sleeps = append(g.sleeps, d)
			n, hook := len(g.sleeps), g.onSleep
			g.mu.Unlock()
			if hook != nil {
				hook(ctx, n)
			}
			return ctx.Err()
		},
	}
}

// TestLogin: `portcullis login HOST` against a registry stub and a token server stub. The
// approval comes after two authorization_pending and one slow_down; the waits between polls
// are the interval, 5s more after slow_down; the refresh token lands in config.json as the
// identity token, other entries kept. Refusals: a plain-http token server off this machine,
// an https registry's http realm, denied and expired sign-ins.
func TestLogin(t *testing.T) {
	t.Parallel()
	withDisplay := map[string]string{"DISPLAY": ":0"}
	cases := []struct {
		name     string
		script   []string
		metadata func(base string) map[string]any
		realm    string // "" = the stub's /token; "remote" = http://auth.example.test/token, routed to the stub
		tls      bool   // an https registry
		flags    []string
		env      map[string]string
		wantErr  string // "" = success
		// wantSleeps are the waits before each poll, in seconds (success and denial cases).
		wantSleeps []int
		wantOpened bool
		wantPolls  bool // the token server was reached at all
	}{
		{name: "approved after pending and slow_down", script: []string{"authorization_pending", "authorization_pending", "slow_down"},
			env: withDisplay, wantSleeps: []int{5, 5, 5, 10}, wantOpened: true, wantPolls: true},
		{name: "flags after the registry", flags: []string{"-no-browser"}, env: withDisplay, wantSleeps: []int{5}, wantPolls: true},
		{name: "no display: no browser", env: map[string]string{}, wantSleeps: []int{5}, wantPolls: true},
		{name: "wayland display", env: map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, wantSleeps: []int{5}, wantOpened: true, wantPolls: true},
		{name: "token server briefly away", script: []string{"unavailable", "authorization_pending"}, wantSleeps: []int{5, 5, 5}, wantPolls: true},
		{name: "denied", script: []string{"authorization_pending", "access_denied"}, env: withDisplay, wantOpened: true,
			wantErr: "the sign-in was denied", wantSleeps: []int{5, 5}, wantPolls: true},
		{name: "expired", script: []string{"expired_token"}, wantErr: "the code expired", wantSleeps: []int{5}, wantPolls: true},
		{name: "invalid_grant", script: []string{"invalid_grant"}, wantErr: "invalid_grant", wantSleeps: []int{5}, wantPolls: true},
		{name: "plain-http realm off this machine", realm: "remote", wantErr: "plain http off this machine"},
		{name: "plain-http realm off this machine, -insecure-realm", realm: "remote", flags: []string{"-insecure-realm"},
			wantSleeps: []int{5}, wantPolls: true},
		{name: "https registry, http realm", tls: true, wantErr: "plain http"},
		{name: "metadata names a plain-http endpoint off this machine",
			metadata: func(base string) map[string]any {
				return map[string]any{"token_endpoint": base + "/token", "device_authorization_endpoint": "http://auth.example.test/device_authorization"}
			}, wantErr: "device authorization endpoint http://auth.example.test/device_authorization is plain http"},
		{name: "no device flow", metadata: func(base string) map[string]any { return map[string]any{"token_endpoint": base + "/token"} },
			wantErr: "does not offer a browser sign-in"},
		{name: "no metadata", metadata: func(string) map[string]any { return nil }, wantErr: "publishes no metadata"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stub := newTokenStub(t, tc.script...)
			stub.metadata = tc.metadata
			realm := stub.srv.URL + "/token"
			stubAddr := strings.TrimPrefix(stub.srv.URL, "http://")
			if tc.realm == "remote" {
				realm = "http://auth.example.test/token"
			}
			reg := challengingRegistry(t, realm, tc.tls)
			hc := routedClient(reg.Client(), "auth.example.test:80", stubAddr)
			host := strings.TrimPrefix(strings.TrimPrefix(reg.URL, "http://"), "https://")
			arg := host
			if tc.tls {
				arg = "https://" + host
			}
			dir := t.TempDir()
			path := writeDockerConfig(t, dir, map[string]any{
				"auths":       map[string]any{"https://" + host: map[string]any{"auth": "b2xkOnB3"}, "registry.example.com": map[string]any{"auth": "Ym9iOnB3"}},
				"HttpHeaders": map[string]any{"X-Meta": "kept"},
			})
			var rig loginRig
			var out, errb bytes.Buffer
			err := rig.cmd(&out, &errb, hc, tc.env).exec(t.Context(), append([]string{"-docker-config", dir, arg}, tc.flags...))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("login: %v\nstderr: %s", err, errb.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("login: %v, want an error containing %q\nstderr: %s", err, tc.wantErr, errb.String())
			case tc.wantErr != "" && exitCode(err) != 1:
				t.Fatalf("exit code %d, want 1", exitCode(err))
			}
			all := out.String() + errb.String()
			if err != nil {
				all += err.Error()
			}
			if strings.Contains(all, stubDeviceCode) || strings.Contains(all, stubRefreshToken) {
				t.Fatalf("login printed a secret:\n%s", all)
			}
			var got []int
			for _, d := range rig.sleeps {
				got = append(got, int(d/time.Second))
			}
			if !slices.Equal(got, tc.wantSleeps) {
				t.Errorf("waits %v s, want %v", got, tc.wantSleeps)
			}
			polled := slices.ContainsFunc(stub.seen(), func(s string) bool { return s == "POST /device_authorization" })
			if polled != tc.wantPolls {
				t.Errorf("token server asked to start a flow: %v, want %v (requests %v)", polled, tc.wantPolls, stub.seen())
			}
			wantOpened := []string(nil)
			if tc.wantOpened {
				wantOpened = []string{"http://" + stubAddr + "/device?user_code=" + stubUserCode}
			}
			if !slices.Equal(rig.opened, wantOpened) {
				t.Errorf("opened %v, want %v", rig.opened, wantOpened)
			}
			cfg := readDockerConfig(t, path)
			auths, _ := cfg["auths"].(map[string]any)
			if tc.wantErr != "" {
				if auths["https://"+host] == nil || auths[host] != nil {
					t.Fatalf("a failed login changed the config: %v", cfg)
				}
				return
			}
			if tc.realm == "" && !strings.Contains(errb.String(), "To sign in, open http://"+stubAddr+"/device and enter the code WDJB-MJHT") {
				t.Errorf("stderr %q lacks the prompt", errb.String())
			}
			if out.String() != "Login Succeeded\n" {
				t.Errorf("stdout %q", out.String())
			}
			// The user name beside the token, as docker writes it: containers/image (skopeo,
			// podman) skips an entry whose auth is not "user:password".
			if e, _ := auths[host].(map[string]any); e["identitytoken"] != stubRefreshToken || e["auth"] != "YWxpY2U6" || len(e) != 2 {
				t.Fatalf("auths[%s] = %v, want the identity token and auth base64(\"alice:\")", host, auths[host])
			}
			if auths["https://"+host] != nil || auths["registry.example.com"] == nil || cfg["HttpHeaders"] == nil {
				t.Fatalf("config after login: %v", cfg)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
				t.Errorf("config.json mode %v, want 0600", fi.Mode().Perm())
			}
			stub.mu.Lock()
			start := stub.starts[0]
			stub.mu.Unlock()
			if start != "client_id=portcullis-cli&service=registry.local" {
				t.Errorf("device authorization form %q", start)
			}
		})
	}
}

// TestLoginWaitEnds: Ctrl-C (the context cancelled) and -timeout end the wait with exit 1
// and nothing written.
func TestLoginWaitEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, timeout, want string
	}{
		{name: "interrupted", timeout: "10m", want: "interrupted: not signed in"},
		{name: "timeout", timeout: "100ms", want: "not approved within 100ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stub := newTokenStub(t, slices.Repeat([]string{"authorization_pending"}, 1000)...)
			reg := challengingRegistry(t, stub.srv.URL+"/token", false)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var rig loginRig
			rig.onSleep = func(ctx context.Context, n int) {
				switch {
				case tc.name == "interrupted" && n == 2:
					cancel()
				case tc.name == "timeout" && n == 2:
					<-ctx.Done() // -timeout's deadline
				}
			}
			dir := t.TempDir()
			var out, errb bytes.Buffer
			err := rig.cmd(&out, &errb, reg.Client(), nil).exec(ctx, []string{"-docker-config", dir, "-timeout", tc.timeout, strings.TrimPrefix(reg.URL, "http://")})
			if err == nil || !strings.Contains(err.Error(), tc.want) || exitCode(err) != 1 {
				t.Fatalf("login: %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
				t.Fatal("an unfinished login wrote config.json")
			}
		})
	}
}

// TestLoginCredentialHelper: with credsStore, the identity token goes to the helper (`store`,
// Username "<token>") and config.json keeps only an empty entry, as docker login leaves it;
// portcullis logout finds it there. Not parallel: the helper is found on $PATH.
func TestLoginCredentialHelper(t *testing.T) {
	stub := newTokenStub(t)
	reg := challengingRegistry(t, stub.srv.URL+"/token", false)
	host := strings.TrimPrefix(reg.URL, "http://")
	bin := t.TempDir()
	store := credhelpertest.Build(t, bin, "pctest", map[string][2]string{"registry.example.com": {"bob", "pw"}})
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	path := writeDockerConfig(t, dir, map[string]any{"credsStore": "pctest"})
	var rig loginRig
	var out, errb bytes.Buffer
	if err := rig.cmd(&out, &errb, reg.Client(), nil).exec(t.Context(), []string{"-docker-config", dir, host}); err != nil {
		t.Fatalf("login: %v\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "saved in docker-credential-pctest") || out.String() != "Login Succeeded\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errb.String())
	}
	data, _ := os.ReadFile(store)
	var held map[string]struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal(data, &held); err != nil {
		t.Fatal(err)
	}
	if c := held[host]; c.Username != "<token>" || c.Secret != stubRefreshToken || held["registry.example.com"].Secret != "pw" {
		t.Fatalf("helper store %s", data)
	}
	cfg := readDockerConfig(t, path)
	auths, _ := cfg["auths"].(map[string]any)
	if e, ok := auths[host].(map[string]any); !ok || len(e) != 0 || cfg["credsStore"] != "pctest" {
		t.Fatalf("config after login: %v", cfg)
	}
	if strings.Contains(readFile(t, path), stubRefreshToken) {
		t.Fatal("the token is in config.json as well as in the helper")
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestRegistryArg(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ arg, host, base string }{
		{"localhost:5000", "localhost:5000", "http://localhost:5000"},
		{"127.0.0.1:5000", "127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"registry.example.com", "registry.example.com", "https://registry.example.com"},
		{"Registry.Example.com:443/v2/", "registry.example.com:443", "https://registry.example.com:443"},
		{"http://registry.lan", "registry.lan", "http://registry.lan"},
		{"https://localhost:5000", "localhost:5000", "https://localhost:5000"},
		{"docker.io", "docker.io", "https://registry-1.docker.io"},
	} {
		host, base, err := registryArg(tc.arg)
		if err != nil || host != tc.host || base != tc.base {
			t.Errorf("registryArg(%q) = %q, %q, %v; want %q, %q", tc.arg, host, base, err, tc.host, tc.base)
		}
	}
}

func TestLoginUsage(t *testing.T) {
	t.Parallel()
	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"login", "-h"}, &out, &errb); err != nil ||
		!strings.Contains(errb.String(), "RFC 8628") || !strings.Contains(errb.String(), "-no-browser") {
		t.Errorf("login -h: %v\n%s", err, errb.String())
	}
	for _, args := range [][]string{{"login"}, {"login", "a.example", "b.example"}, {"login", "ftp://a.example"},
		{"login", "-timeout", "0s", "a.example"}, {"login", "-nope", "a.example"}} {
		if _, err := cli(t, args...); exitCode(err) != 2 {
			t.Errorf("%q: %v (exit %d), want a usage error (2)", args, err, exitCode(err))
		}
	}
}

// TestLoginEndToEnd: `portcullis login` against a real Portcullis (all targets), approved the
// way a person does it: the browser the CLI opens signs in on the gateway's pages with a
// password and approves the code. The session lands in docker's config and refreshes. The
// app's clock moves with the CLI's waits, so authn's interval is kept without real sleeping.
func TestLoginEndToEnd(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	clock := testutil.NewClock(time.Now())
	a := app.New(cfg, slog.New(slog.DiscardHandler))
	a.SetNow(clock.Now)
	apptest.StartApp(t, a, "all")
	reg := challengingRegistry(t, "http://"+a.GatewayAddr+"/token", false)
	host := strings.TrimPrefix(reg.URL, "http://")

	var approveErr error
	var opened string
	var waits []time.Duration
	cmd := &loginCmd{goos: "darwin", http: reg.Client(),
		open: func(_ context.Context, u string) error { opened = u; return nil },
		sleep: func(ctx context.Context, d time.Duration) error {
			clock.Add(d)
			waits = append(waits, d)
			if opened != "" {
				approveErr = approveInBrowser(a.PublicURL, opened)
				opened = ""
			}
			return ctx.Err()
		}}
	var out, errb bytes.Buffer
	cmd.stdout, cmd.stderr = &out, &errb
	dir := t.TempDir()
	if err := cmd.exec(t.Context(), []string{"-docker-config", dir, host}); err != nil {
		t.Fatalf("login: %v (approval: %v)\nstderr: %s", err, approveErr, errb.String())
	}
	// The first poll finds it approved: the interval was kept, so no slow_down.
	if approveErr != nil || out.String() != "Login Succeeded\n" || !slices.Equal(waits, []time.Duration{5 * time.Second}) {
		t.Fatalf("approval %v, stdout %q, waits %v", approveErr, out.String(), waits)
	}
	auths, _ := readDockerConfig(t, filepath.Join(dir, "config.json"))["auths"].(map[string]any)
	e, _ := auths[host].(map[string]any)
	rt, _ := e["identitytoken"].(string)
	if !strings.HasPrefix(rt, "pcr_") {
		t.Fatalf("auths[%s] = %v", host, auths[host])
	}
	if code, ans := apptest.Refresh(t, a.GatewayAddr, rt); code != 200 {
		t.Fatalf("refresh with the login's session: %d %v", code, ans)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// approveInBrowser is a person at the verification URL: signs in as alice with her password
// and approves the code the URL carries, through the pages' forms.
func approveInBrowser(publicURL, verification string) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	page := func(resp *http.Response, err error) (string, string, error) {
		if err != nil {
			return "", "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return "", "", fmt.Errorf("%s: %d %.300s", resp.Request.URL, resp.StatusCode, b)
		}
		m := csrfField.FindStringSubmatch(string(b))
		if m == nil {
			return string(b), "", nil
		}
		return string(b), html.UnescapeString(m[1]), nil
	}
	post := func(path string, form url.Values) (string, string, error) {
		req, _ := http.NewRequest("POST", publicURL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", publicURL)
		return page(c.Do(req))
	}
	body, csrf, err := page(c.Get(verification)) // not signed in: the sign-in page
	if err != nil {
		return err
	}
	returnTo := regexp.MustCompile(`name="return_to" value="([^"]*)"`).FindStringSubmatch(body)
	if returnTo == nil || csrf == "" {
		return fmt.Errorf("no sign-in form: %.300s", body)
	}
	if _, csrf, err = post("/signin/password", url.Values{"csrf": {csrf}, "return_to": {html.UnescapeString(returnTo[1])},
		"username": {"alice"}, "password": {"alice"}}); err != nil {
		return err
	}
	code := strings.TrimPrefix(verification[strings.Index(verification, "?"):], "?user_code=")
	if _, csrf, err = post("/device", url.Values{"csrf": {csrf}, "user_code": {code}}); err != nil {
		return err
	}
	body, _, err = post("/device/decide", url.Values{"csrf": {csrf}, "user_code": {code}, "decision": {"approve"}})
	if err != nil {
		return err
	}
	if !strings.Contains(body, "You approved <strong>portcullis-cli</strong> for <strong>registry.local</strong>") {
		return fmt.Errorf("the decision page does not say it was approved: %.500s", body)
	}
	return nil
}

func TestTokenSubject(t *testing.T) {
	t.Parallel()
	jwt := func(payload string) string {
		return "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	for _, tc := range []struct{ name, token, want string }{
		{"sub", jwt(`{"sub":"alice","iss":"portcullis"}`), "alice"},
		{"no sub", jwt(`{"iss":"portcullis"}`), ""},
		{"a colon cannot be a user name", jwt(`{"sub":"ci:job"}`), ""},
		{"not a JWT", "at", ""},
		{"payload not base64url", "a.b*c.d", ""},
		{"payload not JSON", jwt(`alice`), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tokenSubject(tc.token); got != tc.want {
				t.Fatalf("tokenSubject = %q, want %q", got, tc.want)
			}
		})
	}
}
