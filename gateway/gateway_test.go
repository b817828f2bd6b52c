package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-dev/portcullis/gateway"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// Fakes of the generated clients: the gateway only translates, so its tests need no services.
// Each counts its calls, so a test can say a request never reached a backend.
type fakeAuthn struct {
	pass        string // alice's password; "" means "pw"
	err         error
	calls       atomic.Int32
	last        atomic.Pointer[authnv1.AuthenticateRequest]
	lastRefresh atomic.Pointer[authnv1.RefreshRequest]
	ended       atomic.Pointer[authnv1.EndSessionRequest]
	endCalls    atomic.Int32
}

// Refresh tokens the fake knows: fakeRefreshToken is alice's session for registry.local,
// fakeOtherServiceToken one bound to another service. Authenticate with offline issues
// fakeIssuedToken.
const (
	fakeRefreshToken      = "pcr_aliceSessionTokenAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	fakeOtherServiceToken = "pcr_otherServiceTokenBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
	fakeIssuedToken       = "pcr_freshlyIssuedTokenCCCCCCCCCCCCCCCCCCCCCCCCCCC"
)

func (f *fakeAuthn) Authenticate(_ context.Context, in *authnv1.AuthenticateRequest, _ ...grpc.CallOption) (*authnv1.AuthenticateResponse, error) {
	f.calls.Add(1)
	f.last.Store(in)
	if f.err != nil {
		return nil, f.err
	}
	if tok := in.GetSubjectToken(); tok != "" { // as services/authn.Server answers
		switch {
		case in.GetUsername() != "" || in.GetPassword() != "" || in.GetOffline():
			return nil, status.Error(codes.InvalidArgument, "subject_token excludes username, password and offline")
		case tok != fakeWorkloadJWT:
			return nil, status.Error(codes.Unauthenticated, "invalid credentials")
		}
		return &authnv1.AuthenticateResponse{Identity: &commonv1.Identity{Subject: fakeWorkloadSubject, Backend: "github-actions"}}, nil
	}
	if in.GetUsername() == "" { // as services/authn.Server answers
		return nil, status.Error(codes.InvalidArgument, "username is required")
	}
	pass := f.pass
	if pass == "" {
		pass = "pw"
	}
	if in.GetUsername() != "alice" || in.GetPassword() != pass {
		return nil, status.Error(codes.Unauthenticated, "invalid credentials")
	}
	resp := &authnv1.AuthenticateResponse{Identity: &commonv1.Identity{Subject: "alice"}}
	if in.GetOffline() {
		resp.RefreshToken = fakeIssuedToken
	}
	return resp, nil
}

// Refresh answers as services/authn.Server does: Unauthenticated for anything but a known
// token of the requested service.
func (f *fakeAuthn) Refresh(_ context.Context, in *authnv1.RefreshRequest, _ ...grpc.CallOption) (*authnv1.RefreshResponse, error) {
	f.calls.Add(1)
	f.lastRefresh.Store(in)
	if f.err != nil {
		return nil, f.err
	}
	switch {
	case in.GetRefreshToken() == fakeRefreshToken && in.GetService() == "registry.local":
		return &authnv1.RefreshResponse{Identity: &commonv1.Identity{Subject: "alice", Backend: "htpasswd"}}, nil
	case in.GetRefreshToken() == fakeOtherServiceToken && in.GetService() == "other.local":
		return &authnv1.RefreshResponse{Identity: &commonv1.Identity{Subject: "bob"}}, nil
	}
	return nil, status.Error(codes.Unauthenticated, "invalid refresh token")
}

// EndSession records the token whose session the gateway ended. Like services/authn.Server,
// it answers the same for every token: holding it is the authority, unknown is no error.
func (f *fakeAuthn) EndSession(_ context.Context, in *authnv1.EndSessionRequest, _ ...grpc.CallOption) (*authnv1.EndSessionResponse, error) {
	f.endCalls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	f.ended.Store(in)
	return &authnv1.EndSessionResponse{}, nil
}

type fakeAuthz struct {
	last  *authzv1.AuthorizeRequest
	err   error
	calls atomic.Int32
}

// Grants pull only.
func (f *fakeAuthz) Authorize(_ context.Context, in *authzv1.AuthorizeRequest, _ ...grpc.CallOption) (*authzv1.AuthorizeResponse, error) {
	f.calls.Add(1)
	f.last = in
	if f.err != nil {
		return nil, f.err
	}
	var out []*commonv1.Scope
	for _, s := range in.GetRequested() {
		for _, a := range s.GetActions() {
			if a == "pull" {
				out = append(out, &commonv1.Scope{Type: s.GetType(), Name: s.GetName(), Actions: []string{"pull"}})
			}
		}
	}
	return &authzv1.AuthorizeResponse{Granted: out, DecisionId: fakeDecisionID}, nil
}

// fakeDecisionID is what fakeAuthz names its decisions: the token's jti must be it.
const fakeDecisionID = "0123456789abcdef0123456789abcdef"

type fakeSigner struct {
	last  *signerv1.SignTokenRequest
	err   error
	calls atomic.Int32
}

func (f *fakeSigner) SignToken(_ context.Context, in *signerv1.SignTokenRequest, _ ...grpc.CallOption) (*signerv1.SignTokenResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	f.last = in
	now := time.Unix(1_800_000_000, 0)
	return &signerv1.SignTokenResponse{Token: "signed." + in.GetSubject(), IssuedAt: timestamppb.New(now),
		ExpiresAt: timestamppb.New(now.Add(in.GetTtl().AsDuration())), KeyId: "k"}, nil
}

func (f *fakeSigner) ListPublicKeys(context.Context, *signerv1.ListPublicKeysRequest, ...grpc.CallOption) (*signerv1.ListPublicKeysResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return &signerv1.ListPublicKeysResponse{Jwks: []byte(`{"keys":[]}`), Issuer: "portcullis"}, nil
}

type fakeHealth struct {
	st grpc_health_v1.HealthCheckResponse_ServingStatus
}

func (f fakeHealth) Check(_ context.Context, in *grpc_health_v1.HealthCheckRequest, _ ...grpc.CallOption) (*grpc_health_v1.HealthCheckResponse, error) {
	if in.GetService() != "portcullis.signer.v1.SignerService" {
		return nil, status.Error(codes.NotFound, "unknown service")
	}
	return &grpc_health_v1.HealthCheckResponse{Status: f.st}, nil
}
func (f fakeHealth) List(context.Context, *grpc_health_v1.HealthListRequest, ...grpc.CallOption) (*grpc_health_v1.HealthListResponse, error) {
	return nil, status.Error(codes.Unimplemented, "")
}
func (f fakeHealth) Watch(context.Context, *grpc_health_v1.HealthCheckRequest, ...grpc.CallOption) (grpc.ServerStreamingClient[grpc_health_v1.HealthCheckResponse], error) {
	return nil, status.Error(codes.Unimplemented, "")
}

type env struct {
	handler http.Handler
	srv     *httptest.Server
	authn   *fakeAuthn
	authz   *fakeAuthz
	signer  *fakeSigner
	reg     *prometheus.Registry
	log     *syncWriter // the gateway's JSON log, audit events included
}

// envConfig varies an env: backend errors, and gateway options on top of the defaults.
type envConfig struct {
	authnErr, authzErr, signerErr error
	health                        grpc_health_v1.HealthCheckResponse_ServingStatus
	opt                           func(*gateway.Options)
	noServer                      bool // only env.handler (fuzz targets: no listener per input)
	// device and account turn on the device flow and back-channel logout (nil: off).
	device  authnv1.DeviceAuthorizationServiceClient
	account authnv1.AccountServiceClient
}

func newEnv(t *testing.T, authnErr, signerErr error, health grpc_health_v1.HealthCheckResponse_ServingStatus) *env {
	t.Helper()
	return newEnvWith(t, envConfig{authnErr: authnErr, signerErr: signerErr, health: health})
}

func newEnvWith(t *testing.T, c envConfig) *env {
	t.Helper()
	e := &env{authn: &fakeAuthn{err: c.authnErr}, authz: &fakeAuthz{err: c.authzErr}, signer: &fakeSigner{err: c.signerErr},
		reg: prometheus.NewRegistry(), log: &syncWriter{w: &strings.Builder{}}}
	opt := gateway.Options{Realm: "Test", Services: []string{"registry.local"}, TokenTTL: 5 * time.Minute,
		MaxQueryBytes: 2048, BackendTimeout: time.Second, PublicURL: "https://auth.example.com"}
	if c.opt != nil {
		c.opt(&opt)
	}
	g := gateway.New(opt,
		gateway.Clients{Authn: e.authn, Authz: e.authz, Signer: e.signer, Device: c.device, Account: c.account,
			Health: map[string]gateway.HealthCheck{"signer": {Client: fakeHealth{c.health}, Service: "portcullis.signer.v1.SignerService"}}},
		slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})), e.reg)
	e.handler = g
	if !c.noServer {
		e.srv = httptest.NewServer(g)
		t.Cleanup(e.srv.Close)
	}
	return e
}

func (e *env) backendCalls() int32 {
	return e.authn.calls.Load() + e.authz.calls.Load() + e.signer.calls.Load()
}

// auditEvents are the audit events logged so far.
func (e *env) auditEvents(t *testing.T) []map[string]any {
	t.Helper()
	var events []map[string]any
	for _, m := range e.logLines(t) {
		if m["log_type"] == "audit" {
			events = append(events, m)
		}
	}
	return events
}

func (e *env) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 3000)
	cases := []struct {
		name       string
		query      string
		user, pass string
		authnErr   error
		signerErr  error
		wantStatus int
		wantError  string // OAuth2 error code
		wantHeader [2]string
		emptyUser  bool // send Basic credentials even though user is empty
		bearer     bool // send a non-Basic Authorization header
		noAuthn    bool // the request must not reach authn
	}{
		{name: "issues token", query: "service=registry.local&scope=repository:alice/app:pull,push", user: "alice", pass: "pw", wantStatus: 200},
		{name: "anonymous", query: "service=registry.local&scope=repository:library/x:pull", wantStatus: 200},
		{name: "no scope (docker login)", query: "service=registry.local&offline_token=true&client_id=docker", user: "alice", pass: "pw", wantStatus: 200},
		{name: "wrong password", query: "service=registry.local", user: "alice", pass: "nope", wantStatus: 401, wantError: "unauthorized", wantHeader: [2]string{"WWW-Authenticate", `Basic realm="Test"`}},
		{name: "missing service", query: "scope=repository:a:pull", wantStatus: 400, wantError: "invalid_request"},
		{name: "unknown service", query: "service=other", wantStatus: 400, wantError: "invalid_request"},
		{name: "service twice", query: "service=registry.local&service=registry.local", wantStatus: 400, wantError: "invalid_request"},
		{name: "malformed scope", query: "service=registry.local&scope=repository:UPPER:pull", wantStatus: 400, wantError: "invalid_scope"},
		{name: "scope without actions", query: "service=registry.local&scope=repository:a", wantStatus: 400, wantError: "invalid_scope"},
		{name: "account mismatch", query: "service=registry.local&account=bob", user: "alice", pass: "pw", wantStatus: 400, wantError: "invalid_request"},
		{name: "account without credentials", query: "service=registry.local&account=bob", wantStatus: 400, wantError: "invalid_request"},
		// An empty username is a wrong credential, whatever else the request says; authn is not asked.
		{name: "empty username", query: "service=registry.local", user: "", pass: "pw", emptyUser: true, wantStatus: 401, wantError: "unauthorized", wantHeader: [2]string{"WWW-Authenticate", `Basic realm="Test"`}, noAuthn: true},
		{name: "empty username and password", query: "service=registry.local&scope=repository:a/b:pull", emptyUser: true, wantStatus: 401, wantError: "unauthorized", wantHeader: [2]string{"WWW-Authenticate", `Basic realm="Test"`}, noAuthn: true},
		{name: "empty username with account", query: "service=registry.local&account=bob", user: "", pass: "pw", emptyUser: true, wantStatus: 401, wantError: "unauthorized", wantHeader: [2]string{"WWW-Authenticate", `Basic realm="Test"`}, noAuthn: true},
		{name: "empty username with empty account", query: "service=registry.local&account=", user: "", pass: "pw", emptyUser: true, wantStatus: 401, wantError: "unauthorized", wantHeader: [2]string{"WWW-Authenticate", `Basic realm="Test"`}, noAuthn: true},
		{name: "not Basic credentials", query: "service=registry.local", bearer: true, wantStatus: 401, wantError: "unauthorized", wantHeader: [2]string{"WWW-Authenticate", `Basic realm="Test"`}, noAuthn: true},
		{name: "oversized query", query: "service=registry.local&scope=" + long, wantStatus: 400, wantError: "invalid_request"},
		{name: "bad query encoding", query: "service=%zz", wantStatus: 400, wantError: "invalid_request"},
		{name: "authn down", query: "service=registry.local", user: "alice", pass: "pw", authnErr: status.Error(codes.Unavailable, "ldap down"), wantStatus: 503, wantError: "temporarily_unavailable", wantHeader: [2]string{"Retry-After", "1"}},
		{name: "signer timed out", query: "service=registry.local", signerErr: status.Error(codes.DeadlineExceeded, "x"), wantStatus: 503, wantError: "temporarily_unavailable"},
		{name: "internal text never echoed", query: "service=registry.local", signerErr: status.Error(codes.Internal, "vault said: secret path /x"), wantStatus: 500, wantError: "server_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.authnErr, tc.signerErr, grpc_health_v1.HealthCheckResponse_SERVING)
			req, _ := http.NewRequest("GET", e.srv.URL+"/token?"+tc.query, nil)
			if tc.user != "" || tc.emptyUser {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.bearer {
				req.Header.Set("Authorization", "Bearer abc")
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
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type %q", ct)
			}
			if h := tc.wantHeader; h[0] != "" && resp.Header.Get(h[0]) != h[1] {
				t.Fatalf("%s = %q, want %q", h[0], resp.Header.Get(h[0]), h[1])
			}
			if n := e.authn.calls.Load(); tc.noAuthn && n != 0 {
				t.Fatalf("authn called %d times", n)
			}
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("body is not JSON: %s", body)
			}
			if strings.Contains(string(body), "vault") || strings.Contains(string(body), "ldap") {
				t.Fatalf("internal text leaked: %s", body)
			}
			if tc.wantStatus != 200 {
				if m["error"] != tc.wantError || m["error_description"] == "" {
					t.Fatalf("body = %s, want error %q with a description", body, tc.wantError)
				}
				return
			}
			if m["token"] == "" || m["token"] != m["access_token"] || m["expires_in"].(float64) < 60 || m["issued_at"] == nil {
				t.Fatalf("body = %s", body)
			}
		})
	}
}

func TestDeniedScopesAreDroppedNotErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
	req, _ := http.NewRequest("GET", e.srv.URL+"/token?service=registry.local&scope=repository:a/b:push&scope=repository:c/d:pull%20repository:c/d:push", nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := e.authz.last.GetRequested(); len(got) != 2 || len(got[1].GetActions()) != 2 {
		t.Fatalf("authz saw %v: repeated and space-separated scopes must merge", got)
	}
	if acc := e.signer.last.GetAccess(); len(acc) != 1 || acc[0].GetName() != "c/d" {
		t.Fatalf("signed access %v, want only c/d pull", acc)
	}
	if e.signer.last.GetAudience() != "registry.local" || e.signer.last.GetSubject() != "alice" || e.signer.last.GetJti() != fakeDecisionID {
		t.Fatalf("sign request %v, want the authz decision id %s as jti", e.signer.last, fakeDecisionID)
	}
}

func TestOAuthPasswordGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
	cases := []struct {
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}, "service": {"registry.local"}, "client_id": {"docker"}, "scope": {"repository:a/b:pull"}}, 200, ""},
		{url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"x"}, "service": {"registry.local"}, "client_id": {"docker"}}, 400, "invalid_grant"},
		{url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"}, "service": {"registry.local"}}, 400, "invalid_request"},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "service": {"registry.local"}, "client_id": {"docker"}}, 400, "invalid_grant"},
		{url.Values{"grant_type": {"magic"}}, 400, "unsupported_grant_type"},
		{url.Values{}, 400, "invalid_request"},
		{url.Values{"grant_type": {"password"}, "username": {strings.Repeat("u", 4000)}}, 400, "invalid_request"},
	}
	for _, tc := range cases {
		resp, err := http.PostForm(e.srv.URL+"/token", tc.form)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || (tc.wantError != "" && m["error"] != tc.wantError) {
			t.Errorf("form %v: status %d body %v, want %d %q", tc.form.Get("grant_type"), resp.StatusCode, m, tc.wantStatus, tc.wantError)
		}
		if tc.wantStatus == 200 && (m["access_token"] == "" || m["scope"] != "repository:a/b:pull" || m["token_type"] != "Bearer") {
			t.Errorf("success body %v", m)
		}
	}
}

func TestJWKSDiscoveryAndHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, h := get("/.well-known/jwks.json"); code != 200 || body != `{"keys":[]}` || h.Get("Cache-Control") == "" {
		t.Fatalf("jwks: %d %s", code, body)
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		if code, body, _ := get(path); code != 200 || !strings.Contains(body, `"https://auth.example.com/.well-known/jwks.json"`) || !strings.Contains(body, `"issuer":"portcullis"`) ||
			!strings.Contains(body, `"token_endpoint":"https://auth.example.com/token"`) ||
			!strings.Contains(body, `"revocation_endpoint":"https://auth.example.com/revoke"`) ||
			!strings.Contains(body, `"grant_types_supported":["password","refresh_token","urn:ietf:params:oauth:grant-type:token-exchange"]`) {
			t.Fatalf("discovery %s: %d %s", path, code, body)
		}
	}
	if code, _, _ := get("/healthz"); code != 200 {
		t.Fatal("healthz")
	}
	if code, body, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz: %d %s", code, body)
	}
	down := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	resp, _ := http.Get(down.srv.URL + "/readyz")
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("readyz with a backend down = %d", resp.StatusCode)
	}
}

// One audit event per decision, and no secret in any log line at any level: not the password
// of a failed login, nor of a successful one (the path that goes on to authz and the signer),
// nor its Basic header, nor the access token, nor a refresh token issued or presented.
func TestAuditEventPerDecisionWithoutSecrets(t *testing.T) {
	t.Parallel()
	const rightPassword, wrongPassword = "correct-horse-battery-staple", "hunter2-wrong"
	var buf strings.Builder
	g := gateway.New(gateway.Options{Realm: "Test", Services: []string{"registry.local"}, TokenTTL: 5 * time.Minute,
		MaxQueryBytes: 2048, BackendTimeout: time.Second},
		gateway.Clients{Authn: &fakeAuthn{pass: rightPassword}, Authz: &fakeAuthz{}, Signer: &fakeSigner{}},
		slog.New(slog.NewJSONHandler(&syncWriter{w: &buf}, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	srv := httptest.NewServer(g)
	defer srv.Close()
	var bodies []string
	do := func(req *http.Request) {
		t.Helper()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		bodies = append(bodies, string(b))
	}
	for _, pass := range []string{rightPassword, wrongPassword} {
		req, _ := http.NewRequest("GET", srv.URL+"/token?service=registry.local&client_id=cli&offline_token=true&scope=repository:a/b:pull,push", nil)
		req.SetBasicAuth("alice", pass)
		do(req)
	}
	form := func(v url.Values) *http.Request {
		req, _ := http.NewRequest("POST", srv.URL+"/token", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	do(form(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {rightPassword}, "access_type": {"offline"},
		"service": {"registry.local"}, "client_id": {"cli"}, "scope": {"repository:a/b:pull"}}))
	do(form(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fakeRefreshToken},
		"service": {"registry.local"}, "client_id": {"cli"}, "scope": {"repository:a/b:pull"}}))
	var events []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["log_type"] == "audit" {
			events = append(events, m)
		}
	}
	if len(events) != 4 {
		t.Fatalf("%d audit events, want one per request:\n%s", len(events), buf.String())
	}
	ok, denied, posted, refreshed := events[0], events[1], events[2], events[3]
	if ok["outcome"] != "issued" || ok["subject"] != "alice" || ok["client_id"] != "cli" || ok["jti"] == "" || ok["remote_addr"] == "" ||
		ok["session_issued"] != true {
		t.Fatalf("issued event %v", ok)
	}
	if g, _ := json.Marshal(ok["granted"]); string(g) != `["repository:a/b:pull"]` {
		t.Fatalf("granted %s", g)
	}
	if denied["outcome"] != "unauthorized" || denied["username"] != "alice" {
		t.Fatalf("denied event %v", denied)
	}
	if posted["outcome"] != "issued" || posted["grant_type"] != "password" || refreshed["outcome"] != "issued" || refreshed["grant_type"] != "refresh_token" {
		t.Fatalf("OAuth2 events %v / %v", posted, refreshed)
	}
	// The answers did carry the tokens, so their absence from the log means something.
	if !strings.Contains(bodies[0], "signed.alice") || !strings.Contains(bodies[0], fakeIssuedToken) {
		t.Fatalf("the successful answer lacks the tokens the log is checked for: %s", bodies[0])
	}
	basic := base64.StdEncoding.EncodeToString([]byte("alice:" + rightPassword))
	for _, secret := range []string{rightPassword, wrongPassword, basic, "signed.alice", fakeIssuedToken, fakeRefreshToken} {
		if strings.Contains(buf.String(), secret) {
			t.Fatalf("log holds a secret (%q):\n%s", secret, buf.String())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.(fmt.Stringer).String()
}

// TestRoutes: methods a route does not serve are a JSON 405 naming the allowed ones, without
// any backend call; HEAD /token in particular must not run the decision.
func TestRoutes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method, path string
		wantStatus   int
		wantAllow    string
	}{
		{"HEAD", "/token?service=registry.local&scope=repository:a/b:pull", 405, "GET, POST"},
		{"PUT", "/token", 405, "GET, POST"},
		{"DELETE", "/token?service=registry.local", 405, "GET, POST"},
		{"OPTIONS", "/token", 405, "GET, POST"},
		{"PATCH", "/token", 405, "GET, POST"},
		{"POST", "/healthz", 405, "GET, HEAD"},
		{"DELETE", "/.well-known/jwks.json", 405, "GET, HEAD"},
		{"POST", "/.well-known/openid-configuration", 405, "GET, HEAD"},
		// Metrics are served by cmd on gateway.metrics_listen, never on the token port.
		{"GET", "/metrics", 404, ""},
		{"GET", "/nope", 404, ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
			req := httptest.NewRequest(tc.method, tc.path, nil)
			req.SetBasicAuth("alice", "pw")
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus || rec.Header().Get("Allow") != tc.wantAllow {
				t.Fatalf("status %d Allow %q, want %d %q", rec.Code, rec.Header().Get("Allow"), tc.wantStatus, tc.wantAllow)
			}
			if n := e.backendCalls(); n != 0 {
				t.Fatalf("%d backend calls", n)
			}
			if e.authn.calls.Load() != 0 || len(e.auditEvents(t)) != 0 {
				t.Fatal("the request reached the decision path")
			}
			if tc.method == "HEAD" {
				return // no body to read
			}
			var m map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m["error"] == "" || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("answer is not a JSON error: %q", rec.Body.String())
			}
		})
	}
}

func TestMetricsRegisteredNotServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
	resp, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "portcullis_") {
		t.Fatalf("GET /metrics on the token port: %d %s", resp.StatusCode, body)
	}
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !slices.Contains(names, "portcullis_token_requests_total") {
		t.Fatalf("registry holds %v, want the gateway's metrics", names)
	}
}

// TestDiscoveryIgnoresHost: a client's Host header must not choose where verifiers fetch keys.
func TestDiscoveryIgnoresHost(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, publicURL string
		wantJWKS        string
	}{
		{"public URL", "https://auth.example.com", "https://auth.example.com/.well-known/jwks.json"},
		{"public URL with slash", "https://auth.example.com/portcullis/", "https://auth.example.com/portcullis/.well-known/jwks.json"},
		{"no public URL", "", "/.well-known/jwks.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{opt: func(o *gateway.Options) { o.PublicURL = tc.publicURL }})
			req := httptest.NewRequest("GET", "/.well-known/openid-configuration", nil)
			req.Host = "evil.example:8443"
			req.Header.Set("X-Forwarded-Host", "evil.example")
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "evil") {
				t.Fatalf("the Host header reached the answer: %s", rec.Body)
			}
			if m["jwks_uri"] != tc.wantJWKS || m["token_endpoint"] != strings.TrimSuffix(tc.wantJWKS, "/.well-known/jwks.json")+"/token" {
				t.Fatalf("discovery %v, want jwks_uri %q", m, tc.wantJWKS)
			}
		})
	}
}

// The signer refuses access without a subject, so an anonymous caller whom a policy grants
// something (public pulls) must reach it with a subject no login can have.
func TestAnonymousTokensHaveASubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, grpc_health_v1.HealthCheckResponse_SERVING)
	resp, err := http.Get(e.srv.URL + "/token?service=registry.local&scope=repository:library/x:pull")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := e.signer.last.GetSubject(); got != gateway.AnonymousSubject {
		t.Fatalf("anonymous subject = %q, want %q", got, gateway.AnonymousSubject)
	}
	if e.authn.calls.Load() != 0 {
		t.Fatal("an anonymous request reached authn")
	}
}

// TestRefuseAnonymous: with authn.allow_anonymous false a request without credentials gets
// what docker_auth answers when its users lack "": 401 with the Basic challenge, and no
// backend is asked. Requests with credentials are unaffected.
func TestRefuseAnonymous(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envConfig{health: grpc_health_v1.HealthCheckResponse_SERVING, opt: func(o *gateway.Options) { o.RefuseAnonymous = true }})
	for _, q := range []string{"service=registry.local&scope=repository:library/x:pull", "service=registry.local"} {
		resp, err := http.Get(e.srv.URL + "/token?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="Test"` {
			t.Fatalf("%s: status %d, WWW-Authenticate %q, want 401 with the Basic challenge; body %s", q, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
	if n := e.backendCalls(); n != 0 {
		t.Fatalf("an anonymous request reached the backends (%d calls)", n)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
	req.SetBasicAuth("alice", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("with credentials: status %d", resp.StatusCode)
	}
}
