package authn_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

// exchanger is a claiming backend that accepts its credentials as subject tokens too (the
// oidc backend's way). Its fake matches the empty user name a subject token comes with.
type exchanger struct{ claimer }

func (exchanger) AcceptsSubjectTokens() bool { return true }

// Authenticate names the token's workload, as a JWT's claims would.
func (e *exchanger) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	id, err := e.claimer.Authenticate(ctx, cr)
	if err == nil {
		id.Subject = "job"
	}
	return id, err
}

// A subject token reaches only claiming backends that accept subject tokens: never a
// password backend's bcrypt, never a robot-style backend that needs a user name, and one
// that nobody accepts is refused without bcrypt work.
func TestChainRoutesSubjectTokens(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
	cases := []struct {
		name        string
		token       string
		ci          *exchanger
		wantErr     error
		wantBackend string
		wantClaimed bool
	}{
		{"accepted", jwt, &exchanger{claimer{"eyJ", fake{pass: jwt}}}, nil, "ci", true},
		{"refused by its backend", jwt, &exchanger{claimer{"eyJ", fake{pass: "other"}}}, authn.ErrInvalidCredentials, "", true},
		{"no backend knows it", jwt, &exchanger{claimer{"eyJ", fake{user: "someone"}}}, authn.ErrInvalidCredentials, "", true},
		{"backend unavailable", jwt, &exchanger{claimer{"eyJ", fake{err: authn.ErrUnavailable}}}, authn.ErrUnavailable, "", true},
		// A robot key is claimed by the robot backend, which takes no subject tokens.
		{"robot key", "pcp_0123456789", &exchanger{claimer{"eyJ", fake{}}}, authn.ErrInvalidCredentials, "", false},
		// A password is claimed by nobody: refused, and never compared with a hash.
		{"password", "pw", &exchanger{claimer{"eyJ", fake{}}}, authn.ErrInvalidCredentials, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lim, compares := countingLimiter()
			people := openStatic(t, authn.Deps{Bcrypt: lim}, static.User{Name: "alice", PasswordHash: bcryptHash(t, "pw", bcrypt.MinCost)})
			robots := &claimer{"pcp_", fake{pass: "pcp_0123456789"}} // would accept an empty user
			ch := authn.NewChain([]authn.Member{
				{Name: "people", Backend: people},
				{Name: "robots", Backend: robots},
				{Name: "ci", Backend: tc.ci},
			}, lim)
			cr := authn.Credentials{Kind: authn.KindSubjectToken, Password: authn.Password(tc.token)}
			id, err := ch.Authenticate(context.Background(), cr)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && id.Backend != tc.wantBackend {
				t.Fatalf("backend = %q, want %q", id.Backend, tc.wantBackend)
			}
			if n := compares.Load(); n > 0 {
				t.Fatalf("a subject token cost %d bcrypt comparisons", n)
			}
			if robots.calls > 0 {
				t.Fatal("a subject token reached a backend that does not accept subject tokens")
			}
			if got := ch.Claimed(context.Background(), cr); got != tc.wantClaimed {
				t.Fatalf("Claimed = %v, want %v (the lockout's Unguessable)", got, tc.wantClaimed)
			}
		})
	}
}

// The same string as a password and as a subject token are two credentials to the cache:
// one's success must not answer for the other.
func TestCacheKeepsSubjectTokensApart(t *testing.T) {
	t.Parallel()
	calls := 0
	next := authFunc(func(context.Context, authn.Credentials) (identity.Identity, error) {
		calls++
		return identity.Identity{Subject: "ci"}, nil
	})
	c := authn.NewCache(next, time.Minute, 10, time.Now)
	ctx := context.Background()
	for _, kind := range []authn.CredentialKind{authn.KindPassword, authn.KindSubjectToken, authn.KindPassword} {
		if _, err := c.Authenticate(ctx, authn.Credentials{Password: "eyJ.x.y", Kind: kind}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 {
		t.Fatalf("backend calls = %d, want 2 (one per kind)", calls)
	}
}

// One identity per request: a subject token never comes with a user, a password or a
// request for a session, and without one the user name stays required.
func TestServerSubjectTokenArguments(t *testing.T) {
	t.Parallel()
	var got authn.Credentials
	s := authn.NewServer(authFunc(func(_ context.Context, cr authn.Credentials) (identity.Identity, error) {
		got = cr
		return identity.Identity{Subject: "ci", Backend: "ci"}, nil
	}), slog.New(slog.DiscardHandler), authn.ServerOptions{})
	for _, tc := range []struct {
		name string
		req  *authnv1.AuthenticateRequest
		want codes.Code
	}{
		{"subject token alone", &authnv1.AuthenticateRequest{SubjectToken: "eyJ.x.y", Service: "reg"}, codes.OK},
		{"with a user name", &authnv1.AuthenticateRequest{SubjectToken: "eyJ.x.y", Username: "alice"}, codes.InvalidArgument},
		{"with a password", &authnv1.AuthenticateRequest{SubjectToken: "eyJ.x.y", Password: "pw"}, codes.InvalidArgument},
		{"offline", &authnv1.AuthenticateRequest{SubjectToken: "eyJ.x.y", Offline: true}, codes.InvalidArgument},
		{"neither", &authnv1.AuthenticateRequest{Password: "pw"}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Authenticate(context.Background(), tc.req)
			if c := status.Code(err); c != tc.want {
				t.Fatalf("code = %v, want %v (%v)", c, tc.want, err)
			}
		})
	}
	if got.Kind != authn.KindSubjectToken || got.Password != "eyJ.x.y" || got.Username != "" || got.Service != "reg" {
		t.Fatalf("the backend got %+v, want the subject token as a KindSubjectToken credential", got)
	}
}
