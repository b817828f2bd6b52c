package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/gateway"
)

// The subject token fakeAuthn accepts, and the identity it maps to (as the oidc backend
// would, under a subject_prefix).
const (
	fakeWorkloadJWT     = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOm15b3JnL2FwcCJ9.c2lnbmF0dXJl"
	fakeWorkloadSubject = "github:repo:myorg/app:ref:refs/heads/main"
)

// exchangeForm is a CI job's token exchange for pull and push on its project.
func exchangeForm() url.Values {
	return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {fakeWorkloadJWT},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}, "service": {"registry.local"},
		"scope": {"repository:myorg/app:pull"}}
}

// TestTokenExchange: RFC 8693 at POST /token. Every refusal is a 400 (or the backend's 5xx)
// with the OAuth2 JSON error body, and a request the gateway refuses never reaches authn.
func TestTokenExchange(t *testing.T) {
	t.Parallel()
	// 1 MB, JWT-shaped: the body limit refuses it before anything parses the token.
	huge := "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 1<<20) + ".c2ln"
	const internal = "ldap://10.0.0.7 store at /var/lib/secret"
	cases := []struct {
		name        string
		form        url.Values
		basic       bool
		authnErr    error
		wantStatus  int
		wantError   string
		wantDesc    string // in error_description
		wantAuthn   bool   // authn was asked
		wantScope   string // the answer's scope; "" = absent
		wantService string // the signed token's audience
		retryAfter  bool
	}{
		{name: "jwt", form: exchangeForm(), wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "id_token", form: with(exchangeForm(), "subject_token_type", "urn:ietf:params:oauth:token-type:id_token"),
			wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "narrowed scope is named", form: with(exchangeForm(), "scope", "repository:myorg/app:pull,push repository:other/x:push"),
			wantStatus: 200, wantAuthn: true, wantScope: "repository:myorg/app:pull", wantService: "registry.local"},
		{name: "no scope", form: with(exchangeForm(), "scope", "\x00"), wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "audience names the service", form: with(exchangeForm(), "service", "\x00", "audience", "registry.local"),
			wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "audience equal to service", form: with(exchangeForm(), "audience", "registry.local"),
			wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "audience repeated", form: withDup(with(exchangeForm(), "audience", "registry.local"), "audience", "registry.local"),
			wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "requested_token_type access_token", form: with(exchangeForm(), "requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
			wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "client_id is a label", form: with(exchangeForm(), "client_id", "github-actions"), wantStatus: 200, wantAuthn: true, wantService: "registry.local"},
		{name: "access_type=offline gets no refresh token", form: with(exchangeForm(), "access_type", "offline"),
			wantStatus: 200, wantAuthn: true, wantService: "registry.local"},

		// The request's own form.
		{name: "no subject_token", form: with(exchangeForm(), "subject_token", "\x00"), wantStatus: 400, wantError: "invalid_request", wantDesc: "subject_token is required"},
		{name: "no subject_token_type", form: with(exchangeForm(), "subject_token_type", "\x00"), wantStatus: 400, wantError: "invalid_request", wantDesc: "subject_token_type is required"},
		{name: "access token as subject", form: with(exchangeForm(), "subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "unsupported subject_token_type"},
		{name: "SAML subject", form: with(exchangeForm(), "subject_token_type", "urn:ietf:params:oauth:token-type:saml2"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "unsupported subject_token_type"},
		{name: "requested refresh token", form: with(exchangeForm(), "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "unsupported requested_token_type"},
		{name: "requested jwt", form: with(exchangeForm(), "requested_token_type", "urn:ietf:params:oauth:token-type:jwt"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "unsupported requested_token_type"},
		{name: "actor_token", form: with(exchangeForm(), "actor_token", fakeWorkloadJWT, "actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "actor_token is not supported"},
		{name: "actor_token_type alone", form: with(exchangeForm(), "actor_token_type", "urn:ietf:params:oauth:token-type:jwt"),
			wantStatus: 400, wantError: "invalid_request", wantDesc: "actor_token is not supported"},
		{name: "subject_token twice", form: withDup(exchangeForm(), "subject_token", fakeWorkloadJWT), wantStatus: 400, wantError: "invalid_request", wantDesc: "once"},
		{name: "not a JWT", form: with(exchangeForm(), "subject_token", "alice-password"), wantStatus: 400, wantError: "invalid_request", wantDesc: "not a JWT"},
		{name: "two segments", form: with(exchangeForm(), "subject_token", "eyJhbGciOiJSUzI1NiJ9.e30"), wantStatus: 400, wantError: "invalid_request", wantDesc: "not a JWT"},
		{name: "robot key", form: with(exchangeForm(), "subject_token", "pcp_0123456789abcdef"), wantStatus: 400, wantError: "invalid_request", wantDesc: "not a JWT"},
		{name: "1 MB subject_token", form: with(exchangeForm(), "subject_token", huge), wantStatus: 400, wantError: "invalid_request", wantDesc: "too long"},
		{name: "bad scope", form: with(exchangeForm(), "scope", "repository:a/b"), wantStatus: 400, wantError: "invalid_scope"},

		// One identity per request.
		{name: "Basic credentials too", form: exchangeForm(), basic: true, wantStatus: 400, wantError: "invalid_request", wantDesc: "Authorization"},
		{name: "password too", form: with(exchangeForm(), "username", "alice", "password", "pw"), wantStatus: 400, wantError: "invalid_request", wantDesc: "username is not allowed"},
		{name: "refresh token too", form: with(exchangeForm(), "refresh_token", fakeRefreshToken), wantStatus: 400, wantError: "invalid_request", wantDesc: "refresh_token is not allowed"},

		// The target.
		{name: "no service nor audience", form: with(exchangeForm(), "service", "\x00"), wantStatus: 400, wantError: "invalid_request", wantDesc: "service (or audience) is required"},
		{name: "unknown service", form: with(exchangeForm(), "service", "elsewhere.local"), wantStatus: 400, wantError: "invalid_target", wantDesc: "unknown service"},
		{name: "unknown audience", form: with(exchangeForm(), "service", "\x00", "audience", "elsewhere.local"), wantStatus: 400, wantError: "invalid_target", wantDesc: "unknown service"},
		{name: "audience conflicts with service", form: with(exchangeForm(), "audience", "other.local"), wantStatus: 400, wantError: "invalid_target", wantDesc: "different services"},
		{name: "two audiences", form: withDup(with(exchangeForm(), "service", "\x00", "audience", "registry.local"), "audience", "other.local"),
			wantStatus: 400, wantError: "invalid_target", wantDesc: "more than one service"},
		{name: "resource", form: with(exchangeForm(), "resource", "https://registry.local/"), wantStatus: 400, wantError: "invalid_target", wantDesc: "resource is not supported"},

		// What authn says of the token.
		{name: "token authn refuses", form: with(exchangeForm(), "subject_token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
			wantStatus: 400, wantError: "invalid_grant", wantDesc: "invalid, expired or untrusted subject_token", wantAuthn: true},
		{name: "locked out", form: exchangeForm(), authnErr: lockedStatus(t, 3*time.Second),
			wantStatus: 400, wantError: "invalid_grant", wantAuthn: true, retryAfter: true},
		{name: "authn unavailable", form: exchangeForm(), authnErr: status.Error(codes.Unavailable, internal),
			wantStatus: 503, wantError: "temporarily_unavailable", wantAuthn: true, retryAfter: true},
		{name: "authn fails", form: exchangeForm(), authnErr: status.Error(codes.Internal, internal),
			wantStatus: 500, wantError: "server_error", wantAuthn: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{authnErr: tc.authnErr, health: 1, opt: func(o *gateway.Options) {
				o.Services = append(o.Services, "other.local")
			}})
			req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(tc.form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", formType)
			if tc.basic {
				req.SetBasicAuth("alice", "pw")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("answer is not JSON (status %d): %v\n%s", resp.StatusCode, err, body)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := e.authn.calls.Load() > 0; got != tc.wantAuthn {
				t.Fatalf("authn asked: %v, want %v", got, tc.wantAuthn)
			}
			if strings.Contains(string(body), "10.0.0.7") {
				t.Fatalf("the answer echoes internal text: %s", body)
			}
			if got := resp.Header.Get("Retry-After") != ""; got != tc.retryAfter {
				t.Fatalf("Retry-After %q, want one: %v", resp.Header.Get("Retry-After"), tc.retryAfter)
			}
			if tc.wantStatus != 200 {
				delete(m, "details") // a locked-out caller's, for docker
				if m["error"] != tc.wantError || !strings.Contains(m["error_description"].(string), tc.wantDesc) || len(m) != 2 {
					t.Fatalf("error body %v, want error %q and a description with %q (and nothing else)", m, tc.wantError, tc.wantDesc)
				}
				return
			}
			// RFC 8693 §2.2.1, with token for Docker clients; no refresh token.
			want := map[string]any{"access_token": "signed." + fakeWorkloadSubject, "token": "signed." + fakeWorkloadSubject,
				"issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer",
				"expires_in": float64(300), "issued_at": "2027-01-15T08:00:00Z"}
			if tc.wantScope != "" {
				want["scope"] = tc.wantScope
			}
			if len(m) != len(want) {
				t.Fatalf("success body %v, want exactly %v", m, want)
			}
			for k, v := range want {
				if m[k] != v {
					t.Fatalf("success body %s = %v, want %v\n%v", k, m[k], v, m)
				}
			}
			in := e.authn.last.Load()
			if in.GetSubjectToken() != fakeWorkloadJWT || in.GetUsername() != "" || in.GetPassword() != "" || in.GetOffline() || in.GetService() != tc.wantService {
				t.Fatalf("authn got %v, want the subject token alone for %s", in, tc.wantService)
			}
			if got := e.signer.last.GetAudience(); got != tc.wantService {
				t.Fatalf("token audience %q, want %q", got, tc.wantService)
			}
			// The policy sees the identity authn gave, as for a Basic login with the JWT.
			if id := e.authz.last.GetIdentity(); tc.form.Has("scope") && (id.GetSubject() != fakeWorkloadSubject || id.GetBackend() != "github-actions") {
				t.Fatalf("policy input identity %v", id)
			}
		})
	}
}

// The subject token is a secret: no log line at any level holds it, whether it was accepted
// or refused; the audit event names the grant and the subject.
func TestTokenExchangeLogsNoToken(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envConfig{health: 1})
	for _, tok := range []string{fakeWorkloadJWT, "eyJhbGciOiJSUzI1NiJ9.eyJyZWZ1c2VkIjp0cnVlfQ.c2lnbmF0dXJl"} {
		resp, err := http.PostForm(e.srv.URL+"/token", with(exchangeForm(), "subject_token", tok))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if strings.Contains(e.log.String(), "eyJ") {
		t.Fatalf("a subject token reached the log:\n%s", e.log.String())
	}
	events := e.auditEvents(t)
	if len(events) != 2 || events[0]["grant_type"] != "token_exchange" || events[0]["subject"] != fakeWorkloadSubject ||
		events[1]["error"] != "invalid_grant" || events[1]["outcome"] != "unauthorized" {
		t.Fatalf("audit events %v", events)
	}
}
