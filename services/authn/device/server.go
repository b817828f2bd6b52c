package device

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/pbconv"
)

// ErrorDomain is the ErrorInfo domain of the statuses StatusFor makes; the reasons are the
// RFC 8628 / RFC 6749 error codes the gateway answers the device with.
const ErrorDomain = "portcullis.dev"

// ErrorInfo reasons.
const (
	ReasonAuthorizationPending = "authorization_pending"
	ReasonSlowDown             = "slow_down"
	ReasonAccessDenied         = "access_denied"
	ReasonExpiredToken         = "expired_token"
	ReasonInvalidGrant         = "invalid_grant"
	ReasonInvalidRequest       = "invalid_request"
	ReasonRateLimited          = "rate_limited"
)

// IssueFunc turns a consumed, approved flow into a refresh session: it reads the approving
// person (a.Subject at a.Backend, with a.Fingerprint) afresh and creates their session for
// a.Service. A person who can no longer sign in is ErrAccountEnded. The host process
// (internal/app) supplies it.
type IssueFunc func(ctx context.Context, a Authorization, remoteAddr string) (refreshToken string, id identity.Identity, err error)

// Server is DeviceAuthorizationService over a Manager.
type Server struct {
	authnv1.UnimplementedDeviceAuthorizationServiceServer
	m     *Manager
	issue IssueFunc
	log   *slog.Logger
	audit *slog.Logger
}

var _ authnv1.DeviceAuthorizationServiceServer = (*Server)(nil)

// NewServer returns the gRPC service; log nil discards.
func NewServer(m *Manager, issue IssueFunc, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{m: m, issue: issue, log: log, audit: log.With("log_type", "audit")}
}

func (s *Server) StartDeviceAuthorization(ctx context.Context, req *authnv1.StartDeviceAuthorizationRequest) (*authnv1.StartDeviceAuthorizationResponse, error) {
	code, a, err := s.m.Start(ctx, StartRequest{ClientID: req.GetClientId(), Service: req.GetService(),
		Scopes: req.GetScopes(), ClientAddr: req.GetRemoteAddr(), UserAgent: req.GetUserAgent()})
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &authnv1.StartDeviceAuthorizationResponse{
		DeviceCode: code,
		UserCode:   FormatUserCode(a.UserCode),
		ExpiresIn:  durationpb.New(a.ExpiresAt.Sub(a.CreatedAt)),
		Interval:   durationpb.New(a.Interval),
	}, nil
}

func (s *Server) PollDeviceAuthorization(ctx context.Context, req *authnv1.PollDeviceAuthorizationRequest) (*authnv1.PollDeviceAuthorizationResponse, error) {
	a, err := s.m.Poll(ctx, req.GetDeviceCode(), req.GetClientId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	// The flow is spent from here on: when issuing fails the device has to start again.
	token, id, err := s.issue(ctx, a, req.GetRemoteAddr())
	switch {
	case errors.Is(err, ErrAccountEnded):
		s.audit.InfoContext(ctx, "device flow refused: account can no longer sign in", "subject", a.Subject,
			"backend", a.Backend, "client_id", a.ClientID, "remote_addr", req.GetRemoteAddr())
		return nil, toStatus(ctx, s.log, ErrAccountEnded)
	case err != nil:
		s.log.ErrorContext(ctx, "device flow: issuing the session failed", "subject", a.Subject,
			"client_id", a.ClientID, "error", err)
		return nil, status.Error(codes.Unavailable, "could not issue the session; start again")
	}
	s.audit.InfoContext(ctx, "device flow completed", "subject", id.Subject, "backend", id.Backend,
		"client_id", a.ClientID, "service", a.Service, "scopes", a.Scopes,
		"remote_addr", req.GetRemoteAddr(), "approver_addr", a.DecidedAddr)
	return &authnv1.PollDeviceAuthorizationResponse{
		Identity:     pbconv.IdentityToPB(id),
		RefreshToken: token,
		Service:      a.Service,
		Scopes:       a.Scopes,
	}, nil
}

// StatusFor maps a Manager's error to the gRPC status every device-flow RPC answers with,
// DeviceAuthorizationService's and AccountService's LookupDevice and DecideDevice alike.
func StatusFor(ctx context.Context, log *slog.Logger, err error) error {
	return toStatus(ctx, log, err)
}

// toStatus is the one mapping from this package's errors to gRPC statuses. The RFC 8628
// error code travels as an ErrorInfo reason so the gateway can answer the device with it.
// Unexpected errors are logged here and answered with a generic message.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var invalid *InvalidError
	switch {
	case errors.Is(err, ErrPending):
		return withReason(codes.FailedPrecondition, "authorization pending", ReasonAuthorizationPending)
	case errors.Is(err, ErrSlowDown):
		return withReason(codes.FailedPrecondition, "polling too fast; slow down", ReasonSlowDown)
	case errors.Is(err, ErrDenied), errors.Is(err, ErrAccountEnded):
		return withReason(codes.PermissionDenied, "access denied", ReasonAccessDenied)
	case errors.Is(err, ErrExpired):
		return withReason(codes.Unauthenticated, "device code expired", ReasonExpiredToken)
	case errors.Is(err, ErrInvalidGrant):
		return withReason(codes.Unauthenticated, "invalid device code", ReasonInvalidGrant)
	case errors.As(err, &invalid):
		return withReason(codes.InvalidArgument, invalid.Msg, ReasonInvalidRequest)
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, "no pending device authorization with that code")
	case errors.Is(err, ErrRateLimited):
		// Not logged per request: under a guessing flood that would be a second sink.
		return withReason(codes.ResourceExhausted, "too many wrong codes; retry later", ReasonRateLimited)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "device authorization timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		log.ErrorContext(ctx, "device flow failed", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}

func withReason(c codes.Code, msg, reason string) error {
	st := status.New(c, msg)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}
