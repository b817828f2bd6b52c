package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// lockedStatus is what services/authn answers a locked-out caller: ResourceExhausted with
// ErrorInfo LOGIN_LOCKED and, when given, RetryInfo.
func lockedStatus(t *testing.T, retry time.Duration) error {
	t.Helper()
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: "LOGIN_LOCKED", Domain: "authn.portcullis.dev"}}
	if retry > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	}
	st, err := status.New(codes.ResourceExhausted, "too many failed login attempts; retry later").WithDetails(details...)
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// TestLockedOutAnswers: a caller authn locked out gets 429 with Retry-After (whole seconds,
// rounded up) on the GET form, and invalid_grant with the same header on the OAuth2 form; a
// full bcrypt queue (the same code without ErrorInfo) keeps its own answer.
func TestLockedOutAnswers(t *testing.T) {
	t.Parallel()
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"pw"},
		"service": {"registry.local"}, "client_id": {"containerd-client"}}
	cases := []struct {
		name        string
		err         error
		post        bool
		wantStatus  int
		wantError   string
		wantRetry   string
		wantDetails bool
		wantWarn    bool   // "backend saturated" in the gateway's log
		wantOutcome string // of the token decision's audit event
	}{
		{name: "GET locked", err: lockedStatus(t, 90*time.Second+time.Millisecond),
			wantStatus: 429, wantError: "too_many_attempts", wantRetry: "91", wantDetails: true, wantOutcome: "locked"},
		{name: "GET locked under a second", err: lockedStatus(t, 200*time.Millisecond),
			wantStatus: 429, wantError: "too_many_attempts", wantRetry: "1", wantDetails: true, wantOutcome: "locked"},
		{name: "GET locked without RetryInfo", err: lockedStatus(t, 0),
			wantStatus: 429, wantError: "too_many_attempts", wantRetry: "1", wantDetails: true, wantOutcome: "locked"},
		{name: "POST locked", err: lockedStatus(t, 15*time.Minute), post: true,
			wantStatus: 400, wantError: "invalid_grant", wantRetry: "900", wantDetails: true, wantOutcome: "locked"},
		{name: "GET busy", err: status.Error(codes.ResourceExhausted, "bcrypt queue full"),
			wantStatus: 429, wantError: "temporarily_unavailable", wantRetry: "1", wantWarn: true, wantOutcome: "unavailable"},
		{name: "POST busy", err: status.Error(codes.ResourceExhausted, "bcrypt queue full"), post: true,
			wantStatus: 429, wantError: "temporarily_unavailable", wantRetry: "1", wantWarn: true, wantOutcome: "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvWith(t, envConfig{authnErr: tc.err})
			var req *http.Request
			if tc.post {
				req, _ = http.NewRequest("POST", e.srv.URL+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			} else {
				req, _ = http.NewRequest("GET", e.srv.URL+"/token?service=registry.local&scope=repository:a/b:pull", nil)
				req.SetBasicAuth("alice", "pw")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Retry-After") != tc.wantRetry {
				t.Fatalf("%d Retry-After %q, want %d %q; body %s", resp.StatusCode, resp.Header.Get("Retry-After"), tc.wantStatus, tc.wantRetry, body)
			}
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("answer is not JSON: %s", body)
			}
			if m["error"] != tc.wantError || m["error_description"] == "" || (m["details"] != "") != tc.wantDetails {
				t.Fatalf("body %s, want error %q (details: %v)", body, tc.wantError, tc.wantDetails)
			}
			if tc.wantDetails && (!strings.Contains(m["details"], "retry after "+tc.wantRetry+"s") || strings.Contains(m["details"], "alice")) {
				t.Fatalf("details %q", m["details"])
			}
			if resp.Header.Get("WWW-Authenticate") != "" {
				t.Fatal("a locked-out caller is asked for other credentials")
			}
			if got := strings.Contains(e.log.String(), "backend saturated"); got != tc.wantWarn {
				t.Fatalf("saturation warning logged: %v, want %v\n%s", got, tc.wantWarn, e.log.String())
			}
			events := e.auditEvents(t)
			if len(events) != 1 || events[0]["outcome"] != tc.wantOutcome {
				t.Fatalf("audit events %v, want one with outcome %q", events, tc.wantOutcome)
			}
		})
	}
}
