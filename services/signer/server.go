package signer

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-dev/portcullis/internal/pbconv"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// Server exposes a Signer over gRPC.
type Server struct {
	signerv1.UnimplementedSignerServiceServer
	s   *Signer
	log *slog.Logger
}

// NewServer returns the gRPC server for s.
func NewServer(s *Signer, log *slog.Logger) *Server { return &Server{s: s, log: log} }

// SignToken implements signerv1.SignerServiceServer.
func (srv *Server) SignToken(ctx context.Context, req *signerv1.SignTokenRequest) (*signerv1.SignTokenResponse, error) {
	if err := req.GetTtl().CheckValid(); req.GetTtl() != nil && err != nil {
		return nil, status.Error(codes.InvalidArgument, "invalid ttl")
	}
	t, err := srv.s.Sign(ctx, Claims{
		Subject: req.GetSubject(), Audience: req.GetAudience(), Access: pbconv.ScopesFromPB(req.GetAccess()),
		TTL: req.GetTtl().AsDuration(), JTI: req.GetJti(),
	})
	if err != nil {
		return nil, toStatus(ctx, srv.log, err, "signing key unavailable")
	}
	return &signerv1.SignTokenResponse{Token: t.Raw, IssuedAt: timestamppb.New(t.IssuedAt), ExpiresAt: timestamppb.New(t.ExpiresAt), KeyId: t.KeyID}, nil
}

// ListPublicKeys implements signerv1.SignerServiceServer.
func (srv *Server) ListPublicKeys(ctx context.Context, _ *signerv1.ListPublicKeysRequest) (*signerv1.ListPublicKeysResponse, error) {
	jwks, err := srv.s.JWKS(ctx)
	if err != nil {
		return nil, toStatus(ctx, srv.log, err, "signing key unavailable")
	}
	return &signerv1.ListPublicKeysResponse{Jwks: jwks, Issuer: srv.s.Issuer(), MaxAge: durationpb.New(srv.s.JWKSMaxAge(ctx))}, nil
}

// toStatus is the one place signer errors become gRPC codes, for the signer and the admin
// API. unavailable is what the caller is told when the key manager failed: never the
// error's text, which is logged.
func toStatus(ctx context.Context, log *slog.Logger, err error, unavailable string) error {
	var unsupported *UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		return status.Error(codes.FailedPrecondition, unsupported.Reason)
	case errors.Is(err, ErrUnsupported):
		return status.Error(codes.FailedPrecondition, "not supported by this key manager")
	case errors.Is(err, ErrInvalidRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrUnavailable):
		log.WarnContext(ctx, unavailable, "error", err)
		return status.Error(codes.Unavailable, unavailable)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "signing timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		log.ErrorContext(ctx, "signing failed", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}
