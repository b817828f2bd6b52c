package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc/health/grpc_health_v1"
)

// FuzzTokenQuery: whatever a client sends, the answer is a JSON 200/400/401, never a 500
// or a panic.
func FuzzTokenQuery(f *testing.F) {
	for _, s := range []string{
		"service=registry.local&scope=repository:alice/app:pull,push",
		"service=registry.local&scope=repository:localhost:5000/a/b:pull&scope=registry:catalog:*",
		"service=registry.local&scope=repository(plugin):a/b:pull%20repository:c:push",
		"service=registry.local&account=alice&client_id=docker&offline_token=true",
		"scope=::&service=", "service=registry.local&scope=%00", "a=%zz",
	} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, query string, creds bool) {
		e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
		req := httptest.NewRequest("GET", "/token", nil)
		req.URL.RawQuery = query
		if creds {
			req.SetBasicAuth("alice", "pw")
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized:
		default:
			t.Fatalf("query %q: status %d", query, rec.Code)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("query %q: body is not JSON: %q", query, rec.Body.String())
		}
		if rec.Code != 200 && (m["error"] == "" || strings.Contains(rec.Body.String(), "panic")) {
			t.Fatalf("query %q: body %s", query, rec.Body.String())
		}
	})
}
