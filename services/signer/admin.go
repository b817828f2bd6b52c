package signer

import (
	"context"
	"crypto/subtle"
	"errors"
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

// ErrNotSupported: the key manager cannot do what the admin asked (a local key does not rotate).
var ErrNotSupported = errors.New("signer: not supported by this key manager")

// KeyVersion is one key version's place in the rotation, for admins.
type KeyVersion struct {
	Version    int
	ID         string
	State      string
	Created    time.Time
	ActiveFrom time.Time
	RetiresAt  time.Time
}

// VersionLister is an optional ability of a KeyManager.
type VersionLister interface {
	KeyVersions(ctx context.Context) ([]KeyVersion, error)
}

// Rotator is an optional ability of a KeyManager.
type Rotator interface {
	Rotate(ctx context.Context) error
}

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
	l, ok := a.km.(VersionLister)
	if !ok {
		k, err := a.km.SigningKey(ctx)
		if err != nil {
			return nil, status.Error(codes.Unavailable, "signing key unavailable")
		}
		return []*signerv1.KeyVersion{{Version: 1, KeyId: k.ID(), State: "active"}}, nil
	}
	vs, err := l.KeyVersions(ctx)
	if err != nil {
		a.log.WarnContext(ctx, "listing key versions failed", "error", err)
		return nil, status.Error(codes.Unavailable, "key versions unavailable")
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

// RotateKey implements signerv1.KeyAdminServiceServer.
func (a *AdminServer) RotateKey(ctx context.Context, _ *signerv1.RotateKeyRequest) (*signerv1.RotateKeyResponse, error) {
	r, ok := a.km.(Rotator)
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "this key manager does not rotate keys (use the vault key manager)")
	}
	if err := r.Rotate(ctx); err != nil {
		a.log.ErrorContext(ctx, "key rotation failed", "error", err)
		return nil, status.Error(codes.Unavailable, "key rotation failed; see the signer's log")
	}
	a.log.InfoContext(ctx, "signing key rotated by admin request")
	vs, err := a.versions(ctx)
	if err != nil {
		return nil, err
	}
	return &signerv1.RotateKeyResponse{Versions: vs}, nil
}

// AdminAuthInterceptor guards KeyAdminService with a bearer secret; other services pass.
// With no secret configured the admin API refuses everything. Refusals are logged.
func AdminAuthInterceptor(secret string, log *slog.Logger) grpc.UnaryServerInterceptor {
	prefix := "/" + signerv1.KeyAdminService_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !strings.HasPrefix(info.FullMethod, prefix) {
			return handler(ctx, req)
		}
		var got string
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get("authorization"); len(v) > 0 {
				got, _ = strings.CutPrefix(v[0], "Bearer ")
			}
		}
		if secret == "" || subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
			addr := ""
			if p, ok := peer.FromContext(ctx); ok {
				addr = p.Addr.String()
			}
			log.WarnContext(ctx, "admin call refused", "method", info.FullMethod, "peer", addr, "credential_present", got != "")
			if secret == "" {
				return nil, status.Error(codes.PermissionDenied, "the admin API is disabled: no admin credential is configured")
			}
			return nil, status.Error(codes.Unauthenticated, "admin credential required")
		}
		return handler(ctx, req)
	}
}
