package authz

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/pbconv"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
)

// Server exposes an Authorizer over gRPC.
type Server struct {
	authzv1.UnimplementedAuthzServiceServer
	a   Authorizer
	log *slog.Logger
}

// NewServer returns the gRPC server for a.
func NewServer(a Authorizer, log *slog.Logger) *Server { return &Server{a: a, log: log} }

// Authorize implements authzv1.AuthzServiceServer.
func (s *Server) Authorize(ctx context.Context, req *authzv1.AuthorizeRequest) (*authzv1.AuthorizeResponse, error) {
	d, err := s.a.Authorize(ctx, Request{
		Identity: pbconv.IdentityFromPB(req.GetIdentity()), Service: req.GetService(),
		Requested: pbconv.ScopesFromPB(req.GetRequested()), RemoteAddr: req.GetRemoteAddr(), ClientID: req.GetClientId(),
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// A personal access token's narrowing is applied here, after the policy, at the one door
	// every decision leaves by: whatever a policy answers, it cannot widen a token beyond its
	// narrowing, and no policy has to know about tokens for that to hold.
	if n := req.GetIdentity().GetPatScopes(); len(n) > 0 {
		d.Granted = Narrow(d.Granted, pbconv.ScopesFromPB(n))
	}
	return &authzv1.AuthorizeResponse{Granted: pbconv.ScopesToPB(d.Granted), DecisionId: d.DecisionID}, nil
}

// toStatus is the one place authz errors become gRPC codes. A deny is not an error.
func (s *Server) toStatus(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrInvalidRequest):
		return status.Error(codes.InvalidArgument, "invalid authorization request")
	case errors.Is(err, ErrUnavailable):
		s.log.WarnContext(ctx, "policy engine unavailable", "error", err)
		return status.Error(codes.Unavailable, "policy engine unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "policy evaluation timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		s.log.ErrorContext(ctx, "policy evaluation failed", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}

// PolicyAdminServer is the admin API's view of the policy (PolicyAdminService).
type PolicyAdminServer struct {
	authzv1.UnimplementedPolicyAdminServiceServer
	p PolicyReporter
}

// NewPolicyAdminServer serves p's status.
func NewPolicyAdminServer(p PolicyReporter) *PolicyAdminServer { return &PolicyAdminServer{p: p} }

// GetPolicyStatus implements authzv1.PolicyAdminServiceServer.
func (s *PolicyAdminServer) GetPolicyStatus(ctx context.Context, _ *authzv1.GetPolicyStatusRequest) (*authzv1.GetPolicyStatusResponse, error) {
	st := s.p.PolicyStatus(ctx)
	return &authzv1.GetPolicyStatusResponse{Source: st.Source, Revision: st.Revision, Ready: st.Ready,
		LoadedAt: rfc3339(st.LoadedAt), LastError: st.LastError, LastErrorAt: rfc3339(st.LastErrorAt), LastCheck: rfc3339(st.LastCheck)}, nil
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
