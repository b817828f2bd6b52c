package account

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-dev/portcullis/internal/pbconv"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

// maxListPages bounds ListMySessions (MaxPageSize sessions a page): a person with more
// sessions than that sees the oldest ones.
const maxListPages = 10

// GetAccount implements authnv1.AccountServiceServer.
func (s *Server) GetAccount(ctx context.Context, req *authnv1.GetAccountRequest) (*authnv1.GetAccountResponse, error) {
	ws, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &authnv1.GetAccountResponse{Identity: pbconv.IdentityToPB(id), PersonalAccessTokens: s.o.PATs != nil,
		WebSessionExpiresAt: timestamppb.New(ws.ExpiresAt)}
	if s.o.PATs != nil {
		out.PatMaxTtl = durationpb.New(s.o.PATMaxTTL)
	}
	return out, nil
}

// SignOut implements authnv1.AccountServiceServer. It does not re-read the person: ending a
// session needs nobody's account.
func (s *Server) SignOut(ctx context.Context, req *authnv1.SignOutRequest) (*authnv1.SignOutResponse, error) {
	if !wellFormed(req.GetWebSessionToken()) {
		return &authnv1.SignOutResponse{}, nil
	}
	ws, err := s.o.WebSessions.ByTokenHash(ctx, websessions.HashToken(req.GetWebSessionToken()))
	if err == nil {
		err = s.o.WebSessions.Delete(ctx, ws.ID)
	}
	switch {
	case errors.Is(err, websessions.ErrNotFound):
		return &authnv1.SignOutResponse{}, nil
	case err != nil:
		return nil, s.toStatus(ctx, storeErr("ending a web session", err))
	}
	s.audit.InfoContext(ctx, "signed out", "web_session_id", ws.ID, "subject", ws.Subject, "backend", ws.Backend)
	return &authnv1.SignOutResponse{}, nil
}

// ListMySessions implements authnv1.AccountServiceServer.
func (s *Server) ListMySessions(ctx context.Context, req *authnv1.ListMySessionsRequest) (*authnv1.ListMySessionsResponse, error) {
	_, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	ss, err := s.sessionsOf(ctx, id.Subject)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &authnv1.ListMySessionsResponse{Sessions: make([]*authnv1.Session, len(ss))}
	for i, ses := range ss {
		out.Sessions[i] = authn.SessionToPB(ses)
	}
	return out, nil
}

// sessionsOf lists every registry session of subject, all pages.
func (s *Server) sessionsOf(ctx context.Context, subject string) ([]sessions.Session, error) {
	var out []sessions.Session
	o := sessions.ListOptions{Subject: subject, PageSize: sessions.MaxPageSize}
	for range maxListPages {
		ss, next, err := s.o.Sessions.Store().List(ctx, o)
		if err != nil {
			return nil, storeErr("listing sessions", err)
		}
		out = append(out, ss...)
		if next == "" {
			break
		}
		o.PageToken = next
	}
	return out, nil
}

// RevokeMySession implements authnv1.AccountServiceServer.
func (s *Server) RevokeMySession(ctx context.Context, req *authnv1.RevokeMySessionRequest) (*authnv1.RevokeMySessionResponse, error) {
	ws, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	st := s.o.Sessions.Store()
	ses, err := st.Get(ctx, req.GetId())
	switch {
	case errors.Is(err, sessions.ErrNotFound), err == nil && ses.Subject != id.Subject:
		// Someone else's answers as an unknown id: the pages do not tell which ids exist.
		return nil, s.toStatus(ctx, errNotFound)
	case err != nil:
		return nil, s.toStatus(ctx, storeErr("reading a session", err))
	}
	if err := st.Revoke(ctx, ses.ID); err != nil {
		if errors.Is(err, sessions.ErrNotFound) {
			return nil, s.toStatus(ctx, errNotFound)
		}
		return nil, s.toStatus(ctx, storeErr("revoking a session", err))
	}
	s.o.SessionEvent(authn.EventRevoked)
	s.audit.InfoContext(ctx, "session revoked by its owner", "session_id", ses.ID, "subject", ses.Subject,
		"backend", ses.Backend, "service", ses.Service, "client_id", ses.ClientID, "web_session_id", ws.ID)
	return &authnv1.RevokeMySessionResponse{}, nil
}

// ListMyPersonalAccessTokens implements authnv1.AccountServiceServer.
func (s *Server) ListMyPersonalAccessTokens(ctx context.Context, req *authnv1.ListMyPersonalAccessTokensRequest) (*authnv1.ListMyPersonalAccessTokensResponse, error) {
	_, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.o.PATs == nil {
		return nil, s.toStatus(ctx, errNoPATs)
	}
	ps, err := s.o.PATs.List(ctx, id.Subject)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.o.PATs.Now()
	out := &authnv1.ListMyPersonalAccessTokensResponse{PersonalAccessTokens: make([]*authnv1.PersonalAccessToken, len(ps))}
	for i, p := range ps {
		out.PersonalAccessTokens[i] = pats.ToPB(p, now)
	}
	return out, nil
}

// CreateMyPersonalAccessToken implements authnv1.AccountServiceServer.
func (s *Server) CreateMyPersonalAccessToken(ctx context.Context, req *authnv1.CreateMyPersonalAccessTokenRequest) (*authnv1.CreateMyPersonalAccessTokenResponse, error) {
	ws, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.o.PATs == nil {
		return nil, s.toStatus(ctx, errNoPATs)
	}
	spec := pats.Spec{Owner: id.Subject, Name: req.GetName(), Scopes: req.GetScopes()}
	if d := req.GetExpiresIn(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() <= 0 {
			return nil, s.toStatus(ctx, &invalidArgument{"expires_in must be a positive duration"})
		}
		spec.ExpiresIn = d.AsDuration()
	}
	secret, p, err := s.o.PATs.Create(ctx, spec)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit.InfoContext(ctx, "personal access token created by its owner", "owner", p.Owner, "pat", p.Name,
		"pat_id", p.ID, "expires_at", p.ExpiresAt, "web_session_id", ws.ID)
	return &authnv1.CreateMyPersonalAccessTokenResponse{PersonalAccessToken: pats.ToPB(p, s.o.PATs.Now()), Secret: secret}, nil
}

// RevokeMyPersonalAccessToken implements authnv1.AccountServiceServer.
func (s *Server) RevokeMyPersonalAccessToken(ctx context.Context, req *authnv1.RevokeMyPersonalAccessTokenRequest) (*authnv1.RevokeMyPersonalAccessTokenResponse, error) {
	ws, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.o.PATs == nil {
		return nil, s.toStatus(ctx, errNoPATs)
	}
	// The manager revokes by id alone; the owner's own list says whether the id is theirs.
	ps, err := s.o.PATs.List(ctx, id.Subject)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	mine := false
	for _, p := range ps {
		mine = mine || p.ID == req.GetId()
	}
	if !mine || req.GetId() == "" {
		return nil, s.toStatus(ctx, errNotFound)
	}
	p, err := s.o.PATs.Revoke(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.audit.InfoContext(ctx, "personal access token revoked by its owner", "owner", p.Owner, "pat", p.Name,
		"pat_id", p.ID, "web_session_id", ws.ID)
	return &authnv1.RevokeMyPersonalAccessTokenResponse{}, nil
}

// BackChannelLogout implements authnv1.AccountServiceServer.
func (s *Server) BackChannelLogout(ctx context.Context, req *authnv1.BackChannelLogoutRequest) (*authnv1.BackChannelLogoutResponse, error) {
	if s.o.SSO == nil {
		return nil, s.toStatus(ctx, errNoSSO)
	}
	lo, err := s.o.SSO.VerifyLogoutToken(ctx, req.GetLogoutToken())
	if err != nil {
		if errors.Is(err, sso.ErrInvalidToken) {
			err = fmt.Errorf("%w: %w", errBadLogoutToken, err)
		}
		s.audit.InfoContext(ctx, "back-channel logout", "result", "refused", "reason", err.Error())
		return nil, s.toStatus(ctx, err)
	}
	subjects, err := s.o.Directory.Logout(ctx, lo, s.sidSubjects)
	if err != nil {
		return nil, s.toStatus(ctx, storeErr("finding the people a logout names", err))
	}
	ended := 0
	for _, sub := range subjects {
		n, err := s.endSessions(ctx, sub)
		ended += n
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	s.audit.InfoContext(ctx, "back-channel logout", "result", "success", "subjects", subjects,
		"by_sid", lo.SessionID != "", "by_sub", lo.Subject != "", "ended", ended)
	return &authnv1.BackChannelLogoutResponse{Ended: int32(min(ended, 1<<31-1))}, nil
}

// sidSubjects names the people whose web sessions came from the IdP session sid.
func (s *Server) sidSubjects(ctx context.Context, sid string) ([]string, error) {
	return s.o.WebSessions.SubjectsByIDPSession(ctx, sid)
}

// endSessions ends a person's IdP sessions: their registry sessions issued through the IdP
// (the sso backend's) and their web sessions. It says how many ended.
func (s *Server) endSessions(ctx context.Context, subject string) (int, error) {
	ctx = context.WithoutCancel(ctx) // half an ending is worse than a late one
	ss, err := s.sessionsOf(ctx, subject)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ses := range ss {
		if ses.Backend != s.o.SSOBackend {
			continue
		}
		switch err := s.o.Sessions.Store().Revoke(ctx, ses.ID); {
		case err == nil:
			n++
			s.o.SessionEvent(authn.EventRevoked)
		case !errors.Is(err, sessions.ErrNotFound):
			return n, storeErr("revoking a session", err)
		}
	}
	w, err := s.o.WebSessions.DeleteSubject(ctx, subject)
	if err != nil {
		return n, storeErr("ending web sessions", err)
	}
	return n + w, nil
}

// EndAccount ends everything a person holds because their account ended at the IdP:
// registry and web sessions, and personal access tokens. ssoaccounts.Directory's Ended
// calls it.
func (s *Server) EndAccount(ctx context.Context, subject, reason string) {
	n, err := s.endSessions(ctx, subject)
	if err != nil {
		s.log.WarnContext(ctx, "ending the sessions of an ended account failed", "subject", subject, "error", err)
	}
	if s.o.PATs != nil {
		s.o.PATs.EndOwner(ctx, subject)
	}
	s.audit.InfoContext(ctx, "account ended at the identity provider", "subject", subject, "reason", reason, "sessions_ended", n)
}

// toStatus is the one place this package's errors become gRPC codes; internal detail stays
// in the log.
func (s *Server) toStatus(ctx context.Context, err error) error {
	var inv *invalidArgument
	var pinv *pats.InvalidError
	var dev *deviceError
	switch {
	case errors.As(err, &dev):
		return dev.status(ctx, s.log)
	case errors.Is(err, errNotSignedIn):
		return status.Error(codes.Unauthenticated, "not signed in")
	case errors.Is(err, errBadSignIn):
		s.log.DebugContext(ctx, "sign-in refused", "error", err)
		return status.Error(codes.Unauthenticated, "sign-in failed; start again")
	case errors.Is(err, errBadCredentials), errors.Is(err, authn.ErrInvalidCredentials), errors.Is(err, authn.ErrNoMatch):
		return status.Error(codes.Unauthenticated, "invalid credentials")
	case errors.Is(err, authn.ErrLocked):
		return authn.LockedStatus(err)
	case errors.Is(err, authn.ErrBusy):
		return status.Error(codes.ResourceExhausted, "too many authentication requests; retry later")
	case errors.Is(err, errRefused):
		s.log.InfoContext(ctx, "sign-in not allowed", "error", err)
		return status.Error(codes.PermissionDenied, "you may not sign in here")
	case errors.Is(err, errNoSSO):
		return status.Error(codes.FailedPrecondition, "signing in with an identity provider is not configured")
	case errors.Is(err, errNoPATs):
		return status.Error(codes.FailedPrecondition, "personal access tokens are off (sso.pat.enabled)")
	case errors.Is(err, errBadLogoutToken):
		return status.Error(codes.InvalidArgument, "invalid logout token")
	case errors.Is(err, errNotFound), errors.Is(err, pats.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.As(err, &inv):
		return status.Error(codes.InvalidArgument, inv.msg)
	case errors.As(err, &pinv):
		return status.Error(codes.InvalidArgument, pinv.Msg)
	case errors.Is(err, pats.ErrExists):
		return status.Error(codes.AlreadyExists, "you have a token with this name; revoke it first to reuse the name")
	case errors.Is(err, pats.ErrNoOwner):
		return status.Error(codes.FailedPrecondition, "your account cannot own personal access tokens")
	case errors.Is(err, sso.ErrNoRefreshToken):
		s.log.ErrorContext(ctx, "sign-in failed", "error", err)
		return status.Error(codes.FailedPrecondition, "the identity provider gave no refresh token")
	case errors.Is(err, authn.ErrUnavailable), errors.Is(err, sso.ErrUnavailable), errors.Is(err, ssoaccounts.ErrUnavailable),
		errors.Is(err, errStore):
		s.log.WarnContext(ctx, "account: a backend, the identity provider or a store is unavailable", "error", err)
		return status.Error(codes.Unavailable, "unavailable; retry later")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		s.log.ErrorContext(ctx, "account call failed", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}
