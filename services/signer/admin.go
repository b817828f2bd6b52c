package signer

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// AdminServer serves KeyAdminService.
type AdminServer struct {
	signerv1.UnimplementedKeyAdminServiceServer
	km  KeyManager
	log *slog.Logger
}

// NewAdminServer returns the admin server over km.
func NewAdminServer(km KeyManager, log *slog.Logger) *AdminServer {
	return &AdminServer{km: km, log: log}
}

func (a *AdminServer) versions(ctx context.Context) ([]*signerv1.KeyVersion, error) {
	vs, err := a.km.KeyVersions(ctx)
	if errors.Is(err, ErrUnsupported) {
		// A key that does not rotate is its own only version.
		k, err := a.km.SigningKey(ctx)
		if err != nil {
			return nil, toStatus(ctx, a.log, fmt.Errorf("%w: %w", ErrUnavailable, err), "signing key unavailable")
		}
		return []*signerv1.KeyVersion{{Version: 1, KeyId: k.ID(), State: "active"}}, nil
	}
	if err != nil {
		return nil, toStatus(ctx, a.log, fmt.Errorf("%w: %w", ErrUnavailable, err), "key versions unavailable")
	}
	out := make([]*signerv1.KeyVersion, len(vs))
	ts := func(t time.Time) *timestamppb.Timestamp {
		if t.IsZero() {
			return nil
		}
		return timestamppb.New(t)
	}
	for i, v := range vs {
		out[i] = &signerv1.KeyVersion{Version: int32(v.Version), KeyId: v.ID, State: v.State,
			CreatedAt: ts(v.Created), ActiveFrom: ts(v.ActiveFrom), RetiresAt: ts(v.RetiresAt)}
	}
	return out, nil
}

// ListKeyVersions implements signerv1.KeyAdminServiceServer.
func (a *AdminServer) ListKeyVersions(ctx context.Context, _ *signerv1.ListKeyVersionsRequest) (*signerv1.ListKeyVersionsResponse, error) {
	vs, err := a.versions(ctx)
	if err != nil {
		return nil, err
	}
	return &signerv1.ListKeyVersionsResponse{Versions: vs}, nil
}

// RotateKey implements signerv1.KeyAdminServiceServer. A key manager that does not rotate
// answers ErrUnsupported: FailedPrecondition, saying which one does.
func (a *AdminServer) RotateKey(ctx context.Context, _ *signerv1.RotateKeyRequest) (*signerv1.RotateKeyResponse, error) {
	if err := a.km.Rotate(ctx); err != nil {
		return nil, toStatus(ctx, a.log, fmt.Errorf("%w: %w", ErrUnavailable, err), "key rotation failed; see the signer's log")
	}
	a.log.InfoContext(ctx, "signing key rotated by admin request")
	vs, err := a.versions(ctx)
	if err != nil {
		return nil, err
	}
	return &signerv1.RotateKeyResponse{Versions: vs}, nil
}

// AdminAuth guards the admin server: every call on it must carry
// "authorization: Bearer <secret>". With no secret configured it refuses everything.
// Refusals are logged, never the credential.
type AdminAuth struct {
	// digest is SHA-256 of the secret: comparing fixed-length digests in constant time says
	// nothing about the secret's length, which comparing the strings would.
	digest  [sha256.Size]byte
	enabled bool
	log     *slog.Logger
}

// NewAdminAuth returns the guard for secret ("" disables the admin API).
func NewAdminAuth(secret string, log *slog.Logger) *AdminAuth {
	return &AdminAuth{digest: sha256.Sum256([]byte(secret)), enabled: secret != "", log: log}
}

const bearerPrefix = "Bearer "

// Check returns nil when ctx carries the admin credential, else PermissionDenied (admin API
// disabled) or Unauthenticated.
func (a *AdminAuth) Check(ctx context.Context, method string) error {
	var presented string
	var values []string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		values = md.Get("authorization")
	}
	// One header only: with two, which one a proxy or the client library honours is a guess.
	hasBearer := false
	if len(values) == 1 && len(values[0]) >= len(bearerPrefix) && strings.EqualFold(values[0][:len(bearerPrefix)], bearerPrefix) {
		presented, hasBearer = values[0][len(bearerPrefix):], true
	}
	got := sha256.Sum256([]byte(presented))
	if subtle.ConstantTimeCompare(got[:], a.digest[:]) == 1 && hasBearer && a.enabled {
		return nil
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	a.log.WarnContext(ctx, "admin call refused", "method", method, "peer", addr,
		"credential_present", len(values) > 0, "bearer", hasBearer)
	if !a.enabled {
		return status.Error(codes.PermissionDenied, "the admin API is disabled: no admin credential is configured")
	}
	return status.Error(codes.Unauthenticated, "admin credential required (authorization: Bearer <secret>)")
}

// Unary is the interceptor for unary calls.
func (a *AdminAuth) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.Check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the interceptor for streaming calls (health Watch).
func (a *AdminAuth) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.Check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
