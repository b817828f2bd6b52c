package authn

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// Page sizes of ListSessions: what an unset page_size gets, and the most one page holds.
const (
	DefaultSessionPageSize = 50
	MaxSessionPageSize     = 500
)

// SessionAdminServer is the admin API over sessions: list, show, revoke. It belongs on the
// admin listener only; callers are authenticated there, not here.
type SessionAdminServer struct {
	authnv1.UnimplementedSessionAdminServiceServer
	m     *sessions.Manager
	log   *slog.Logger
	audit *slog.Logger

	// SessionEvent is called with EventRevoked once per revoked session; metrics hook in here.
	SessionEvent func(event string)
}

// NewSessionAdminServer returns the admin server over m's store. A revocation reaches the
// store at once; every refresh reads the store, so it takes effect on the next one.
func NewSessionAdminServer(m *sessions.Manager, log *slog.Logger) *SessionAdminServer {
	return &SessionAdminServer{m: m, log: log, audit: log.With("log_type", "audit"), SessionEvent: func(string) {}}
}

// ListSessions implements authnv1.SessionAdminServiceServer.
func (s *SessionAdminServer) ListSessions(ctx context.Context, req *authnv1.ListSessionsRequest) (*authnv1.ListSessionsResponse, error) {
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, toStatus(ctx, s.log, invalidArgument{"page_size must not be negative"})
	case size == 0:
		size = DefaultSessionPageSize
	case size > MaxSessionPageSize:
		size = MaxSessionPageSize // AIP-158: a larger page size is coerced, not refused
	}
	ss, next, err := s.m.Store().List(ctx, sessions.ListOptions{Subject: req.GetSubject(), PageSize: size, PageToken: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(ctx, s.log, adminStoreErr(err))
	}
	out := &authnv1.ListSessionsResponse{Sessions: make([]*authnv1.Session, len(ss)), NextPageToken: next}
	for i, ses := range ss {
		out.Sessions[i] = SessionToPB(ses)
	}
	return out, nil
}

// GetSession implements authnv1.SessionAdminServiceServer.
func (s *SessionAdminServer) GetSession(ctx context.Context, req *authnv1.GetSessionRequest) (*authnv1.GetSessionResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(ctx, s.log, invalidArgument{"id is required"})
	}
	ses, err := s.m.Store().Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, adminStoreErr(err))
	}
	return &authnv1.GetSessionResponse{Session: SessionToPB(ses)}, nil
}

// RevokeSession implements authnv1.SessionAdminServiceServer.
func (s *SessionAdminServer) RevokeSession(ctx context.Context, req *authnv1.RevokeSessionRequest) (*authnv1.RevokeSessionResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(ctx, s.log, invalidArgument{"id is required"})
	}
	// Read first so the audit event says whose session ended.
	ses, err := s.m.Store().Get(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, s.log, adminStoreErr(err))
	}
	if err := s.m.Store().Revoke(ctx, req.GetId()); err != nil {
		return nil, toStatus(ctx, s.log, adminStoreErr(err))
	}
	s.SessionEvent(EventRevoked)
	s.audit.InfoContext(ctx, "session revoked", "session_id", ses.ID, "subject", ses.Subject, "backend", ses.Backend,
		"service", ses.Service, "client_id", ses.ClientID)
	return &authnv1.RevokeSessionResponse{}, nil
}

// RevokeUserSessions implements authnv1.SessionAdminServiceServer.
func (s *SessionAdminServer) RevokeUserSessions(ctx context.Context, req *authnv1.RevokeUserSessionsRequest) (*authnv1.RevokeUserSessionsResponse, error) {
	if req.GetSubject() == "" {
		return nil, toStatus(ctx, s.log, invalidArgument{"subject is required"})
	}
	n, err := s.m.Store().RevokeSubject(ctx, req.GetSubject())
	if err != nil {
		return nil, toStatus(ctx, s.log, adminStoreErr(err))
	}
	for range n {
		s.SessionEvent(EventRevoked)
	}
	s.audit.InfoContext(ctx, "sessions revoked", "subject", req.GetSubject(), "revoked", n)
	return &authnv1.RevokeUserSessionsResponse{Revoked: int32(min(n, 1<<31-1))}, nil
}

// adminStoreErr keeps the caller's mistakes (ErrNotFound, ErrBadPageToken) and makes any
// other store failure ErrUnavailable.
func adminStoreErr(err error) error {
	if errors.Is(err, sessions.ErrNotFound) || errors.Is(err, sessions.ErrBadPageToken) {
		return err
	}
	return storeErr(err)
}

// SessionToPB is what the admin API and the account pages show of a session; never its token
// or hash.
func SessionToPB(s sessions.Session) *authnv1.Session {
	return &authnv1.Session{
		Id: s.ID, Subject: s.Subject, Backend: s.Backend, Service: s.Service, ClientId: s.ClientID,
		CreatedAt: ts(s.CreatedAt), LastUsedAt: ts(s.LastUsedAt), LastRemoteAddr: s.LastRemoteAddr,
		IdleExpiresAt: ts(s.IdleExpiresAt), ExpiresAt: ts(s.ExpiresAt),
	}
}

// ts leaves an unset time unset rather than sending 1 January year 1.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
