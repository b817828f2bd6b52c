package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
)

// withRobots adds a robot backend to cfg's chain.
func withRobots(cfg *app.Config) *app.Config {
	cfg.Authn.Backends = append(cfg.Authn.Backends, backend.Spec{Name: "robots", Type: "robot"})
	return cfg
}

// robotsDev is the development config with a robot backend, an admin API and gateway metrics.
func robotsDev(t *testing.T) *app.Config {
	t.Helper()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen, cfg.Gateway.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	return apptest.WithAdmin(t, withRobots(cfg))
}

// robotToken asks the gateway for scope as user with password (Basic) and returns the status
// and, on 200, the token's claims (its signature is tokenAndVerify's business).
func robotToken(t *testing.T, gw, user, pass, scope string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+gw+"/token?service=registry.local&offline_token=true&client_id=docker&scope="+scope, nil)
	req.SetBasicAuth(user, pass)
	code, body := apptest.Send(t, req)
	if code != http.StatusOK {
		return code, nil
	}
	var ans map[string]any
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatalf("token answer: %v", err)
	}
	if _, ok := ans["refresh_token"]; ok {
		t.Errorf("a robot login got a refresh token: its key is its credential")
	}
	tok, _ := ans["token"].(string)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return code, claims
}

type createdRobot struct {
	Robot struct {
		ID      string            `json:"id"`
		Name    string            `json:"name"`
		Subject string            `json:"subject"`
		Groups  []string          `json:"groups"`
		Labels  map[string]string `json:"labels"`
		State   string            `json:"state"`
		Expires string            `json:"expires_at"`
	} `json:"robot"`
	Key string `json:"key"`
}

// The whole path in one process: `portcullis robots create` on the admin API, a token for the
// robot's key through the gateway (no refresh token: the key is the credential), the robot in
// `robots list`, then `robots revoke` and the key refused within a second.
func TestRobotsCreateLoginRevoke(t *testing.T) {
	t.Parallel()
	cfg := robotsDev(t)
	a := apptest.Start(t, cfg, "all")
	adminArgs := []string{"-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile}

	out, err := cli(t, append([]string{"robots", "create", "-name", "ci", "-group", "admins", "-group", "ci",
		"-label", "team=platform", "-expires", "720h", "-o", "json"}, adminArgs...)...)
	if err != nil {
		t.Fatalf("robots create: %v\n%s", err, out)
	}
	var ci createdRobot
	if err := json.Unmarshal([]byte(out), &ci); err != nil {
		t.Fatalf("robots create -o json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(ci.Key, "pcp_") || ci.Robot.Subject != "robot:ci" || ci.Robot.State != "ROBOT_STATE_ACTIVE" ||
		strings.Join(ci.Robot.Groups, ",") != "admins,ci" || ci.Robot.Labels["team"] != "platform" || ci.Robot.Expires == "" {
		t.Fatalf("robots create -o json: %s", out)
	}
	// The table form shows the key once, with the hint to keep it.
	out, err = cli(t, append([]string{"robots", "create", "-name", "reader"}, adminArgs...)...)
	if err != nil || !strings.Contains(out, "shown only this once") || !strings.Contains(out, "docker login -u reader") {
		t.Fatalf("robots create (table): %v\n%s", err, out)
	}
	readerKey := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "pcp_") {
			readerKey = f
		}
	}

	code, claims := robotToken(t, a.GatewayAddr, "ci", ci.Key, "repository:team/app:push,pull")
	acc, _ := json.Marshal(claims["access"])
	if code != 200 || claims["sub"] != "robot:ci" || !strings.Contains(string(acc), `"push"`) {
		t.Fatalf("token for the ci robot (admins): %d %v", code, claims)
	}
	// The default policy gives a robot without groups library/ only.
	code, claims = robotToken(t, a.GatewayAddr, "reader", readerKey, "repository:team/app:push,pull")
	if acc, _ := json.Marshal(claims["access"]); code != 200 || claims["sub"] != "robot:reader" || string(acc) != "[]" {
		t.Fatalf("token for the reader robot: %d %v", code, claims)
	}
	for name, c := range map[string][2]string{
		"another robot's name": {"reader", ci.Key},
		"the subject as name":  {"robot", "ci:" + ci.Key},
		"a password user":      {"alice", ci.Key},
		"a wrong key":          {"ci", "pcp_" + strings.Repeat("A", 43)},
	} {
		if code, _ := robotToken(t, a.GatewayAddr, c[0], c[1], "repository:team/app:pull"); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}

	table, err := cli(t, append([]string{"robots", "list"}, adminArgs...)...)
	if err != nil || !strings.HasPrefix(table, "NAME ") || !strings.Contains(table, "team=platform") || strings.Contains(table, ci.Key) {
		t.Fatalf("robots list: %v\n%s", err, table)
	}
	for _, line := range strings.Split(table, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] != "active" {
			t.Errorf("robots list: %q is not active", line)
		}
	}

	out, err = cli(t, append([]string{"robots", "revoke", "-name", "ci"}, adminArgs...)...)
	if err != nil || !strings.Contains(out, "revoked robot ci") {
		t.Fatalf("robots revoke: %v\n%s", err, out)
	}
	// Within a second, through the login cache (30s TTL) that held the key.
	testutil.WaitFor(t, time.Second, 20*time.Millisecond, "the revoked key refused", func() error {
		if code, _ := robotToken(t, a.GatewayAddr, "ci", ci.Key, "repository:team/app:pull"); code != http.StatusUnauthorized {
			return fmt.Errorf("the revoked key still logs in: %d", code)
		}
		return nil
	})
	out, err = cli(t, append([]string{"robots", "list", "-o", "json"}, adminArgs...)...)
	var l struct {
		Robots []struct {
			Name, State string
			LastUsedAt  string `json:"last_used_at"`
		} `json:"robots"`
	}
	if err != nil || json.Unmarshal([]byte(out), &l) != nil || len(l.Robots) != 2 || l.Robots[0].Name != "ci" || l.Robots[0].State != "ROBOT_STATE_REVOKED" {
		t.Fatalf("robots list -o json after the revoke: %v\n%s", err, out)
	}
	// Revoking again is fine; the name can be used again, for a new key.
	if _, err := cli(t, append([]string{"robots", "revoke", "-name", "ci"}, adminArgs...)...); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := cli(t, append([]string{"robots", "revoke", "-name", "nobody"}, adminArgs...)...); status.Code(err) != codes.NotFound {
		t.Fatalf("revoking an unknown robot: %v, want NotFound", err)
	}
	if _, err := cli(t, append([]string{"robots", "create", "-name", "reader"}, adminArgs...)...); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("creating an existing robot: %v, want AlreadyExists", err)
	}
	out, err = cli(t, append([]string{"robots", "create", "-name", "ci", "-o", "json"}, adminArgs...)...)
	var ci2 createdRobot
	if err != nil || json.Unmarshal([]byte(out), &ci2) != nil || ci2.Key == ci.Key || ci2.Robot.ID == ci.Robot.ID {
		t.Fatalf("re-creating ci: %v\n%s", err, out)
	}
	if code, _ := robotToken(t, a.GatewayAddr, "ci", ci2.Key, "repository:team/app:pull"); code != 200 {
		t.Fatalf("the new ci key: %d", code)
	}
	if code, _ := robotToken(t, a.GatewayAddr, "ci", ci.Key, "repository:team/app:pull"); code != http.StatusUnauthorized {
		t.Fatalf("the old ci key after re-creation: %d", code)
	}

	// In -target=all authn's metrics are served beside the gateway's.
	_, metrics := apptest.Get(t, http.DefaultClient, "http://"+a.MetricsAddr+"/metrics", nil)
	for _, want := range []string{
		`portcullis_authn_robot_events_total{event="created"} 3`,
		`portcullis_authn_robot_events_total{event="revoked"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(metrics, `portcullis_authn_robot_events_total{event="refused"}`) ||
		strings.Contains(metrics, `portcullis_authn_robot_events_total{event="refused"} 0`) {
		t.Errorf("refused robot logins are not counted")
	}
}

// An expired robot's key is refused, however recently it logged in.
func TestRobotsExpiry(t *testing.T) {
	t.Parallel()
	cfg := robotsDev(t)
	clk := testutil.NewRealClock()
	a := app.New(cfg, slog.New(slog.DiscardHandler))
	a.SetNow(clk.Now)
	apptest.StartApp(t, a, "all")
	adminArgs := []string{"-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile}
	out, err := cli(t, append([]string{"robots", "create", "-name", "temp", "-expires", "1h", "-o", "json"}, adminArgs...)...)
	var r createdRobot
	if err != nil || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("robots create: %v\n%s", err, out)
	}
	if code, _ := robotToken(t, a.GatewayAddr, "temp", r.Key, "repository:library/x:pull"); code != 200 {
		t.Fatalf("before expiry: %d", code)
	}
	clk.Add(time.Hour)
	if code, _ := robotToken(t, a.GatewayAddr, "temp", r.Key, "repository:library/x:pull"); code != http.StatusUnauthorized {
		t.Fatalf("at expiry: %d, want 401", code)
	}
	out, err = cli(t, append([]string{"robots", "list"}, adminArgs...)...)
	if err != nil || !strings.Contains(out, "expired") {
		t.Fatalf("robots list after expiry: %v\n%s", err, out)
	}
}

func robotAdminCode(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := authnv1.NewRobotAdminServiceClient(cc).ListRobots(ctx, &authnv1.ListRobotsRequest{}, opts...)
	return status.Code(err)
}

// The robot admin API is the admin's only: refused without the bearer, with another role's
// certificate, and on the services' address; not served where no robot backend runs.
func TestRobotAdminIsAdminOnly(t *testing.T) {
	t.Parallel()
	secret := grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))
	t.Run("bearer", func(t *testing.T) {
		t.Parallel()
		cfg := withRobots(apptest.WithAdmin(t, apptest.SplitConfig(t)))
		apptest.Start(t, cfg, "authn")
		cc := apptest.DialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
		if got := robotAdminCode(cc, secret); got != codes.OK {
			t.Errorf("with the secret: %v", got)
		}
		if got := robotAdminCode(cc); got != codes.Unauthenticated {
			t.Errorf("without the secret: %v, want Unauthenticated", got)
		}
		if got := robotAdminCode(cc, grpc.PerRPCCredentials(apptest.Bearer("not-the-admin-secret-at-all"))); got != codes.Unauthenticated {
			t.Errorf("with a wrong secret: %v, want Unauthenticated", got)
		}
		svc := apptest.DialWith(t, cfg.Authn.Listen, insecure.NewCredentials())
		if got := robotAdminCode(svc, secret); got != codes.Unimplemented && got != codes.PermissionDenied {
			t.Errorf("on authn's service address: %v, want it refused", got)
		}
	})
	t.Run("mutual TLS", func(t *testing.T) {
		t.Parallel()
		pki := apptest.NewRolePKI(t)
		cfg := withRobots(apptest.WithAdmin(t, apptest.SplitConfig(t)))
		apptest.Start(t, pki.As(cfg, "authn"), "authn")
		for _, tc := range []struct {
			role string
			want codes.Code
		}{{"admin", codes.OK}, {"gateway", codes.PermissionDenied}, {"authn", codes.PermissionDenied}} {
			if got := robotAdminCode(apptest.DialWith(t, cfg.Admin.Listen, apptest.ClientCreds(t, pki[tc.role])), secret); got != tc.want {
				t.Errorf("%s certificate: ListRobots %v, want %v", tc.role, got, tc.want)
			}
		}
	})
	t.Run("no robot backend", func(t *testing.T) {
		t.Parallel()
		cfg, err := app.DevConfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Gateway.Listen = "127.0.0.1:0"
		apptest.WithAdmin(t, cfg)
		a := apptest.Start(t, cfg, "all")
		if got := robotAdminCode(apptest.DialWith(t, a.AdminAddr, insecure.NewCredentials()), secret); got != codes.Unimplemented {
			t.Errorf("without a robot backend: %v, want Unimplemented", got)
		}
	})
}

// With sessions and the lockout off, a robot backend still opens the store for its robots.
func TestRobotsWithoutSessionsOrLockout(t *testing.T) {
	t.Parallel()
	cfg := robotsDev(t)
	off := false
	cfg.Sessions.Enabled, cfg.Authn.Lockout.Enabled = &off, &off
	if !cfg.StoreUsed() {
		t.Fatal("a robot backend does not open the store")
	}
	a := apptest.Start(t, cfg, "all")
	out, err := cli(t, "robots", "create", "-name", "ci", "-o", "json", "-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile)
	var r createdRobot
	if err != nil || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("robots create: %v\n%s", err, out)
	}
	if code, claims := robotToken(t, a.GatewayAddr, "ci", r.Key, "repository:library/x:pull"); code != 200 || claims["sub"] != "robot:ci" {
		t.Fatalf("robot login with sessions and lockout off: %d %v", code, claims)
	}
}

// The robot admin API on the admin REST listener (routes from proto/portcullis/admin_api.yaml):
// create, show, list, revoke, its refusals and errors as JSON, and the OpenAPI document.
func TestRobotsREST(t *testing.T) {
	t.Parallel()
	cfg := robotsDev(t)
	cfg.Admin.HTTPListen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	addr := a.AdminHTTPAddr
	good := "Bearer " + apptest.AdminSecret

	code, body, _ := apptest.AdminHTTP(t, addr, "POST", "/v1/robots", good, `{"name":"ci","groups":["admins"],"labels":{"team":"platform"},"expires_in":"3600s"}`)
	key, _ := body["key"].(string)
	robot, _ := body["robot"].(map[string]any)
	if code != 200 || !strings.HasPrefix(key, "pcp_") || robot["subject"] != "robot:ci" || robot["expiresAt"] == nil {
		t.Fatalf("POST /v1/robots: %d %v", code, body)
	}
	if code, _ := robotToken(t, a.GatewayAddr, "ci", key, "repository:x/y:pull"); code != 200 {
		t.Fatalf("the key made over REST: %d", code)
	}
	for _, tc := range []struct {
		name, method, path, authz, body string
		want                            int
	}{
		{"no credential", "GET", "/v1/robots", "", "", 401},
		{"no credential on create", "POST", "/v1/robots", "", `{"name":"x"}`, 401},
		{"no credential on revoke", "DELETE", "/v1/robots/ci", "", "", 401},
		{"duplicate", "POST", "/v1/robots", good, `{"name":"ci"}`, 409},
		{"bad name", "POST", "/v1/robots", good, `{"name":"Robot:CI"}`, 400},
		{"malformed body", "POST", "/v1/robots", good, `{`, 400},
		{"bad duration", "POST", "/v1/robots", good, `{"name":"y","expires_in":"soon"}`, 400},
		{"unknown robot", "GET", "/v1/robots/nobody", good, "", 404},
		{"revoke unknown", "DELETE", "/v1/robots/nobody", good, "", 404},
		{"negative page_size", "GET", "/v1/robots?page_size=-1", good, "", 400},
		{"forged page_token", "GET", "/v1/robots?page_token=AAAA", good, "", 400},
		{"unknown query parameter", "GET", "/v1/robots?user=x", good, "", 400},
		{"show", "GET", "/v1/robots/ci", good, "", 200},
		{"list", "GET", "/v1/robots?page_size=10", good, "", 200},
	} {
		code, body, _ := apptest.AdminHTTP(t, addr, tc.method, tc.path, tc.authz, tc.body)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d %v, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
		}
		if strings.Contains(func() string { b, _ := json.Marshal(body); return string(b) }(), key) {
			t.Errorf("%s: the key is in the answer", tc.name)
		}
	}
	code, body, _ = apptest.AdminHTTP(t, addr, "DELETE", "/v1/robots/ci", good, "")
	if robot, _ := body["robot"].(map[string]any); code != 200 || robot["state"] != "ROBOT_STATE_REVOKED" {
		t.Fatalf("DELETE /v1/robots/ci: %d %v", code, body)
	}
	testutil.WaitFor(t, time.Second, 20*time.Millisecond, "the key revoked over REST refused", func() error {
		if code, _ := robotToken(t, a.GatewayAddr, "ci", key, "repository:x/y:pull"); code != http.StatusUnauthorized {
			return fmt.Errorf("the revoked key still logs in: %d", code)
		}
		return nil
	})

	code, doc, _ := apptest.AdminHTTP(t, addr, "GET", "/v1/openapi.json", "", "")
	paths, _ := doc["paths"].(map[string]any)
	if code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	for p, methods := range map[string][]string{"/v1/robots": {"get", "post"}, "/v1/robots/{name}": {"get", "delete"}} {
		ops, _ := paths[p].(map[string]any)
		for _, m := range methods {
			if ops[m] == nil {
				t.Errorf("openapi.json has no %s %s", m, p)
			}
		}
	}
}

func TestRobotsCLIUsage(t *testing.T) {
	t.Parallel()
	tok := apptest.WriteFile(t, "tok", apptest.AdminSecret)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"robots"}, "give a subcommand"},
		{[]string{"robots", "delete"}, `unknown command "delete" for "portcullis robots"`},
		{[]string{"robots", "create", "-admin-token-file", tok}, "-name is required"},
		{[]string{"robots", "revoke", "-admin-token-file", tok}, "-name is required"},
		{[]string{"robots", "create", "-name", "ci", "-label", "novalue", "-admin-token-file", tok}, "want KEY=VALUE"},
		{[]string{"robots", "create", "-name", "ci", "-label", "a=1", "-label", "a=2", "-admin-token-file", tok}, "given twice"},
		{[]string{"robots", "create", "-name", "ci", "-expires", "-1h", "-admin-token-file", tok}, "must not be negative"},
		{[]string{"robots", "create", "-name", "ci", "-expires", "soon", "-admin-token-file", tok}, "invalid value"},
		{[]string{"robots", "list", "-name", "ci", "-admin-token-file", tok}, "not defined: -name"},
		{[]string{"robots", "revoke", "-name", "ci", "-group", "x", "-admin-token-file", tok}, "not defined: -group"},
		{[]string{"robots", "list"}, "-admin-token-file is required"},
		{[]string{"robots", "list", "-admin-token-file", tok, "-o", "yaml"}, "-o must be table or json"},
		{[]string{"robots", "list", "-admin-token-file", tok, "extra"}, "unexpected arguments"},
	} {
		_, err := cli(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("portcullis %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}

func TestRobotsConfig(t *testing.T) {
	t.Parallel()
	if err := apptest.LoadValidate(t, strings.Replace(apptest.ValidDoc, "  backends:\n", "  backends:\n    - {name: robots, type: robot}\n", 1)); err != nil {
		t.Errorf("a robot backend: %v", err)
	}
	err := apptest.LoadValidate(t, strings.Replace(apptest.ValidDoc, "  backends:\n", "  backends:\n    - {name: robots, type: robot, config: {cache: 1s}}\n", 1))
	if err == nil || !strings.Contains(err.Error(), "cache") {
		t.Errorf("an unknown robot config key: %v", err)
	}
}

// Behind a proxy the gateway does not trust, every client has the proxy's address: wrong
// passwords for many names lock that address, yet a robot key (which nobody can guess) still
// logs in from it, while a password stays refused.
func TestRobotKeyNotHeldOffByAddressLock(t *testing.T) {
	t.Parallel()
	cfg := robotsDev(t)
	cfg.Authn.Lockout.MaxFailuresPerAddress = 5
	cfg.Authn.Lockout.BaseDelay = config.Duration(30 * time.Second)
	cfg.Gateway.BackendTimeout = config.Duration(time.Minute) // bcrypt is slow under -race
	a := apptest.Start(t, cfg, "all")
	out, err := cli(t, "robots", "create", "-name", "ci", "-o", "json", "-addr", a.AdminAddr, "-admin-token-file", cfg.Admin.TokenFile)
	var ci createdRobot
	if err != nil || json.Unmarshal([]byte(out), &ci) != nil {
		t.Fatalf("robots create: %v\n%s", err, out)
	}
	for i := range 5 {
		if code, _ := robotToken(t, a.GatewayAddr, fmt.Sprintf("user%d", i), "guess", "repository:team/app:pull"); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d, want 401", i, code)
		}
	}
	if code, _ := robotToken(t, a.GatewayAddr, "alice", "alice", "repository:alice/app:pull"); code != http.StatusTooManyRequests {
		t.Fatalf("a password from the locked address: %d, want 429", code)
	}
	if code, claims := robotToken(t, a.GatewayAddr, "ci", ci.Key, "repository:team/app:pull"); code != http.StatusOK || claims["sub"] != "robot:ci" {
		t.Fatalf("the robot key from the locked address: %d, want 200", code)
	}
}

// A refresh token cannot be guessed either: a valid one refreshes from a locked address, and
// wrong ones count toward their address like wrong passwords.
func TestRefreshTokensAndTheAddressLock(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authn.Lockout.MaxFailuresPerAddress = 5
	cfg.Authn.Lockout.BaseDelay = config.Duration(30 * time.Second)
	cfg.Gateway.BackendTimeout = config.Duration(time.Minute)
	a := apptest.Start(t, cfg, "all")
	rt := apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
	for i := range 5 {
		if code, ans := apptest.Refresh(t, a.GatewayAddr, "pcr_"+strings.Repeat(fmt.Sprint(i), 43)); code != http.StatusBadRequest || ans["error"] != "invalid_grant" {
			t.Fatalf("wrong refresh token %d: %d %v, want 400 invalid_grant", i, code, ans)
		}
	}
	if code, _ := robotToken(t, a.GatewayAddr, "alice", "alice", "repository:alice/app:pull"); code != http.StatusTooManyRequests {
		t.Fatalf("a password after 5 wrong refresh tokens from its address: %d, want 429", code)
	}
	if code, ans := apptest.Refresh(t, a.GatewayAddr, rt); code != http.StatusOK {
		t.Fatalf("a valid refresh token from the locked address: %d %v, want 200", code, ans)
	}
}
