package signer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
