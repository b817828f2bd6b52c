package authn

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/pkg/pbconv"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// Server exposes an Authenticator over gRPC.
type Server struct {
	authnv1.UnimplementedAuthnServiceServer
	auth Authenticator
	log  *slog.Logger
}

// NewServer returns the gRPC server for a.
func NewServer(a Authenticator, log *slog.Logger) *Server {
	return &Server{auth: a, log: log}
}

// Authenticate implements authnv1.AuthnServiceServer.
func (s *Server) Authenticate(ctx context.Context, req *authnv1.AuthenticateRequest) (*authnv1.AuthenticateResponse, error) {
	if req.GetUsername() == "" {
		return nil, status.Error(codes.InvalidArgument, "username is required")
	}
	id, err := s.auth.Authenticate(ctx, Credentials{
		Username: req.GetUsername(), Password: Password(req.GetPassword()),
		Service: req.GetService(), ClientID: req.GetClientId(), RemoteAddr: req.GetRemoteAddr(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &authnv1.AuthenticateResponse{Identity: pbconv.IdentityToPB(id)}, nil
}

// toStatus is the one place authn errors become gRPC codes; internal detail stays in the log.
func (s *Server) toStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrNoMatch):
		return status.Error(codes.Unauthenticated, "invalid credentials")
	case errors.Is(err, ErrBusy):
		// Not logged per request: under a flood that would be a second sink. Limiter metrics count it.
		return status.Error(codes.ResourceExhausted, "too many authentication requests; retry later")
	case errors.Is(err, ErrUnavailable):
		s.log.WarnContext(ctx, "authn backend unavailable", "error", err)
		return status.Error(codes.Unavailable, "authentication backend unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "authentication timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		s.log.ErrorContext(ctx, "authn failed", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}
