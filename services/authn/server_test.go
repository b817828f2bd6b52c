package authn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

type failing struct{ err error }

func (f failing) Authenticate(context.Context, authn.Credentials) (identity.Identity, error) {
	return identity.Identity{}, f.err
}

func TestServerMapsErrorsWithoutEchoingThem(t *testing.T) {
	t.Parallel()
	const secret = "ldap://10.0.0.7 bind cn=svc"
	cases := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"wrong password", fmt.Errorf("backend %q: %w", secret, authn.ErrInvalidCredentials), codes.Unauthenticated},
		{"bcrypt queue full", fmt.Errorf("backend %q: %w", secret, authn.ErrBusy), codes.ResourceExhausted},
		{"locked", fmt.Errorf("backend %q: %w", secret, &authn.LockedError{RetryAfter: time.Second}), codes.ResourceExhausted},
		{"deadline while waiting for bcrypt", fmt.Errorf("backend %q: authn: waiting for bcrypt: %w", secret, context.DeadlineExceeded), codes.DeadlineExceeded},
		{"backend down", fmt.Errorf("%s: %w", secret, authn.ErrUnavailable), codes.Unavailable},
		{"anything else", errors.New(secret), codes.Internal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := authn.NewServer(failing{tc.err}, slog.New(slog.DiscardHandler), authn.ServerOptions{})
			_, err := s.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: "u", Password: "p"})
			st := status.Convert(err)
			if st.Code() != tc.want {
				t.Fatalf("code = %v, want %v (%v)", st.Code(), tc.want, err)
			}
			if strings.Contains(st.Message(), "10.0.0.7") || strings.Contains(st.Message(), "cn=svc") {
				t.Fatalf("message echoes internal text: %q", st.Message())
			}
		})
	}
}

// The real path: a saturated limiter behind the chain reaches the client as ResourceExhausted
// (queue full) or DeadlineExceeded (the request's deadline passed while waiting).
func TestServerAnswersSaturatedBcrypt(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(lim *authn.BcryptLimiter) *authn.Server {
		a, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: string(h)}}}).Open(context.Background(), authn.Deps{Bcrypt: lim})
		if err != nil {
			t.Fatal(err)
		}
		return authn.NewServer(authn.NewChain([]authn.Member{{Name: "s", Backend: a}}, lim), slog.New(slog.DiscardHandler), authn.ServerOptions{})
	}
	req := &authnv1.AuthenticateRequest{Username: "alice", Password: "pw"}

	full := authn.NewBcryptLimiter(1, 0)
	defer backendtest.Hold(t, full)()
	if _, err := serve(full).Authenticate(context.Background(), req); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("queue full: %v, want ResourceExhausted", err)
	}

	slow := authn.NewBcryptLimiter(1, 4)
	defer backendtest.Hold(t, slow)() // held until the test ends: the deadline passes while waiting
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := serve(slow).Authenticate(ctx, req); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline while waiting: %v, want DeadlineExceeded", err)
	}
}

// A locked caller is ResourceExhausted like a full bcrypt queue; ErrorInfo tells the two apart
// and RetryInfo says when to retry (at least a second). The message is one for every account,
// known or not.
func TestServerAnswersLocked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		err       error
		wantDelay time.Duration
		wantInfo  bool
	}{
		{"locked", &authn.LockedError{RetryAfter: 90*time.Second + time.Millisecond}, 90*time.Second + time.Millisecond, true},
		{"locked, less than a second left", fmt.Errorf("x: %w", &authn.LockedError{RetryAfter: time.Millisecond}), time.Second, true},
		{"bare sentinel", authn.ErrLocked, time.Second, true},
		{"busy", authn.ErrBusy, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := authn.NewServer(failing{tc.err}, slog.New(slog.DiscardHandler), authn.ServerOptions{})
			_, err := s.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: "alice", Password: "p"})
			st := status.Convert(err)
			if st.Code() != codes.ResourceExhausted || strings.Contains(st.Message(), "alice") {
				t.Fatalf("status %v %q", st.Code(), st.Message())
			}
			var info *errdetails.ErrorInfo
			var retry *errdetails.RetryInfo
			for _, d := range st.Details() {
				switch d := d.(type) {
				case *errdetails.ErrorInfo:
					info = d
				case *errdetails.RetryInfo:
					retry = d
				}
			}
			if !tc.wantInfo {
				if info != nil || retry != nil {
					t.Fatalf("details %v on a busy answer", st.Details())
				}
				return
			}
			if info == nil || info.GetReason() != authn.LockedReason || info.GetDomain() != authn.ErrorDomain {
				t.Fatalf("ErrorInfo %v", info)
			}
			if retry == nil || retry.GetRetryDelay().AsDuration() != tc.wantDelay {
				t.Fatalf("RetryInfo %v, want %s", retry, tc.wantDelay)
			}
		})
	}
}

// okAuth vouches for alice through backend "people" when the password is right.
type okAuth struct{}

func (okAuth) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	if c.Username == "alice" && c.Password == "right-pw" {
		return identity.Identity{Subject: "alice", Backend: "people"}, nil
	}
	return identity.Identity{}, authn.ErrInvalidCredentials
}

// TestEveryLoginIsOneAuditEvent: each outcome of Authenticate is one structured audit event
// with a reason code, and the password is in none of them.
func TestEveryLoginIsOneAuditEvent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name               string
		auth               authn.Authenticator
		pass               string
		result, reason     string
		subject, backendID string
	}{
		{"success", okAuth{}, "right-pw", "success", "ok", "alice", "people"},
		{"wrong password", okAuth{}, "wrong-pw-123", "failure", "invalid_credentials", "", ""},
		{"unknown user", failing{authn.ErrNoMatch}, "wrong-pw-123", "failure", "invalid_credentials", "", ""},
		{"locked", failing{fmt.Errorf("x: %w", &authn.LockedError{RetryAfter: time.Second})}, "wrong-pw-123", "refused", "locked", "", ""},
		{"bcrypt busy", failing{authn.ErrBusy}, "wrong-pw-123", "refused", "busy", "", ""},
		{"directory down", failing{fmt.Errorf("ldap: %w", authn.ErrUnavailable)}, "wrong-pw-123", "error", "backend_unavailable", "", ""},
		{"bug", failing{errors.New("boom")}, "wrong-pw-123", "error", "internal", "", ""},
		{"subject refused", failing{fmt.Errorf("backend %q: %w: %w", "corp", authn.ErrInvalidCredentials, authn.ErrSubjectRefused)},
			"right-pw-123", "failure", "subject_refused", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf strings.Builder
			srv := authn.NewServer(tc.auth, slog.New(slog.NewJSONHandler(&buf, nil)), authn.ServerOptions{})
			_, _ = srv.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: "alice", Password: tc.pass,
				Service: "registry", ClientId: "docker", RemoteAddr: "192.0.2.7"})
			var events []map[string]any
			for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				if strings.Contains(line, tc.pass) {
					t.Fatalf("a log line holds the password: %s", line)
				}
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Fatalf("log line %q: %v", line, err)
				}
				if m["msg"] == "authentication" {
					events = append(events, m)
				}
			}
			if len(events) != 1 {
				t.Fatalf("%d authentication events, want 1:\n%s", len(events), buf.String())
			}
			e := events[0]
			if tc.reason == "subject_refused" && !strings.Contains(fmt.Sprint(e["detail"]), `backend "corp"`) {
				t.Errorf("detail = %v, want the backend to fix named", e["detail"])
			}
			want := map[string]any{"log_type": "audit", "result": tc.result, "reason": tc.reason, "username": "alice",
				"subject": tc.subject, "backend": tc.backendID, "client_id": "docker", "remote_addr": "192.0.2.7", "service": "registry"}
			for k, v := range want {
				if e[k] != v {
					t.Errorf("%s = %v, want %v", k, e[k], v)
				}
			}
		})
	}
}

// A login name holding ':' could pass for a namespaced subject (robot:ci): it is refused
// before any backend is asked. docker and the OAuth2 form both send it as typed.
func TestServerRefusesNamespacedUsernames(t *testing.T) {
	t.Parallel()
	for _, user := range []string{"robot:ci", "system:anonymous", "a:b"} {
		called := false
		s := authn.NewServer(authFunc(func(context.Context, authn.Credentials) (identity.Identity, error) {
			called = true
			return identity.Identity{Subject: user}, nil
		}), slog.New(slog.DiscardHandler), authn.ServerOptions{})
		_, err := s.Authenticate(context.Background(), &authnv1.AuthenticateRequest{Username: user, Password: "p"})
		if status.Code(err) != codes.InvalidArgument || called {
			t.Errorf("%q: %v (backend asked: %v), want InvalidArgument without asking", user, err, called)
		}
	}
}

type authFunc func(context.Context, authn.Credentials) (identity.Identity, error)

func (f authFunc) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	return f(ctx, c)
}
