package pats

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// AdminServer is the admin API over personal access tokens: list an owner's, create one for
// an owner (the secret shown once), revoke one by id. It belongs on the admin listener only;
// callers are authenticated there. The Manager writes the audit events.
type AdminServer struct {
	authnv1.UnimplementedPersonalAccessTokenAdminServiceServer
	m   *Manager
	log *slog.Logger
}

// NewAdminServer returns the admin server over m.
func NewAdminServer(m *Manager, log *slog.Logger) *AdminServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &AdminServer{m: m, log: log}
}

// ListPersonalAccessTokens implements authnv1.PersonalAccessTokenAdminServiceServer.
func (s *AdminServer) ListPersonalAccessTokens(ctx context.Context, req *authnv1.ListPersonalAccessTokensRequest) (*authnv1.ListPersonalAccessTokensResponse, error) {
	ps, err := s.m.List(ctx, req.GetOwner())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.m.Now()
	out := &authnv1.ListPersonalAccessTokensResponse{PersonalAccessTokens: make([]*authnv1.PersonalAccessToken, len(ps))}
	for i, p := range ps {
		out.PersonalAccessTokens[i] = ToPB(p, now)
	}
	return out, nil
}

// CreatePersonalAccessToken implements authnv1.PersonalAccessTokenAdminServiceServer.
func (s *AdminServer) CreatePersonalAccessToken(ctx context.Context, req *authnv1.CreatePersonalAccessTokenRequest) (*authnv1.CreatePersonalAccessTokenResponse, error) {
	spec := Spec{Owner: req.GetOwner(), Name: req.GetName(), Scopes: req.GetScopes()}
	if d := req.GetExpiresIn(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, s.toStatus(ctx, &InvalidError{"expires_in is not a valid duration"})
		}
		spec.ExpiresIn = d.AsDuration()
		if spec.ExpiresIn <= 0 {
			return nil, s.toStatus(ctx, &InvalidError{"expires_in must be positive"})
		}
	}
	secret, p, err := s.m.Create(ctx, spec)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &authnv1.CreatePersonalAccessTokenResponse{PersonalAccessToken: ToPB(p, s.m.Now()), Secret: secret}, nil
}

// RevokePersonalAccessToken implements authnv1.PersonalAccessTokenAdminServiceServer.
func (s *AdminServer) RevokePersonalAccessToken(ctx context.Context, req *authnv1.RevokePersonalAccessTokenRequest) (*authnv1.RevokePersonalAccessTokenResponse, error) {
	if req.GetId() == "" {
		return nil, s.toStatus(ctx, &InvalidError{"id is required"})
	}
	p, err := s.m.Revoke(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &authnv1.RevokePersonalAccessTokenResponse{PersonalAccessToken: ToPB(p, s.m.Now())}, nil
}

// toStatus is the one place token errors become gRPC codes; store detail stays in the log.
func (s *AdminServer) toStatus(ctx context.Context, err error) error {
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.Msg)
	case errors.Is(err, ErrExists):
		return status.Error(codes.AlreadyExists, "the owner has a token with this name; revoke it first to reuse the name")
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, "personal access token not found")
	case errors.Is(err, ErrNoOwner):
		return status.Error(codes.FailedPrecondition, "no authn backend knows an account under this owner that may log in")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "personal access token store timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		s.log.WarnContext(ctx, "personal access token store or owner lookup failed", "error", err)
		return status.Error(codes.Unavailable, "personal access token store unavailable")
	}
}

// ToPB is what an administrator sees of p at now; never the secret or its hash.
func ToPB(p PAT, now time.Time) *authnv1.PersonalAccessToken {
	out := &authnv1.PersonalAccessToken{Id: p.ID, Owner: p.Owner, Name: p.Name,
		CreatedAt: ts(p.CreatedAt), ExpiresAt: ts(p.ExpiresAt), LastUsedAt: ts(p.LastUsedAt),
		State: authnv1.PersonalAccessTokenState_PERSONAL_ACCESS_TOKEN_STATE_ACTIVE}
	for _, sc := range p.Scopes {
		out.Scopes = append(out.Scopes, sc.String())
	}
	if p.Expired(now) {
		out.State = authnv1.PersonalAccessTokenState_PERSONAL_ACCESS_TOKEN_STATE_EXPIRED
	}
	return out
}

// ts leaves an unset time unset rather than sending 1 January year 1.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
