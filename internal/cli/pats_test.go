package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

type createdPAT struct {
	PAT struct {
		ID, Owner, Name, State string
		Scopes                 []string
		ExpiresAt              string `json:"expires_at"`
	} `json:"personal_access_token"`
	Secret string `json:"secret"`
}

// patsDev is the development config (alice and admin, static users) with tokens on.
func patsDev(t *testing.T) *app.Config {
	t.Helper()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen, cfg.Gateway.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SSO.PAT.Enabled = true
	return apptest.WithAdmin(t, cfg)
}

// access is the token's access claim as "type:name:actions" strings.
func access(claims map[string]any) string {
	var out []string
	list, _ := claims["access"].([]any)
	for _, e := range list {
		m, _ := e.(map[string]any)
		var acts []string
		for _, a := range m["actions"].([]any) {
			acts = append(acts, a.(string))
		}
		out = append(out, fmt.Sprintf("%s:%s:%s", m["type"], m["name"], strings.Join(acts, ",")))
	}
	return strings.Join(out, " ")
}

// The whole path in one process: `portcullis pats create` on the admin API, the token logging
// in as alice through the gateway (no refresh token) and narrowed, refused under any other
// user name and in every malformed form, then revoked.
func TestPATsCreateLoginRevoke(t *testing.T) {
	t.Parallel()
	cfg := patsDev(t)
	a := apptest.Start(t, cfg, "all")
	adminArgs := []string{"-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile}
	pats := func(args ...string) (string, error) {
		return cli(t, append(append([]string{"pats"}, args...), adminArgs...)...)
	}

	out, err := pats("create", "-owner", "alice", "-name", "ci", "-expires", "24h", "-scope", "repository:alice/*:pull", "-o", "json")
	var ci createdPAT
	if err != nil || json.Unmarshal([]byte(out), &ci) != nil {
		t.Fatalf("pats create: %v\n%s", err, out)
	}
	if !strings.HasPrefix(ci.Secret, "pat_") || ci.PAT.Owner != "alice" || ci.PAT.State != "PERSONAL_ACCESS_TOKEN_STATE_ACTIVE" ||
		strings.Join(ci.PAT.Scopes, " ") != "repository:alice/*:pull" || ci.PAT.ExpiresAt == "" {
		t.Fatalf("pats create -o json: %s", out)
	}
	// The table form shows the secret once, with the hint to keep it; no narrowing here.
	out, err = pats("create", "-owner", "alice", "-name", "all", "-expires", "1h")
	if err != nil || !strings.Contains(out, "shown only this once") || !strings.Contains(out, "docker login -u alice") ||
		!strings.Contains(out, "everything the owner gets") {
		t.Fatalf("pats create (table): %v\n%s", err, out)
	}
	var all string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "pat_") {
			all = f
		}
	}

	// The default policy gives alice pull and push under alice/; the narrowed token pull only.
	code, claims := robotToken(t, a.GatewayAddr, "alice", ci.Secret, "repository:alice/app:push,pull")
	if code != 200 || claims["sub"] != "alice" || access(claims) != "repository:alice/app:pull" {
		t.Fatalf("narrowed token: %d %v", code, claims)
	}
	if code, claims := robotToken(t, a.GatewayAddr, "alice", all, "repository:alice/app:push,pull"); code != 200 || access(claims) != "repository:alice/app:push,pull" {
		t.Fatalf("token without narrowing: %d %v", code, claims)
	}
	// The OAuth2 password grant (containerd, buildkit) takes the token as well, and under
	// another user name refuses it.
	for user, want := range map[string]int{"alice": 200, "admin": 400} {
		form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {ci.Secret}, "service": {"registry.local"},
			"client_id": {"containerd"}, "scope": {"repository:alice/app:pull,push"}}
		req, _ := http.NewRequest("POST", "http://"+a.GatewayAddr+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, body := apptest.Send(t, req)
		if code != want || (want == 200 && !strings.Contains(string(body), "access_token")) {
			t.Errorf("password grant as %s: %d %s, want %d", user, code, body, want)
		}
	}
	// Nothing beyond the policy either: another person's repository stays closed.
	if code, claims := robotToken(t, a.GatewayAddr, "alice", all, "repository:admin/app:pull"); code != 200 || access(claims) != "" {
		t.Fatalf("token for admin's repository: %d %v", code, claims)
	}
	for name, c := range map[string][2]string{
		"another user's name":   {"admin", ci.Secret},
		"the wrong prefix":      {"alice", "pcp_" + ci.Secret[4:]},
		"truncated":             {"alice", ci.Secret[:len(ci.Secret)-1]},
		"a made-up token":       {"alice", "pat_" + strings.Repeat("A", 43)},
		"1 MB":                  {"alice", "pat_" + strings.Repeat("A", 1<<20)},
		"alice's password form": {"alice", "alice" + ci.Secret},
	} {
		if code, _ := robotToken(t, a.GatewayAddr, c[0], c[1], "repository:alice/app:pull"); code != http.StatusUnauthorized &&
			!(name == "1 MB" && code >= 400 && code < 500) {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}

	for _, c := range []struct {
		args []string
		code codes.Code
	}{
		{[]string{"create", "-owner", "alice", "-name", "ci", "-expires", "1h"}, codes.AlreadyExists},
		{[]string{"create", "-owner", "nobody", "-name", "ci", "-expires", "1h"}, codes.FailedPrecondition},
		{[]string{"create", "-owner", "alice", "-name", "long", "-expires", "2161h"}, codes.InvalidArgument},
		{[]string{"create", "-owner", "alice", "-name", "bad", "-expires", "1h", "-scope", "repository:alice/*"}, codes.InvalidArgument},
		{[]string{"revoke", "-id", "pid_nope"}, codes.NotFound},
	} {
		if _, err := pats(c.args...); status.Code(err) != c.code {
			t.Errorf("pats %v: %v, want %v", c.args, err, c.code)
		}
	}

	table, err := pats("list", "-owner", "alice")
	if err != nil || !strings.HasPrefix(table, "ID ") || !strings.Contains(table, "repository:alice/*:pull") || strings.Contains(table, ci.Secret) {
		t.Fatalf("pats list: %v\n%s", err, table)
	}
	out, err = pats("revoke", "-id", ci.PAT.ID)
	if err != nil || !strings.Contains(out, "revoked alice's token ci") {
		t.Fatalf("pats revoke: %v\n%s", err, out)
	}
	// Within a second, through the login cache (30s TTL) that held the token.
	testutil.WaitFor(t, time.Second, 20*time.Millisecond, "the revoked token refused", func() error {
		if code, _ := robotToken(t, a.GatewayAddr, "alice", ci.Secret, "repository:alice/app:pull"); code != http.StatusUnauthorized {
			return fmt.Errorf("the revoked token still logs in: %d", code)
		}
		return nil
	})
	out, err = pats("list", "-owner", "alice", "-o", "json")
	if err != nil || strings.Contains(out, ci.PAT.ID) || !strings.Contains(out, `"all"`) {
		t.Fatalf("pats list -o json after the revoke: %v\n%s", err, out)
	}
}

// Without sso.pat.enabled there is no token service, and a pat_ password is no password.
func TestPATsOff(t *testing.T) {
	t.Parallel()
	cfg := patsDev(t)
	cfg.SSO.PAT.Enabled = false
	a := apptest.Start(t, cfg, "all")
	if _, err := cli(t, "pats", "list", "-owner", "alice", "-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile); status.Code(err) != codes.Unimplemented {
		t.Errorf("pats list with tokens off: %v, want Unimplemented", err)
	}
	if code, _ := robotToken(t, a.GatewayAddr, "alice", "pat_"+strings.Repeat("A", 43), "repository:alice/app:pull"); code != http.StatusUnauthorized {
		t.Errorf("a pat_ password with tokens off: %d, want 401", code)
	}
}

// Through the whole app: wrong tokens count toward, and a lock on, the owner's (account,
// address) pair like wrong passwords; an address lock (sprayed passwords) never holds a valid
// token off. The locks last an hour, so a slow machine's next request still meets them.
func TestPATsLockout(t *testing.T) {
	t.Parallel()
	cfg := patsDev(t)
	l := &cfg.Authn.Lockout
	l.MaxFailuresPerAccountAddress, l.MaxFailuresPerAddress = 2, 4
	l.BaseDelay, l.MaxDelay, l.Window = config.Duration(time.Hour), config.Duration(time.Hour), config.Duration(time.Hour)
	a := apptest.Start(t, cfg, "all")
	adminArgs := []string{"-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile}
	secret := func(owner string) string {
		out, err := cli(t, append([]string{"pats", "create", "-owner", owner, "-name", "ci", "-expires", "1h", "-o", "json"}, adminArgs...)...)
		var p createdPAT
		if err != nil || json.Unmarshal([]byte(out), &p) != nil {
			t.Fatalf("pats create: %v\n%s", err, out)
		}
		return p.Secret
	}
	alice, admin := secret("alice"), secret("admin")
	for i, s := range []struct {
		user, pass string
		want       int
	}{
		// Two wrong tokens for admin lock admin's pair: his right token waits too.
		{"admin", "pat_" + strings.Repeat("A", 43), 401},
		{"admin", "pat_" + strings.Repeat("B", 43), 401},
		{"admin", admin, 429},
		// Two wrong passwords more lock the address (four failures): alice's password waits,
		// her token does not.
		{"u1", "guess", 401},
		{"u2", "guess", 401},
		{"alice", "alice", 429},
		{"alice", alice, 200},
	} {
		if code, _ := robotToken(t, a.GatewayAddr, s.user, s.pass, "repository:alice/app:pull"); code != s.want {
			t.Fatalf("step %d (%s): %d, want %d", i, s.user, code, s.want)
		}
	}
}

// The token admin API on the admin REST listener (routes from proto/portcullis/admin_api.yaml):
// create, list, revoke, refusals and errors as JSON, and the OpenAPI document.
func TestPATsREST(t *testing.T) {
	t.Parallel()
	cfg := patsDev(t)
	cfg.Admin.HTTPListen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	addr := a.AdminHTTPAddr
	good := "Bearer " + apptest.AdminSecret

	code, body, _ := apptest.AdminHTTP(t, addr, "POST", "/v1/users/alice/pats", good,
		`{"name":"ci","expires_in":"3600s","scopes":["repository:alice/*:pull"]}`)
	secret, _ := body["secret"].(string)
	p, _ := body["personalAccessToken"].(map[string]any)
	id, _ := p["id"].(string)
	if code != 200 || !strings.HasPrefix(secret, "pat_") || p["owner"] != "alice" || id == "" {
		t.Fatalf("POST /v1/users/alice/pats: %d %v", code, body)
	}
	if code, claims := robotToken(t, a.GatewayAddr, "alice", secret, "repository:alice/app:pull,push"); code != 200 || access(claims) != "repository:alice/app:pull" {
		t.Fatalf("the token made over REST: %d %v", code, claims)
	}
	for _, tc := range []struct {
		name, method, path, authz, body string
		want                            int
	}{
		{"no credential", "GET", "/v1/users/alice/pats", "", "", 401},
		{"no credential on create", "POST", "/v1/users/alice/pats", "", `{"name":"x","expires_in":"60s"}`, 401},
		{"no credential on revoke", "DELETE", "/v1/pats/" + id, "", "", 401},
		{"duplicate", "POST", "/v1/users/alice/pats", good, `{"name":"ci","expires_in":"60s"}`, 409},
		{"no expiry", "POST", "/v1/users/alice/pats", good, `{"name":"x"}`, 400},
		{"beyond max_ttl", "POST", "/v1/users/alice/pats", good, `{"name":"x","expires_in":"8000000s"}`, 400},
		{"bad scope", "POST", "/v1/users/alice/pats", good, `{"name":"x","expires_in":"60s","scopes":["alice/*"]}`, 400},
		{"unknown owner", "POST", "/v1/users/nobody/pats", good, `{"name":"x","expires_in":"60s"}`, 400},
		{"malformed body", "POST", "/v1/users/alice/pats", good, `{`, 400},
		{"revoke unknown", "DELETE", "/v1/pats/pid_nope", good, "", 404},
		{"list", "GET", "/v1/users/alice/pats", good, "", 200},
	} {
		code, body, _ := apptest.AdminHTTP(t, addr, tc.method, tc.path, tc.authz, tc.body)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d %v, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
		}
		if b, _ := json.Marshal(body); strings.Contains(string(b), secret[4:]) {
			t.Errorf("%s: the secret is in the answer", tc.name)
		}
	}
	if code, body, _ := apptest.AdminHTTP(t, addr, "DELETE", "/v1/pats/"+id, good, ""); code != 200 {
		t.Fatalf("DELETE /v1/pats/%s: %d %v", id, code, body)
	}
	testutil.WaitFor(t, time.Second, 20*time.Millisecond, "the token revoked over REST refused", func() error {
		if code, _ := robotToken(t, a.GatewayAddr, "alice", secret, "repository:alice/app:pull"); code != http.StatusUnauthorized {
			return fmt.Errorf("the revoked token still logs in: %d", code)
		}
		return nil
	})
	code, doc, _ := apptest.AdminHTTP(t, addr, "GET", "/v1/openapi.json", "", "")
	paths, _ := doc["paths"].(map[string]any)
	if code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	for path, methods := range map[string][]string{"/v1/users/{owner}/pats": {"get", "post"}, "/v1/pats/{id}": {"delete"}} {
		ops, _ := paths[path].(map[string]any)
		for _, m := range methods {
			if ops[m] == nil {
				t.Errorf("openapi.json has no %s %s", m, path)
			}
		}
	}
}
