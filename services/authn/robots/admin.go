package robots

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

// AdminServer is the admin API over robots: create (the key shown once), list, show, revoke.
// It belongs on the admin listener only; callers are authenticated there, not here. The
// Manager writes the audit events and counts them.
type AdminServer struct {
	authnv1.UnimplementedRobotAdminServiceServer
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

// CreateRobot implements authnv1.RobotAdminServiceServer.
func (s *AdminServer) CreateRobot(ctx context.Context, req *authnv1.CreateRobotRequest) (*authnv1.CreateRobotResponse, error) {
	spec := Spec{Name: req.GetName(), Groups: req.GetGroups(), Labels: req.GetLabels()}
	if d := req.GetExpiresIn(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, s.toStatus(ctx, &InvalidError{"expires_in is not a valid duration"})
		}
		spec.ExpiresIn = d.AsDuration()
		if spec.ExpiresIn == 0 {
			return nil, s.toStatus(ctx, &InvalidError{"expires_in must be positive; leave it unset for a key that does not expire"})
		}
	}
	key, r, err := s.m.Create(ctx, spec)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &authnv1.CreateRobotResponse{Robot: ToPB(r, s.m.Now()), Key: key}, nil
}

// ListRobots implements authnv1.RobotAdminServiceServer.
func (s *AdminServer) ListRobots(ctx context.Context, req *authnv1.ListRobotsRequest) (*authnv1.ListRobotsResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, s.toStatus(ctx, &InvalidError{"page_size must not be negative"})
	}
	rs, next, err := s.m.List(ctx, ListOptions{PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.m.Now()
	out := &authnv1.ListRobotsResponse{Robots: make([]*authnv1.Robot, len(rs)), NextPageToken: next}
	for i, r := range rs {
		out.Robots[i] = ToPB(r, now)
	}
	return out, nil
}

// GetRobot implements authnv1.RobotAdminServiceServer.
func (s *AdminServer) GetRobot(ctx context.Context, req *authnv1.GetRobotRequest) (*authnv1.GetRobotResponse, error) {
	if req.GetName() == "" {
		return nil, s.toStatus(ctx, &InvalidError{"name is required"})
	}
	r, err := s.m.Get(ctx, req.GetName())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &authnv1.GetRobotResponse{Robot: ToPB(r, s.m.Now())}, nil
}

// RevokeRobot implements authnv1.RobotAdminServiceServer.
func (s *AdminServer) RevokeRobot(ctx context.Context, req *authnv1.RevokeRobotRequest) (*authnv1.RevokeRobotResponse, error) {
	if req.GetName() == "" {
		return nil, s.toStatus(ctx, &InvalidError{"name is required"})
	}
	r, _, err := s.m.Revoke(ctx, req.GetName())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &authnv1.RevokeRobotResponse{Robot: ToPB(r, s.m.Now())}, nil
}

// toStatus is the one place robot errors become gRPC codes; store detail stays in the log.
func (s *AdminServer) toStatus(ctx context.Context, err error) error {
	var inv *InvalidError
	switch {
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.Msg)
	case errors.Is(err, ErrExists):
		return status.Error(codes.AlreadyExists, "a robot with this name exists; revoke it first to reuse the name")
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, "robot not found")
	case errors.Is(err, ErrBadPageToken):
		return status.Error(codes.InvalidArgument, "invalid page token")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "robot store timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		s.log.WarnContext(ctx, "robot store failed", "error", err)
		return status.Error(codes.Unavailable, "robot store unavailable")
	}
}

// ToPB is what an administrator sees of r at now; never the key or its hash.
func ToPB(r Robot, now time.Time) *authnv1.Robot {
	out := &authnv1.Robot{
		Id: r.ID, Name: r.Name, Subject: r.Subject(), Groups: r.Groups, Labels: r.Labels,
		CreatedAt: ts(r.CreatedAt), ExpiresAt: ts(r.ExpiresAt), LastUsedAt: ts(r.LastUsedAt), RevokedAt: ts(r.RevokedAt),
	}
	switch r.StateAt(now) {
	case StateActive:
		out.State = authnv1.RobotState_ROBOT_STATE_ACTIVE
	case StateExpired:
		out.State = authnv1.RobotState_ROBOT_STATE_EXPIRED
	case StateRevoked:
		out.State = authnv1.RobotState_ROBOT_STATE_REVOKED
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
