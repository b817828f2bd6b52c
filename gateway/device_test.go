package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/gateway"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"
)

// Device codes fakeDevice knows, each answering as authn's PollDeviceAuthorization would.
const (
	dcApproved   = "dc_approvedAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	dcPending    = "dc_pending"
	dcSlow       = "dc_slow"
	dcDenied     = "dc_denied"
	dcExpired    = "dc_expired"
	dcSpent      = "dc_spent"
	dcNoReason   = "dc_noreason"    // UNAUTHENTICATED without an ErrorInfo
	dcGoneSvc    = "dc_goneservice" // approved, for a service no longer configured
	fakeUserCode = "WDJB-MJHT"
	// fakeDeviceSession is the session approving dcApproved makes.
	fakeDeviceSession = "pcr_deviceSessionTokenDDDDDDDDDDDDDDDDDDDDDDDDDD"
)

type fakeDevice struct {
	err       error // every call's answer when set
	lastStart atomic.Pointer[authnv1.StartDeviceAuthorizationRequest]
	lastPoll  atomic.Pointer[authnv1.PollDeviceAuthorizationRequest]
	calls     atomic.Int32
}

func (f *fakeDevice) StartDeviceAuthorization(_ context.Context, in *authnv1.StartDeviceAuthorizationRequest, _ ...grpc.CallOption) (*authnv1.StartDeviceAuthorizationResponse, error) {
	f.calls.Add(1)
	f.lastStart.Store(in)
	if f.err != nil {
		return nil, f.err
	}
	return &authnv1.StartDeviceAuthorizationResponse{DeviceCode: dcApproved, UserCode: fakeUserCode,
		ExpiresIn: durationpb.New(10 * time.Minute), Interval: durationpb.New(5 * time.Second)}, nil
}

// deviceStatus is authn's refusal of a poll: the RFC 8628 error code as the ErrorInfo reason.
func deviceStatus(code codes.Code, reason string) error {
	st, err := status.New(code, "device flow: "+reason).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "authn.portcullis.dev"})
	if err != nil {
		panic(err) // only for a detail that cannot be marshalled
	}
	return st.Err()
}

func (f *fakeDevice) PollDeviceAuthorization(_ context.Context, in *authnv1.PollDeviceAuthorizationRequest, _ ...grpc.CallOption) (*authnv1.PollDeviceAuthorizationResponse, error) {
	f.calls.Add(1)
	f.lastPoll.Store(in)
	if f.err != nil {
		return nil, f.err
	}
	approved := &authnv1.PollDeviceAuthorizationResponse{Identity: &commonv1.Identity{Subject: "alice", Backend: "sso"},
		RefreshToken: fakeDeviceSession, Service: "registry.local", Scopes: []string{"repository:a/b:pull,push"}}
	switch in.GetDeviceCode() {
	case dcApproved:
		return approved, nil
	case dcGoneSvc:
		approved.Service = "gone.local"
		return approved, nil
	case dcPending:
		return nil, deviceStatus(codes.FailedPrecondition, "authorization_pending")
	case dcSlow:
		return nil, deviceStatus(codes.FailedPrecondition, "slow_down")
	case dcDenied:
		return nil, deviceStatus(codes.PermissionDenied, "access_denied")
	case dcExpired:
		return nil, deviceStatus(codes.Unauthenticated, "expired_token")
	case dcNoReason:
		return nil, status.Error(codes.Unauthenticated, "unknown device code")
	}
	return nil, deviceStatus(codes.Unauthenticated, "invalid_grant")
}

// fakeAccount answers BackChannelLogout only; the pages use the rest.
type fakeAccount struct {
	authnv1.AccountServiceClient
	err   error
	calls atomic.Int32
}

const goodLogoutToken = "eyJhbGciOiJSUzI1NiJ9.eyJldmVudHMiOnt9fQ.c2lnbmF0dXJl"

func (f *fakeAccount) BackChannelLogout(_ context.Context, in *authnv1.BackChannelLogoutRequest, _ ...grpc.CallOption) (*authnv1.BackChannelLogoutResponse, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	if in.GetLogoutToken() != goodLogoutToken {
		return nil, status.Error(codes.InvalidArgument, "logout token: bad signature")
	}
	return &authnv1.BackChannelLogoutResponse{Ended: 2}, nil
}

func postForm(t *testing.T, target, ctype, body string) (int, http.Header, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest("POST", target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "portcullis-login/test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("answer is not JSON: %q", raw)
		}
	}
	return resp.StatusCode, resp.Header, m, string(raw)
}

func TestDeviceAuthorization(t *testing.T) {
	t.Parallel()
	ok := "client_id=portcullis-cli&service=registry.local&scope=" + url.QueryEscape("repository:a/b:pull repository:c/d:push")
	cases := []struct {
		name, ctype, body string
		backendErr        error
		wantStatus        int
		wantError         string
		wantStarted       bool // authn was asked
	}{
		{name: "ok", body: ok, wantStatus: 200, wantStarted: true},
		{name: "no scope", body: "client_id=portcullis-cli&service=registry.local", wantStatus: 200, wantStarted: true},
		{name: "no client_id", body: "service=registry.local", wantStatus: 400, wantError: "invalid_request"},
		{name: "client_id with a newline", body: "client_id=a%0Ab&service=registry.local", wantStatus: 400, wantError: "invalid_request"},
		{name: "long client_id", body: "client_id=" + strings.Repeat("c", 200) + "&service=registry.local", wantStatus: 400, wantError: "invalid_request"},
		{name: "no service", body: "client_id=portcullis-cli", wantStatus: 400, wantError: "invalid_request"},
		{name: "unknown service", body: "client_id=portcullis-cli&service=evil.example", wantStatus: 400, wantError: "invalid_request"},
		{name: "two services", body: "client_id=x&service=registry.local&service=registry.local", wantStatus: 400, wantError: "invalid_request"},
		{name: "two scopes params", body: "client_id=x&service=registry.local&scope=repository:a/b:pull&scope=repository:c/d:pull", wantStatus: 400, wantError: "invalid_request"},
		{name: "bad scope", body: "client_id=x&service=registry.local&scope=repository:A:pull", wantStatus: 400, wantError: "invalid_scope"},
		{name: "malformed form", body: "client_id=%zz", wantStatus: 400, wantError: "invalid_request"},
		{name: "json body", ctype: "application/json", body: `{"client_id":"x"}`, wantStatus: 400, wantError: "invalid_request"},
		{name: "huge body", body: ok + "&pad=" + strings.Repeat("p", 1<<20), wantStatus: 400, wantError: "invalid_request"},
		{name: "authn down", body: ok, backendErr: status.Error(codes.Unavailable, "down"), wantStatus: 503, wantError: "temporarily_unavailable", wantStarted: true},
		{name: "authn refuses the scopes", body: ok, backendErr: status.Error(codes.InvalidArgument, "more than 32 scopes"),
			wantStatus: 400, wantError: "invalid_request", wantStarted: true},
		{name: "authn broken", body: ok, backendErr: status.Error(codes.Internal, "db: secret detail"), wantStatus: 500, wantError: "server_error", wantStarted: true},
		{name: "too many started from the address", body: ok, backendErr: status.Error(codes.ResourceExhausted, "rate limited"),
			wantStatus: 429, wantError: "temporarily_unavailable", wantStarted: true},
		{name: "older authn", body: ok, backendErr: status.Error(codes.Unimplemented, "unknown service"), wantStatus: 404, wantError: "not_found", wantStarted: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := &fakeDevice{err: tc.backendErr}
			e := newEnvWith(t, envConfig{device: dev, opt: func(o *gateway.Options) { o.PublicURL = "https://auth.example.com/" }})
			ctype := tc.ctype
			if ctype == "" {
				ctype = formType
			}
			code, h, m, raw := postForm(t, e.srv.URL+"/device_authorization", ctype, tc.body)
			if code != tc.wantStatus || (tc.wantError != "" && m["error"] != tc.wantError) {
				t.Fatalf("%d %s, want %d %q", code, raw, tc.wantStatus, tc.wantError)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", h)
			}
			if got := dev.calls.Load() > 0; got != tc.wantStarted {
				t.Fatalf("authn asked: %v, want %v", got, tc.wantStarted)
			}
			if strings.Contains(raw, "secret detail") {
				t.Fatal("a backend's text reached the client")
			}
			events := e.auditEvents(t)
			if len(events) != 1 || events[0]["msg"] != "device authorization" {
				t.Fatalf("audit events %v", events)
			}
			if strings.Contains(e.log.String(), dcApproved) || strings.Contains(e.log.String(), fakeUserCode) {
				t.Fatalf("a code in the log:\n%s", e.log.String())
			}
			if code != 200 {
				return
			}
			want := map[string]any{"device_code": dcApproved, "user_code": fakeUserCode,
				"verification_uri":          "https://auth.example.com/device",
				"verification_uri_complete": "https://auth.example.com/device?user_code=WDJB-MJHT",
				"expires_in":                float64(600), "interval": float64(5)}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %v", k, m[k], v)
				}
			}
			in := dev.lastStart.Load()
			if in.GetClientId() != "portcullis-cli" || in.GetService() != "registry.local" || in.GetRemoteAddr() != "127.0.0.1" ||
				in.GetUserAgent() != "portcullis-login/test" {
				t.Fatalf("StartDeviceAuthorization got %v", in)
			}
			if tc.name == "ok" && strings.Join(in.GetScopes(), " ") != "repository:a/b:pull repository:c/d:push" {
				t.Fatalf("scopes %v", in.GetScopes())
			}
		})
	}
}

func TestDeviceCodeGrant(t *testing.T) {
	t.Parallel()
	form := func(code string) string {
		return url.Values{"grant_type": {gateway.GrantTypeDeviceCode}, "device_code": {code}, "client_id": {"portcullis-cli"}}.Encode()
	}
	cases := []struct {
		name, body  string
		backendErr  error
		wantStatus  int
		wantError   string
		wantOutcome string
		wantEnded   bool // the new session was ended (its token never delivered)
		noGrant     bool // refused before the grant type was read
	}{
		{name: "approved", body: form(dcApproved), wantStatus: 200, wantOutcome: "issued"},
		{name: "pending", body: form(dcPending), wantStatus: 400, wantError: "authorization_pending", wantOutcome: "pending"},
		{name: "slow down", body: form(dcSlow), wantStatus: 400, wantError: "slow_down", wantOutcome: "pending"},
		{name: "denied", body: form(dcDenied), wantStatus: 400, wantError: "access_denied", wantOutcome: "unauthorized"},
		{name: "expired", body: form(dcExpired), wantStatus: 400, wantError: "expired_token", wantOutcome: "unauthorized"},
		{name: "spent", body: form(dcSpent), wantStatus: 400, wantError: "invalid_grant", wantOutcome: "unauthorized"},
		{name: "no reason", body: form(dcNoReason), wantStatus: 400, wantError: "invalid_grant", wantOutcome: "unauthorized"},
		{name: "service gone", body: form(dcGoneSvc), wantStatus: 500, wantError: "server_error", wantOutcome: "error", wantEnded: true},
		{name: "authn down", body: form(dcApproved), backendErr: status.Error(codes.Unavailable, "down"),
			wantStatus: 503, wantError: "temporarily_unavailable", wantOutcome: "unavailable"},
		{name: "no device_code", body: "grant_type=" + url.QueryEscape(gateway.GrantTypeDeviceCode) + "&client_id=x",
			wantStatus: 400, wantError: "invalid_request", wantOutcome: "bad_request"},
		{name: "two device_codes", body: form(dcApproved) + "&device_code=" + dcPending,
			wantStatus: 400, wantError: "invalid_request", wantOutcome: "bad_request", noGrant: true},
		{name: "no client_id", body: "grant_type=" + url.QueryEscape(gateway.GrantTypeDeviceCode) + "&device_code=" + dcApproved,
			wantStatus: 400, wantError: "invalid_request", wantOutcome: "bad_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dev := &fakeDevice{err: tc.backendErr}
			e := newEnvWith(t, envConfig{device: dev})
			code, _, m, raw := postForm(t, e.srv.URL+"/token", formType, tc.body)
			if code != tc.wantStatus || (tc.wantError != "" && m["error"] != tc.wantError) {
				t.Fatalf("%d %s, want %d %q", code, raw, tc.wantStatus, tc.wantError)
			}
			events := e.auditEvents(t)
			if len(events) != 1 || events[0]["outcome"] != tc.wantOutcome || (events[0]["grant_type"] == "device_code") == tc.noGrant {
				t.Fatalf("audit events %v, want one with outcome %q", events, tc.wantOutcome)
			}
			if got := tokenRequests(t, e, tc.wantOutcome); got != 1 {
				t.Fatalf("portcullis_token_requests_total{outcome=%q} = %v", tc.wantOutcome, got)
			}
			for _, secret := range []string{dcApproved, fakeDeviceSession, "signed.alice"} {
				if strings.Contains(e.log.String(), secret) {
					t.Fatalf("%s in the log:\n%s", secret, e.log.String())
				}
			}
			if ended := e.authn.ended.Load(); (ended != nil && ended.GetRefreshToken() == fakeDeviceSession) != tc.wantEnded {
				t.Fatalf("session ended: %v, want %v", ended, tc.wantEnded)
			}
			if code != 200 {
				return
			}
			if m["access_token"] != "signed.alice" || m["token"] != "signed.alice" || m["refresh_token"] != fakeDeviceSession ||
				m["token_type"] != "Bearer" || m["expires_in"] != float64(300) || m["issued_at"] == nil || m["scope"] != "repository:a/b:pull" {
				t.Fatalf("answer %v", m)
			}
			// The flow's service and scopes are authorized, not anything the poll said.
			if az := e.authz.last; az.GetService() != "registry.local" || len(az.GetRequested()) != 1 || az.GetIdentity().GetSubject() != "alice" {
				t.Fatalf("Authorize got %v", az)
			}
			if p := dev.lastPoll.Load(); p.GetClientId() != "portcullis-cli" || p.GetRemoteAddr() != "127.0.0.1" {
				t.Fatalf("PollDeviceAuthorization got %v", p)
			}
			if e.authn.calls.Load() != 0 {
				t.Fatal("the device grant asked Authenticate")
			}
		})
	}
}

// tokenRequests is portcullis_token_requests_total{outcome}.
func tokenRequests(t *testing.T, e *env, outcome string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_token_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestDeviceFlowOff: without the authn clients the endpoints do not exist and discovery does
// not name them.
func TestDeviceFlowOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil, nil, 0)
	code, _, m, raw := postForm(t, e.srv.URL+"/device_authorization", formType, "client_id=x&service=registry.local")
	if code != 404 || m["error"] != "not_found" {
		t.Fatalf("device_authorization: %d %s", code, raw)
	}
	code, _, m, raw = postForm(t, e.srv.URL+"/token", formType,
		url.Values{"grant_type": {gateway.GrantTypeDeviceCode}, "device_code": {dcApproved}, "client_id": {"x"}}.Encode())
	if code != 400 || m["error"] != "unsupported_grant_type" {
		t.Fatalf("device grant: %d %s", code, raw)
	}
	code, _, m, raw = postForm(t, e.srv.URL+"/backchannel-logout", formType, "logout_token="+goodLogoutToken)
	if code != 404 || m["error"] != "not_found" {
		t.Fatalf("backchannel-logout: %d %s", code, raw)
	}
	doc := discovery(t, e)
	if _, ok := doc["device_authorization_endpoint"]; ok {
		t.Fatalf("discovery names the device endpoint: %v", doc)
	}
	if strings.Contains(strings.Join(toStrings(doc["grant_types_supported"]), " "), "device_code") {
		t.Fatalf("discovery names the device grant: %v", doc)
	}
}

func TestDeviceDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envConfig{device: &fakeDevice{}, account: &fakeAccount{}})
	doc := discovery(t, e)
	if doc["device_authorization_endpoint"] != "https://auth.example.com/device_authorization" ||
		doc["revocation_endpoint"] != "https://auth.example.com/revoke" ||
		strings.Join(toStrings(doc["grant_types_supported"]), " ") != "password refresh_token "+gateway.GrantTypeTokenExchange+" "+gateway.GrantTypeDeviceCode {
		t.Fatalf("discovery %v", doc)
	}
	if strings.Contains(strings.Join(keys(doc), " "), "backchannel") {
		t.Fatalf("discovery names back-channel logout: %v", doc)
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/device_authorization"}, {"PUT", "/backchannel-logout"}} {
		req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
			t.Fatalf("%s %s: %d Allow %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

func TestBackChannelLogout(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, query, ctype, body string
		backendErr               error
		wantStatus               int
		wantError                string
		wantAsked                bool
	}{
		{name: "ok", body: "logout_token=" + goodLogoutToken, wantStatus: 200, wantAsked: true},
		{name: "does not verify", body: "logout_token=eyJ.eyJ.bad", wantStatus: 400, wantError: "invalid_request", wantAsked: true},
		{name: "no token", body: "x=y", wantStatus: 400, wantError: "invalid_request"},
		{name: "two tokens", body: "logout_token=a&logout_token=b", wantStatus: 400, wantError: "invalid_request"},
		{name: "token in the URL", query: "?logout_token=" + goodLogoutToken, body: "logout_token=" + goodLogoutToken, wantStatus: 400, wantError: "invalid_request"},
		{name: "not a form", ctype: "application/jwt", body: goodLogoutToken, wantStatus: 400, wantError: "invalid_request"},
		{name: "huge", body: "logout_token=" + strings.Repeat("x", 1<<20), wantStatus: 400, wantError: "invalid_request"},
		{name: "authn down", body: "logout_token=" + goodLogoutToken, backendErr: status.Error(codes.Unavailable, "down"),
			wantStatus: 503, wantError: "temporarily_unavailable", wantAsked: true},
		// authn without sso.issuer, or one too old to have the service: the endpoint is absent.
		{name: "no identity provider", body: "logout_token=" + goodLogoutToken, backendErr: status.Error(codes.FailedPrecondition, "no sso"),
			wantStatus: 404, wantError: "not_found", wantAsked: true},
		{name: "older authn", body: "logout_token=" + goodLogoutToken, backendErr: status.Error(codes.Unimplemented, "unknown service"),
			wantStatus: 404, wantError: "not_found", wantAsked: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			acct := &fakeAccount{err: tc.backendErr}
			e := newEnvWith(t, envConfig{account: acct})
			ctype := tc.ctype
			if ctype == "" {
				ctype = formType
			}
			code, h, m, raw := postForm(t, e.srv.URL+"/backchannel-logout"+tc.query, ctype, tc.body)
			if code != tc.wantStatus || (tc.wantError != "" && m["error"] != tc.wantError) || (tc.wantError == "" && raw != "") {
				t.Fatalf("%d %q, want %d %q", code, raw, tc.wantStatus, tc.wantError)
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Fatalf("Cache-Control %q", h.Get("Cache-Control"))
			}
			if got := acct.calls.Load() > 0; got != tc.wantAsked {
				t.Fatalf("authn asked: %v, want %v", got, tc.wantAsked)
			}
			if strings.Contains(e.log.String(), goodLogoutToken) {
				t.Fatalf("the logout token in the log:\n%s", e.log.String())
			}
			if ev := e.auditEvents(t); len(ev) != 1 || ev[0]["msg"] != "back-channel logout" {
				t.Fatalf("audit events %v", ev)
			}
		})
	}
}

func discovery(t *testing.T, e *env) map[string]any {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("discovery: %d %v", resp.StatusCode, err)
	}
	return doc
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRoutesHook: another package's routes are served behind the gateway's request id, and
// see the client address the trusted proxies name.
func TestRoutesHook(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envConfig{opt: func(o *gateway.Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.Routes = func(mux *http.ServeMux, clientAddr func(*http.Request) string) {
			mux.HandleFunc("GET /device", func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "page for "+clientAddr(r))
			})
		}
	}})
	req, _ := http.NewRequest("GET", e.srv.URL+"/device", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "page for 203.0.113.7" || resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%d %q %v", resp.StatusCode, body, resp.Header)
	}
}
