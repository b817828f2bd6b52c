package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/grpctls"
)

// adminHTTP sends method path to the admin REST API with an optional Authorization header
// and returns the status, the body decoded as JSON (failing the test if it is not) and the
// response headers.
func adminHTTP(t *testing.T, addr, method, path, authz, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %v", method, path, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, m, resp.Header
}

// The admin REST API in front of the admin gRPC services: refused without the bearer, the
// session operations and keys with it, JSON errors for bad routes, the OpenAPI document.
func TestAdminHTTP(t *testing.T) {
	t.Parallel()
	cfg, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	withAdmin(t, cfg)
	cfg.Admin.HTTPListen = "127.0.0.1:0"
	a := start(t, cfg, "all")
	if a.AdminHTTPAddr == "" {
		t.Fatal("AdminHTTPAddr is not set")
	}
	good := "Bearer " + testAdminSecret
	rtAlice := offlineLogin(t, a.GatewayAddr, "alice", "alice")
	offlineLogin(t, a.GatewayAddr, "admin", "admin")
	offlineLogin(t, a.GatewayAddr, "admin", "admin")

	for _, tc := range []struct {
		name, method, path, authz, body string
		want                            int
	}{
		{"no credential", "GET", "/v1/sessions", "", "", 401},
		{"wrong bearer", "GET", "/v1/sessions", "Bearer not-the-secret-at-all", "", 401},
		{"basic instead of bearer", "GET", "/v1/keys", "Basic YWRtaW46YWRtaW4=", "", 401},
		{"no credential on revoke", "DELETE", "/v1/users/alice/sessions", "", "", 401},
		{"no credential on rotate", "POST", "/v1/keys:rotate", "", "{}", 401},
		{"unknown route", "GET", "/v1/nothing", good, "", 404},
		{"unknown session", "GET", "/v1/sessions/nosuchsession", good, "", 404},
		{"wrong method", "PUT", "/v1/keys", good, "", 405},
		{"huge body", "POST", "/v1/keys:rotate", good, "{\"x\":\"" + strings.Repeat("a", 1<<20) + "\"}", 413},
		{"list keys", "GET", "/v1/keys", good, "", 200},
	} {
		code, body, hdr := adminHTTP(t, a.AdminHTTPAddr, tc.method, tc.path, tc.authz, tc.body)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d %v, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
			continue
		}
		if code >= 400 {
			if _, ok := body["message"].(string); !ok {
				t.Errorf("%s: error body has no message: %v", tc.name, body)
			}
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without a Bearer challenge", tc.name)
		}
	}

	// List alice's sessions, show one, revoke it: her refresh token stops working.
	code, body, _ := adminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/sessions?subject=alice&page_size=10", good, "")
	list, _ := body["sessions"].([]any)
	if code != 200 || len(list) != 1 {
		t.Fatalf("list alice's sessions: %d %v, want one", code, body)
	}
	id, _ := list[0].(map[string]any)["id"].(string)
	if code, body, _ = adminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/sessions/"+id, good, ""); code != 200 {
		t.Fatalf("show session: %d %v", code, body)
	}
	if code, _ := refresh(t, a.GatewayAddr, rtAlice); code != 200 {
		t.Fatalf("refresh before revocation: %d", code)
	}
	if code, body, _ = adminHTTP(t, a.AdminHTTPAddr, "DELETE", "/v1/sessions/"+id, good, ""); code != 200 {
		t.Fatalf("revoke session: %d %v", code, body)
	}
	if code, ans := refresh(t, a.GatewayAddr, rtAlice); code == 200 {
		t.Fatalf("refresh after revocation through the REST API: %d %v", code, ans)
	}
	code, body, _ = adminHTTP(t, a.AdminHTTPAddr, "DELETE", "/v1/users/admin/sessions", good, "")
	if code != 200 || body["revoked"] != float64(2) {
		t.Fatalf("revoke admin's sessions: %d %v, want revoked 2", code, body)
	}
	if code, body, _ = adminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/sessions", good, ""); code != 200 || len(body["sessions"].([]any)) != 0 {
		t.Fatalf("list after revocations: %d %v, want none", code, body)
	}
	// The development key manager cannot rotate: the route reaches the service, which says so.
	if code, body, _ = adminHTTP(t, a.AdminHTTPAddr, "POST", "/v1/keys:rotate", good, ""); code != 400 || body["code"] != float64(9) {
		t.Fatalf("rotate: %d %v, want 400 FailedPrecondition from the key manager", code, body)
	}

	// The OpenAPI document is served and names every route.
	code, doc, _ := adminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/openapi.json", "", "")
	paths, _ := doc["paths"].(map[string]any)
	if code != 200 || doc["swagger"] != "2.0" {
		t.Fatalf("openapi.json: %d %v", code, doc)
	}
	for _, p := range []string{"/v1/sessions", "/v1/sessions/{id}", "/v1/users/{subject}/sessions", "/v1/keys", "/v1/keys:rotate"} {
		if paths[p] == nil {
			t.Errorf("openapi.json has no path %s", p)
		}
	}
}

func TestAdminHTTPListenConfig(t *testing.T) {
	t.Parallel()
	base, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		set       func(*Config)
		wantError string // "" means valid
	}{
		{"loopback", func(c *Config) { c.Admin.HTTPListen, c.Admin.TokenFile = "127.0.0.1:7090", "/run/secrets/admin" }, ""},
		{"network without opt-in", func(c *Config) { c.Admin.HTTPListen, c.Admin.TokenFile = "0.0.0.0:7090", "/run/secrets/admin" }, "admin.http_listen: 0.0.0.0:7090 is not a loopback address"},
		{"network with insecure_plaintext_grpc", func(c *Config) {
			c.Admin.HTTPListen, c.Admin.TokenFile, c.InsecurePlaintextGRPC = "0.0.0.0:7090", "/run/secrets/admin", true
		}, ""},
		{"no credential", func(c *Config) { c.Admin.HTTPListen = "127.0.0.1:7090" }, "admin.http_listen: set admin.token_file"},
		{"internal_tls", func(c *Config) {
			c.Admin.HTTPListen, c.Admin.TokenFile = "127.0.0.1:7090", "/run/secrets/admin"
			c.InternalTLS = grpctls.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		}, "admin.http_listen: not supported with internal_tls"},
	} {
		c := *base
		tc.set(&c)
		err := c.Validate()
		switch {
		case tc.wantError == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantError)
		}
	}
}
