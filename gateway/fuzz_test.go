package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-dev/portcullis/gateway"
)

// FuzzTokenQuery: whatever a client sends, with backends that succeed, the answer is a JSON
// 200/400/401, never a 5xx or a panic, and an error answer names its OAuth2 error. A refresh
// token (as a Basic password) is never logged.
func FuzzTokenQuery(f *testing.F) {
	for _, s := range []string{
		"service=registry.local&scope=repository:alice/app:pull,push",
		"service=registry.local&scope=repository:localhost:5000/a/b:pull&scope=registry:catalog:*",
		"service=registry.local&scope=repository(plugin):a/b:pull%20repository:c:push",
		"service=registry.local&account=alice&client_id=docker&offline_token=true",
		"scope=::&service=", "service=registry.local&scope=%00", "a=%zz",
		"service=registry.local&account=", "service=registry.local&account=bob&scope=repository:a:pull",
	} {
		f.Add(s, "alice", "pw", true)
		f.Add(s, "", "pw", true)
		f.Add(s, "", fakeRefreshToken, true)
		f.Add(s, "<token>", "pcr_", true)
	}
	f.Fuzz(func(t *testing.T, query, user, pass string, creds bool) {
		e := newEnvWith(t, envConfig{health: grpc_health_v1.HealthCheckResponse_SERVING, noServer: true})
		req := httptest.NewRequest("GET", "/token", nil)
		req.URL.RawQuery = query
		if creds {
			req.SetBasicAuth(user, pass)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		checkFuzzAnswer(t, query, rec)
		if creds && (user == "" || user == "<token>") && strings.HasPrefix(pass, "pcr_") && len(pass) > 8 && strings.Contains(e.log.String(), pass) {
			t.Fatalf("the log holds the refresh token:\n%s", e.log.String())
		}
	})
}

// FuzzTokenForm: the same for POST /token, whatever the body and content type.
func FuzzTokenForm(f *testing.F) {
	for _, s := range []string{
		dockerRefreshForm(fakeRefreshToken).Encode(),
		with(dockerRefreshForm(fakeRefreshToken), "client_id", "containerd-client").Encode(),
		"grant_type=password&username=alice&password=pw&access_type=offline&client_id=containerd-client&service=registry.local&scope=repository:a/b:pull",
		"grant_type=refresh_token&refresh_token=pcr_x&refresh_token=pcr_y&client_id=docker&service=registry.local",
		"grant_type=client_credentials", "grant_type=%zz", "", "&&==&", "scope=%00&grant_type=password",
		`{"grant_type":"password"}`,
		exchangeForm().Encode(),
		withDup(with(exchangeForm(), "service", "\x00", "audience", "registry.local"), "audience", "other.local").Encode(),
		with(exchangeForm(), "subject_token", "a.b.", "actor_token", "x", "resource", "https://x/").Encode(),
	} {
		for _, ct := range []string{formType, formType + "; charset=utf-8", "application/json", "", "multipart/form-data", ";;="} {
			f.Add(s, ct)
		}
	}
	f.Fuzz(func(t *testing.T, body, contentType string) {
		e := newEnvWith(t, envConfig{health: grpc_health_v1.HealthCheckResponse_SERVING, noServer: true})
		req := httptest.NewRequest("POST", "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		checkFuzzAnswer(t, body, rec)
		if strings.Contains(e.log.String(), fakeRefreshToken) || strings.Contains(e.log.String(), fakeIssuedToken) || strings.Contains(e.log.String(), fakeWorkloadJWT) {
			t.Fatalf("the log holds a refresh or subject token:\n%s", e.log.String())
		}
	})
}

func checkFuzzAnswer(t *testing.T, input string, rec *httptest.ResponseRecorder) {
	t.Helper()
	switch rec.Code {
	case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized:
	default:
		t.Fatalf("input %q: status %d", input, rec.Code)
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("input %q: body is not JSON: %q", input, rec.Body.String())
	}
	if rec.Code == 200 {
		return
	}
	// A missing key is nil, not "": compare the string it must be.
	if code, _ := m["error"].(string); code == "" || strings.Contains(rec.Body.String(), "panic") {
		t.Fatalf("input %q: error answer %s", input, rec.Body.String())
	}
}

// FuzzProxyHeaders: behind a trusted proxy that appends the client's address, nothing the
// client adds to X-Forwarded-For or Forwarded makes it someone else — at most no one ("").
func FuzzProxyHeaders(f *testing.F) {
	for _, s := range []string{"", "6.6.6.6", "10.0.0.9", `for="6.6.6.6`, "for=6.6.6.6;", `for="[2001:db8::1]:4711"`, "garbage, ,", "\"", "for=_x, for=unknown"} {
		f.Add(s, "", uint8(0))
		f.Add(s, "for=198.51.100.7", uint8(1))
		f.Add("", s, uint8(2))
		f.Add(s, s, uint8(3))
	}
	const client = "198.51.100.7"
	f.Fuzz(func(t *testing.T, clientXFF, clientFwd string, mode uint8) {
		e := newEnvWith(t, envConfig{opt: func(o *gateway.Options) {
			o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}, noServer: true})
		req := httptest.NewRequest("GET", "/token?service=registry.local", nil)
		req.RemoteAddr = "10.0.0.1:41000"
		req.SetBasicAuth("alice", "pw")
		// The proxy writes one of the two headers, after whatever the client sent in it, on the
		// client's line or on a line of its own; the other header, if any, is the client's alone.
		name, own, other, otherName, hop := "X-Forwarded-For", clientXFF, clientFwd, "Forwarded", client
		if mode&1 == 1 {
			name, own, other, otherName, hop = "Forwarded", clientFwd, clientXFF, "X-Forwarded-For", "for="+client
		}
		switch {
		case own == "":
			req.Header.Add(name, hop)
		case mode&2 == 2:
			req.Header.Add(name, own)
			req.Header.Add(name, hop)
		default:
			req.Header.Add(name, own+", "+hop)
		}
		if other != "" {
			req.Header.Add(otherName, other)
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		got := e.authn.last.Load().GetRemoteAddr()
		if got != client && (other == "" || got != "") {
			t.Fatalf("headers %q: remote address %q, want %q", req.Header, got, client)
		}
	})
}
