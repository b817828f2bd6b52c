package admin_test

import (
	"context"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/admin"
)

const adminSecret = "0123456789abcdef-admin"

func withAuth(values ...string) context.Context {
	md := metadata.MD{}
	for _, v := range values {
		md.Append("authorization", v)
	}
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestAdminAuthNeedsTheBearerSecretOnEveryCall(t *testing.T) {
	t.Parallel()
	auth := admin.NewAuth(adminSecret, slog.New(slog.DiscardHandler))
	cases := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"bearer", withAuth("Bearer " + adminSecret), codes.OK},
		{"scheme in lower case", withAuth("bearer " + adminSecret), codes.OK},
		{"secret without the Bearer prefix", withAuth(adminSecret), codes.Unauthenticated},
		{"other scheme", withAuth("Basic " + adminSecret), codes.Unauthenticated},
		{"wrong secret", withAuth("Bearer 0123456789abcdef-wrong"), codes.Unauthenticated},
		{"prefix of the secret", withAuth("Bearer " + adminSecret[:16]), codes.Unauthenticated},
		{"secret with a suffix", withAuth("Bearer " + adminSecret + "x"), codes.Unauthenticated},
		{"empty bearer", withAuth("Bearer "), codes.Unauthenticated},
		{"two headers", withAuth("Bearer "+adminSecret, "Bearer "+adminSecret), codes.Unauthenticated},
		{"no header", withAuth(), codes.Unauthenticated},
		{"no metadata", context.Background(), codes.Unauthenticated},
	}
	// The admin server carries only admin services, so the guard covers every method on it,
	// health included.
	methods := []string{"/portcullis.signer.v1.KeyAdminService/RotateKey", "/grpc.health.v1.Health/Check"}
	for _, tc := range cases {
		for _, m := range methods {
			called := false
			_, err := auth.Unary()(tc.ctx, nil, &grpc.UnaryServerInfo{FullMethod: m}, func(context.Context, any) (any, error) {
				called = true
				return "ok", nil
			})
			if got := status.Code(err); got != tc.want || called != (tc.want == codes.OK) {
				t.Errorf("%s, %s: %v (handler called: %v), want %v", tc.name, m, got, called, tc.want)
			}
		}
		called := false
		err := auth.Stream()(nil, fakeStream{ctx: tc.ctx}, &grpc.StreamServerInfo{FullMethod: "/grpc.health.v1.Health/Watch"},
			func(any, grpc.ServerStream) error { called = true; return nil })
		if got := status.Code(err); got != tc.want || called != (tc.want == codes.OK) {
			t.Errorf("%s, Watch: %v (handler called: %v), want %v", tc.name, got, called, tc.want)
		}
	}
}

func TestAdminAuthWithoutSecretRefusesEverything(t *testing.T) {
	t.Parallel()
	auth := admin.NewAuth("", slog.New(slog.DiscardHandler))
	for _, ctx := range []context.Context{withAuth("Bearer "), withAuth(""), context.Background()} {
		if got := status.Code(auth.Check(ctx, "/portcullis.signer.v1.KeyAdminService/ListKeyVersions")); got != codes.PermissionDenied {
			t.Errorf("disabled admin API answered %v, want PermissionDenied", got)
		}
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }
