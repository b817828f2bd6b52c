package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// rpcFixture runs the Server on a real gRPC server over bufconn, with one log sink for the
// manager and the server.
type rpcFixture struct {
	*fixture
	client authnv1.DeviceAuthorizationServiceClient
	issued []Authorization
}

// issue stands in for internal/app's IssueFunc: "gone" can no longer sign in, "broken"
// meets a failing session store.
func (r *rpcFixture) issue(_ context.Context, a Authorization, _ string) (string, identity.Identity, error) {
	r.issued = append(r.issued, a)
	switch a.Subject {
	case "gone":
		return "", identity.Identity{}, fmt.Errorf("issue: user %q: %w", a.Subject, ErrAccountEnded)
	case "broken":
		return "", identity.Identity{}, errors.New("sessions: database is locked")
	}
	return "pcr_refresh-" + a.Subject, identity.Identity{Subject: a.Subject, Backend: a.Backend, Groups: []string{"dev"}}, nil
}

func newRPCFixture(t *testing.T, o Options) *rpcFixture {
	t.Helper()
	r := &rpcFixture{fixture: newFixture(t, o)}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	authnv1.RegisterDeviceAuthorizationServiceServer(srv, NewServer(r.m, r.issue, r.m.log))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	r.client = authnv1.NewDeviceAuthorizationServiceClient(conn)
	return r
}

func (r *rpcFixture) start(t *testing.T) *authnv1.StartDeviceAuthorizationResponse {
	t.Helper()
	resp, err := r.client.StartDeviceAuthorization(context.Background(), &authnv1.StartDeviceAuthorizationRequest{
		ClientId: testStart.ClientID, Service: testStart.Service, Scopes: testStart.Scopes,
		RemoteAddr: testStart.ClientAddr, UserAgent: testStart.UserAgent})
	if err != nil {
		t.Fatalf("StartDeviceAuthorization: %v", err)
	}
	return resp
}

func (r *rpcFixture) poll(code string) (*authnv1.PollDeviceAuthorizationResponse, error) {
	return r.client.PollDeviceAuthorization(context.Background(), &authnv1.PollDeviceAuthorizationRequest{
		DeviceCode: code, ClientId: testStart.ClientID, RemoteAddr: "192.0.2.7:6666"})
}

// wantStatus checks a status's code and its ErrorInfo reason ("" for none).
func wantStatus(t *testing.T, what string, err error, code codes.Code, reason string) {
	t.Helper()
	st := status.Convert(err)
	got := ""
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != ErrorDomain {
				t.Errorf("%s: ErrorInfo domain %q, want %q", what, info.GetDomain(), ErrorDomain)
			}
			got = info.GetReason()
		}
	}
	if st.Code() != code || got != reason {
		t.Errorf("%s = %v (reason %q), want %v (reason %q)", what, st.Code(), got, code, reason)
	}
}

func TestServerStart(t *testing.T) {
	r := newRPCFixture(t, Options{ExpiresIn: 15 * time.Minute, Interval: 7 * time.Second})
	resp := r.start(t)
	n, ok := NormalizeUserCode(resp.GetUserCode())
	if !ok || resp.GetUserCode() != FormatUserCode(n) || resp.GetUserCode()[4] != '-' {
		t.Errorf("user code %q: want the XXXX-XXXX form", resp.GetUserCode())
	}
	if !wellFormedDeviceCode(resp.GetDeviceCode()) {
		t.Errorf("device code %q is not well formed", resp.GetDeviceCode())
	}
	if resp.GetExpiresIn().AsDuration() != 15*time.Minute || resp.GetInterval().AsDuration() != 7*time.Second {
		t.Errorf("expires_in %v, interval %v; want 15m, 7s", resp.GetExpiresIn().AsDuration(), resp.GetInterval().AsDuration())
	}
	_, err := r.client.StartDeviceAuthorization(context.Background(), &authnv1.StartDeviceAuthorizationRequest{ClientId: "cli"})
	wantStatus(t, "Start without a service", err, codes.InvalidArgument, ReasonInvalidRequest)
	if st := status.Convert(err); st.Message() != "service is required" {
		t.Errorf("message %q, want the InvalidError's", st.Message())
	}
}

func TestServerPollStatuses(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// setup decides the flow, moves the clock, or changes the code polled with.
		setup  func(r *rpcFixture, a Authorization, code string) string
		code   codes.Code
		reason string
	}{
		{"pending", func(*rpcFixture, Authorization, string) string { return "" }, codes.FailedPrecondition, ReasonAuthorizationPending},
		{"slow down", func(r *rpcFixture, _ Authorization, code string) string {
			_, _ = r.m.Poll(ctx, code, testStart.ClientID)
			r.clock.Add(time.Second)
			return ""
		}, codes.FailedPrecondition, ReasonSlowDown},
		{"denied", func(r *rpcFixture, a Authorization, _ string) string {
			_, _ = r.m.Decide(ctx, a.UserCode, "198.51.100.1", false, alice)
			return ""
		}, codes.PermissionDenied, ReasonAccessDenied},
		{"expired", func(r *rpcFixture, _ Authorization, _ string) string {
			r.clock.Add(10 * time.Minute)
			return ""
		}, codes.Unauthenticated, ReasonExpiredToken},
		{"unknown code", func(*rpcFixture, Authorization, string) string { return "pcd_nope" }, codes.Unauthenticated, ReasonInvalidGrant},
		{"approver's account ended", func(r *rpcFixture, a Authorization, _ string) string {
			_, _ = r.m.Decide(ctx, a.UserCode, "198.51.100.1", true, Approver{Subject: "gone", Backend: "sso"})
			return ""
		}, codes.PermissionDenied, ReasonAccessDenied},
		{"issuing fails", func(r *rpcFixture, a Authorization, _ string) string {
			_, _ = r.m.Decide(ctx, a.UserCode, "198.51.100.1", true, Approver{Subject: "broken", Backend: "sso"})
			return ""
		}, codes.Unavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRPCFixture(t, Options{})
			resp := r.start(t)
			n, _ := NormalizeUserCode(resp.GetUserCode())
			a, err := r.st.ByUserCode(ctx, n)
			if err != nil {
				t.Fatal(err)
			}
			code := resp.GetDeviceCode()
			if c := tc.setup(r, a, code); c != "" {
				code = c
			}
			_, err = r.poll(code)
			wantStatus(t, "Poll", err, tc.code, tc.reason)
			if st := status.Convert(err); strings.Contains(st.Message(), "database") {
				t.Errorf("an internal error reached the client: %q", st.Message())
			}
			assertNoSecrets(t, r.logs.String(), []string{resp.GetDeviceCode()}, []string{n})
		})
	}
}

func TestServerPollApproved(t *testing.T) {
	ctx := context.Background()
	r := newRPCFixture(t, Options{})
	resp := r.start(t)
	d, err := r.m.Decide(ctx, resp.GetUserCode(), "198.51.100.1", true, alice)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.poll(resp.GetDeviceCode())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if got.GetRefreshToken() != "pcr_refresh-alice" || got.GetIdentity().GetSubject() != "alice" ||
		got.GetIdentity().GetBackend() != "sso" || got.GetService() != testStart.Service ||
		strings.Join(got.GetScopes(), " ") != strings.Join(testStart.Scopes, " ") {
		t.Errorf("Poll = %v", got)
	}
	if len(r.issued) != 1 || r.issued[0].Fingerprint != "fp1" || r.issued[0].DeviceCodeHash != d.DeviceCodeHash {
		t.Errorf("issued %+v", r.issued)
	}
	_, err = r.poll(resp.GetDeviceCode())
	wantStatus(t, "second Poll", err, codes.Unauthenticated, ReasonInvalidGrant)

	logs := r.logs.String()
	if !strings.Contains(logs, `"msg":"device flow completed","log_type":"audit","subject":"alice"`) ||
		!strings.Contains(logs, `"remote_addr":"192.0.2.7:6666","approver_addr":"198.51.100.1"`) {
		t.Errorf("no completion audit line:\n%s", logs)
	}
	n, _ := NormalizeUserCode(resp.GetUserCode())
	assertNoSecrets(t, logs, []string{resp.GetDeviceCode()}, []string{n})
	if strings.Contains(logs, "pcr_refresh") {
		t.Errorf("a refresh token is in the logs:\n%s", logs)
	}
}

func TestStatusFor(t *testing.T) {
	ctx := context.Background()
	if err := StatusFor(ctx, nil, nil); err != nil {
		t.Errorf("StatusFor(nil) = %v", err)
	}
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
		msg    string
	}{
		{ErrPending, codes.FailedPrecondition, ReasonAuthorizationPending, ""},
		{ErrSlowDown, codes.FailedPrecondition, ReasonSlowDown, ""},
		{ErrDenied, codes.PermissionDenied, ReasonAccessDenied, ""},
		{fmt.Errorf("x: %w", ErrAccountEnded), codes.PermissionDenied, ReasonAccessDenied, ""},
		{ErrExpired, codes.Unauthenticated, ReasonExpiredToken, ""},
		{ErrInvalidGrant, codes.Unauthenticated, ReasonInvalidGrant, ""},
		{fmt.Errorf("x: %w", &InvalidError{Msg: "service is required"}), codes.InvalidArgument, ReasonInvalidRequest, "service is required"},
		{ErrNotFound, codes.NotFound, "", ""},
		{ErrRateLimited, codes.ResourceExhausted, ReasonRateLimited, ""},
		{fmt.Errorf("store: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "", ""},
		{context.Canceled, codes.Canceled, "", ""},
		{errors.New("sqlite: disk I/O error"), codes.Internal, "", "internal error"},
	} {
		var logs testutil.Buffer
		log := slog.New(slog.NewJSONHandler(&logs, nil))
		err := StatusFor(ctx, log, tc.err)
		wantStatus(t, fmt.Sprintf("StatusFor(%v)", tc.err), err, tc.code, tc.reason)
		if st := status.Convert(err); tc.msg != "" && st.Message() != tc.msg {
			t.Errorf("StatusFor(%v) message %q, want %q", tc.err, st.Message(), tc.msg)
		}
		// Only what is unexpected is logged, with its detail.
		if logged := logs.String() != ""; logged != (tc.code == codes.Internal) {
			t.Errorf("StatusFor(%v) logged %q", tc.err, logs.String())
		}
		if tc.code == codes.Internal && !strings.Contains(logs.String(), "disk I/O error") {
			t.Errorf("the detail is not in the log: %q", logs.String())
		}
	}
}
