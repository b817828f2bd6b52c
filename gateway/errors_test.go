package gateway_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestBackendErrorMapping: only the client's own mistakes are 4xx. A backend refusing what
// the gateway sent is the deployment's fault: a generic 500 with the detail in the log only.
func TestBackendErrorMapping(t *testing.T) {
	t.Parallel()
	const tokenQuery = "/token?service=registry.local&scope=repository:a/b:pull"
	oauthForm := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"},
		"service": {"registry.local"}, "client_id": {"docker"}, "scope": {"repository:a/b:pull"}}
	cases := []struct {
		name          string
		backend       string // which fake fails
		err           error
		method, path  string // POST posts oauthForm
		wantStatus    int
		wantError     string
		wantRetry     bool
		wantChallenge bool
		wantLogged    string // text that must be in the gateway's log (and never in the answer)
	}{
		{name: "signer ttl above its maximum", backend: "signer", err: status.Error(codes.InvalidArgument, "signer: invalid request: ttl 2h0m0s exceeds the maximum 1h0m0s"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "ttl 2h0m0s exceeds the maximum 1h0m0s"},
		{name: "signer audience refused", backend: "signer", err: status.Error(codes.InvalidArgument, "audience \"registry.local\" is not configured"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "is not configured"},
		{name: "signer failed precondition", backend: "signer", err: status.Error(codes.FailedPrecondition, "no active key version 7"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "no active key version 7"},
		{name: "signer refuses the gateway's certificate", backend: "signer", err: status.Error(codes.PermissionDenied, "peer spiffe://portcullis/authn may not call SignToken"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "may not call SignToken"},
		{name: "signer unknown code", backend: "signer", err: status.Error(codes.Unknown, "vault: 500 from transit"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "vault: 500 from transit"},
		{name: "signer unimplemented", backend: "signer", err: status.Error(codes.Unimplemented, "unknown service portcullis.signer.v1.SignerService"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "unknown service portcullis"},
		{name: "not a status", backend: "signer", err: errors.New("dial tcp 10.9.8.7:9000: connection refused"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "10.9.8.7:9000"},
		{name: "authz invalid argument", backend: "authz", err: status.Error(codes.InvalidArgument, "invalid authorization request"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "invalid authorization request"},
		{name: "authn invalid argument", backend: "authn", err: status.Error(codes.InvalidArgument, "username is required"),
			method: "GET", path: tokenQuery, wantStatus: 500, wantError: "server_error", wantLogged: "username is required"},
		{name: "authn busy", backend: "authn", err: status.Error(codes.ResourceExhausted, "bcrypt queue full"),
			method: "GET", path: tokenQuery, wantStatus: 429, wantError: "temporarily_unavailable", wantRetry: true, wantLogged: "bcrypt queue full"},
		{name: "authn deadline", backend: "authn", err: status.Error(codes.DeadlineExceeded, "authentication timed out"),
			method: "GET", path: tokenQuery, wantStatus: 503, wantError: "temporarily_unavailable", wantRetry: true},
		{name: "authz unavailable", backend: "authz", err: status.Error(codes.Unavailable, "policy engine unavailable"),
			method: "GET", path: tokenQuery, wantStatus: 503, wantError: "temporarily_unavailable", wantRetry: true},
		{name: "signer canceled", backend: "signer", err: status.Error(codes.Canceled, "canceled by peer"),
			method: "GET", path: tokenQuery, wantStatus: 503, wantError: "temporarily_unavailable", wantRetry: true},
		{name: "authn unauthenticated", backend: "authn", err: status.Error(codes.Unauthenticated, "invalid credentials for uid=alice,ou=people"),
			method: "GET", path: tokenQuery, wantStatus: 401, wantError: "unauthorized", wantChallenge: true},
		{name: "oauth bad password stays invalid_grant", backend: "authn", err: status.Error(codes.Unauthenticated, "invalid credentials for uid=alice,ou=people"),
			method: "POST", path: "/token", wantStatus: 400, wantError: "invalid_grant"},
		{name: "oauth signer ttl", backend: "signer", err: status.Error(codes.InvalidArgument, "ttl 2h0m0s exceeds the maximum 1h0m0s"),
			method: "POST", path: "/token", wantStatus: 500, wantError: "server_error", wantLogged: "exceeds the maximum"},
		{name: "oauth authn busy", backend: "authn", err: status.Error(codes.ResourceExhausted, "bcrypt queue full"),
			method: "POST", path: "/token", wantStatus: 429, wantError: "temporarily_unavailable", wantRetry: true},
		{name: "jwks signer invalid argument", backend: "signer", err: status.Error(codes.InvalidArgument, "jwks: key 3 has no certificate"),
			method: "GET", path: "/.well-known/jwks.json", wantStatus: 500, wantError: "server_error", wantLogged: "key 3 has no certificate"},
		{name: "discovery signer unavailable", backend: "signer", err: status.Error(codes.Unavailable, "vault sealed"),
			method: "GET", path: "/.well-known/openid-configuration", wantStatus: 503, wantError: "temporarily_unavailable", wantRetry: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c envConfig
			switch tc.backend {
			case "authn":
				c.authnErr = tc.err
			case "authz":
				c.authzErr = tc.err
			case "signer":
				c.signerErr = tc.err
			}
			e := newEnvWith(t, c)
			var req *http.Request
			if tc.method == "POST" {
				req, _ = http.NewRequest("POST", e.srv.URL+tc.path, strings.NewReader(oauthForm.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			} else {
				req, _ = http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
				req.SetBasicAuth("alice", "pw")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("answer is not JSON: %s", body)
			}
			if m["error"] != tc.wantError || m["error_description"] == "" {
				t.Fatalf("body = %s, want error %q with a description", body, tc.wantError)
			}
			if tc.wantError == "server_error" && m["error_description"] != "internal error" {
				t.Fatalf("server fault described as %q", m["error_description"])
			}
			if st, _ := status.FromError(tc.err); strings.Contains(string(body), st.Message()) || strings.Contains(string(body), "uid=") {
				t.Fatalf("backend text reached the client: %s", body)
			}
			if got := resp.Header.Get("Retry-After"); (got == "1") != tc.wantRetry || (!tc.wantRetry && got != "") {
				t.Fatalf("Retry-After = %q, want it: %v", got, tc.wantRetry)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (got == `Basic realm="Test"`) != tc.wantChallenge || (!tc.wantChallenge && got != "") {
				t.Fatalf("WWW-Authenticate = %q, want a challenge: %v", got, tc.wantChallenge)
			}
			if tc.wantLogged != "" && !strings.Contains(e.log.String(), tc.wantLogged) {
				t.Fatalf("the log lacks %q:\n%s", tc.wantLogged, e.log.String())
			}
			if strings.Contains(e.log.String(), `"pw"`) || strings.Contains(e.log.String(), "signed.") {
				t.Fatalf("the log holds a secret:\n%s", e.log.String())
			}
		})
	}
}
