package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"google.golang.org/grpc/health/grpc_health_v1"
)

// A login name holding ':' could pass for a namespaced subject (robot:ci is the robot "ci",
// system:anonymous the anonymous caller): the OAuth2 form refuses it as a bad request without
// asking authn. HTTP Basic cannot carry one: its user name ends at the first ':'.
func TestUsernamesCannotNameANamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
	for _, user := range []string{"robot:ci", "system:anonymous", "corp:alice"} {
		resp, err := http.PostForm(e.srv.URL+"/token", url.Values{"grant_type": {"password"}, "username": {user}, "password": {"pw"},
			"service": {"registry.local"}, "client_id": {"docker"}, "scope": {"repository:a/b:pull"}})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Errorf("POST username %q: %d %v, want 400 invalid_request", user, resp.StatusCode, m)
		}
	}
	if n := e.authn.calls.Load(); n != 0 {
		t.Fatalf("authn asked %d times about a namespaced user name", n)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/token?service=registry.local&scope=repository:a/b:pull", nil)
	req.SetBasicAuth("robot:ci", "pw") // on the wire: robot:ci:pw, read as user "robot"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || e.authn.last.Load().GetUsername() != "robot" {
		t.Fatalf("Basic robot:ci: %d, authn asked about %q; want 401 for user \"robot\"", resp.StatusCode, e.authn.last.Load().GetUsername())
	}
}
