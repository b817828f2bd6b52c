package authn

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/pbconv"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// Session events, as passed to ServerOptions.SessionEvent and SessionAdminServer.SessionEvent.
const (
	EventCreated   = "created"
	EventRefreshed = "refreshed"
	EventRefused   = "refused"
	EventRevoked   = "revoked"
)

// ServerOptions are the Server's optional parts.
type ServerOptions struct {
	// Sessions issues and looks up refresh tokens; nil: sessions are off, offline logins get
	// no refresh token and every refresh is refused.
	Sessions *sessions.Manager
	// Resolver re-reads the user behind a session. It is the chain itself, not the cache in
	// front of it: a refresh must see the backend's current data.
	Resolver *Chain
	// SessionEvent is called once per session event (EventCreated, EventRefreshed,
	// EventRefused); metrics hook in here. nil: nothing.
	SessionEvent func(event string)
	// SessionEnded is called once per session a refresh ended because its account changed
	// (EndedAccountChanged, EndedAccountDisabled, EndedAccountRemoved); that refresh also
	// counts as EventRefused. nil: nothing.
	SessionEnded func(reason string)
	// InvalidRefreshToken is called with the client's address when a refresh token is not
	// one of a live session: the lockout counts it toward that address, as a wrong password.
	// nil: nothing.
	InvalidRefreshToken func(ctx context.Context, remoteAddr string)
}

// Why a refresh ended its session, as passed to ServerOptions.SessionEnded and written in the
// "session ended" audit event.
const (
	// EndedAccountChanged: the credential the session was issued against changed (a new
	// password hash, a new directory password-change time).
	EndedAccountChanged = "account_changed"
	// EndedAccountDisabled: the backend says the account may not log in (AD disabled,
	// ppolicy locked).
	EndedAccountDisabled = "account_disabled"
	// EndedAccountRemoved: the backend no longer knows the user (or the backend is gone).
	EndedAccountRemoved = "account_removed"
)

// Server exposes an Authenticator, and the sessions behind refresh tokens, over gRPC.
type Server struct {
	authnv1.UnimplementedAuthnServiceServer
	auth     Authenticator
	log      *slog.Logger
	audit    *slog.Logger
	sessions *sessions.Manager
	resolver *Chain
	event    func(string)
	ended    func(string)
	badToken func(context.Context, string)
}

// NewServer returns the gRPC server for a.
func NewServer(a Authenticator, log *slog.Logger, opts ServerOptions) *Server {
	ev := opts.SessionEvent
	if ev == nil {
		ev = func(string) {}
	}
	ended := opts.SessionEnded
	if ended == nil {
		ended = func(string) {}
	}
	bad := opts.InvalidRefreshToken
	if bad == nil {
		bad = func(context.Context, string) {}
	}
	return &Server{auth: a, log: log, audit: log.With("log_type", "audit"),
		sessions: opts.Sessions, resolver: opts.Resolver, event: ev, ended: ended, badToken: bad}
}

// Authenticate implements authnv1.AuthnServiceServer. An offline login also gets a refresh
// token, when sessions are on and the backend that vouched for the user can re-read it later.
func (s *Server) Authenticate(ctx context.Context, req *authnv1.AuthenticateRequest) (*authnv1.AuthenticateResponse, error) {
	cr := Credentials{
		Username: req.GetUsername(), Password: Password(req.GetPassword()),
		Service: req.GetService(), ClientID: req.GetClientId(), RemoteAddr: req.GetRemoteAddr(),
	}
	switch {
	case req.GetSubjectToken() != "":
		// One identity per request: a token exchange carrying a user or password as well
		// would leave it open which of them the token speaks for.
		if req.GetUsername() != "" || req.GetPassword() != "" || req.GetOffline() {
			return nil, status.Error(codes.InvalidArgument, "subject_token excludes username, password and offline")
		}
		cr.Kind, cr.Password = KindSubjectToken, Password(req.GetSubjectToken())
	case req.GetUsername() == "":
		return nil, status.Error(codes.InvalidArgument, "username is required")
	case identity.CheckBareName(req.GetUsername()) != nil:
		// A name with ':' could pass for a namespaced subject (robot:ci, system:anonymous); no
		// backend holds one (HTTP Basic cannot carry it either).
		return nil, status.Error(codes.InvalidArgument, `username must not contain ":"`)
	}
	id, err := s.auth.Authenticate(ctx, cr)
	s.auditLogin(ctx, req, id, err)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	resp := &authnv1.AuthenticateResponse{Identity: pbconv.IdentityToPB(id)}
	if !req.GetOffline() || s.sessions == nil || s.resolver == nil || !s.resolver.CanResolve(id.Backend) {
		return resp, nil
	}
	tok, ses, err := s.sessions.Issue(ctx, id.Subject, id.Backend, id.Fingerprint, req.GetService(), req.GetClientId(), req.GetRemoteAddr())
	if err != nil {
		// Failing the login beats answering without a token: a client that gets none keeps the
		// password instead (docker stores it in config.json), and nobody would notice.
		return nil, toStatus(ctx, s.log, storeErr(err))
	}
	s.event(EventCreated)
	s.audit.InfoContext(ctx, "session created", sessionAttrs(ses, req.GetRemoteAddr())...)
	resp.RefreshToken = tok
	return resp, nil
}

// auditLogin writes the one audit event of a login: who, through which backend, from where,
// and the outcome with a reason code. Never the password; the username is the one the client
// sent, the subject the one a backend vouched for.
func (s *Server) auditLogin(ctx context.Context, req *authnv1.AuthenticateRequest, id identity.Identity, err error) {
	result, reason := "success", "ok"
	switch {
	case err == nil:
	case errors.Is(err, ErrLocked):
		result, reason = "refused", "locked"
	case errors.Is(err, ErrAccountDisabled):
		result, reason = "failure", "account_disabled"
	case errors.Is(err, ErrSubjectRefused):
		// The password was right, but the backend mapped a subject that could pass for a
		// robot's or another namespace's: set its subject_prefix (README, "Subjects").
		result, reason = "failure", "subject_refused"
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrNoMatch):
		result, reason = "failure", "invalid_credentials"
	case errors.Is(err, ErrBusy):
		result, reason = "refused", "busy"
	case errors.Is(err, ErrUnavailable):
		result, reason = "error", "backend_unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		result, reason = "error", "timeout"
	case errors.Is(err, context.Canceled):
		result, reason = "error", "canceled"
	default:
		result, reason = "error", "internal"
	}
	// Typed attributes, room for all of them: the line is written on every login.
	attrs := make([]slog.Attr, 0, 11)
	attrs = append(attrs, slog.String("result", result), slog.String("reason", reason), slog.String("username", req.GetUsername()),
		slog.String("subject", id.Subject), slog.String("backend", id.Backend), slog.String("service", req.GetService()), slog.String("client_id", req.GetClientId()),
		slog.String("remote_addr", req.GetRemoteAddr()), slog.Bool("offline", req.GetOffline()), slog.Bool("subject_token", req.GetSubjectToken() != ""))
	if reason == "subject_refused" {
		// Which backend needs a subject_prefix; the chain's message holds no secret.
		attrs = append(attrs, slog.String("detail", err.Error()))
	}
	s.audit.LogAttrs(ctx, slog.LevelInfo, "authentication", attrs...)
}

// Refresh implements authnv1.AuthnServiceServer: the token's session, then its user re-read
// in the backend that vouched for them. Every way a token can be wrong gets the same answer,
// so a caller learns nothing about sessions it does not hold.
func (s *Server) Refresh(ctx context.Context, req *authnv1.RefreshRequest) (*authnv1.RefreshResponse, error) {
	id, err := s.refresh(ctx, req)
	if err != nil {
		if errors.Is(err, errRefused) {
			s.event(EventRefused)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	s.event(EventRefreshed)
	return &authnv1.RefreshResponse{Identity: pbconv.IdentityToPB(id)}, nil
}

// EndSession implements authnv1.AuthnServiceServer. The gateway calls it when a token request
// fails after an offline login created a session: the client never saw the refresh token, so
// the session would otherwise sit in the store, listed but held by nobody, until it expired.
// It also calls it for RFC 7009 revocation (POST /revoke, `portcullis logout`): the holder of
// the token ends its session. authn cannot tell the two apart (the request says neither); the
// gateway's own audit event, with the same request_id, does.
func (s *Server) EndSession(ctx context.Context, req *authnv1.EndSessionRequest) (*authnv1.EndSessionResponse, error) {
	if s.sessions == nil || req.GetRefreshToken() == "" {
		return &authnv1.EndSessionResponse{}, nil
	}
	st := s.sessions.Store()
	ses, err := st.ByTokenHash(ctx, sessions.HashToken(req.GetRefreshToken()))
	if err == nil {
		err = st.Revoke(ctx, ses.ID)
	}
	switch {
	case errors.Is(err, sessions.ErrNotFound):
		return &authnv1.EndSessionResponse{}, nil
	case err != nil:
		return nil, toStatus(ctx, s.log, storeErr(err))
	}
	s.event(EventRevoked)
	s.audit.InfoContext(ctx, "session revoked", append(sessionAttrs(ses, req.GetRemoteAddr()), "reason", "ended by the refresh token's holder (logout, or a token the gateway could not deliver)")...)
	return &authnv1.EndSessionResponse{}, nil
}

func (s *Server) refresh(ctx context.Context, req *authnv1.RefreshRequest) (identity.Identity, error) {
	refuse := func(reason string, attrs ...any) (identity.Identity, error) {
		attrs = append(attrs, "reason", reason, "service", req.GetService(), "client_id", req.GetClientId(),
			"remote_addr", req.GetRemoteAddr())
		s.audit.InfoContext(ctx, "session refused", attrs...)
		return identity.Identity{}, fmt.Errorf("%w: %s", errRefused, reason)
	}
	if s.sessions == nil || s.resolver == nil {
		return refuse("sessions disabled")
	}
	if req.GetRefreshToken() == "" {
		return refuse("no refresh token")
	}
	ses, err := s.sessions.Lookup(ctx, req.GetRefreshToken(), req.GetService(), req.GetClientId(), req.GetRemoteAddr())
	switch {
	case errors.Is(err, sessions.ErrInvalidToken):
		// Unknown, expired, revoked or for another service: the manager does not say which,
		// and the token itself is never logged.
		s.badToken(ctx, req.GetRemoteAddr())
		return refuse("invalid refresh token")
	case err != nil:
		return identity.Identity{}, storeErr(err)
	}
	id, err := s.resolver.Resolve(ctx, ses.Backend, ses.Subject)
	switch {
	case errors.Is(err, ErrNoMatch):
		return s.endSession(ctx, req, ses, EndedAccountRemoved)
	case errors.Is(err, ErrAccountDisabled):
		return s.endSession(ctx, req, ses, EndedAccountDisabled)
	case err != nil:
		return identity.Identity{}, err
	}
	switch {
	case !ses.FingerprintSet:
		// Issued before sessions recorded fingerprints: adopt the current one, so an upgrade
		// does not log every client out; from now on a change ends the session.
		if err := s.sessions.Store().RecordFingerprint(ctx, ses.ID, id.Fingerprint); err != nil {
			return identity.Identity{}, storeErr(err)
		}
		s.log.DebugContext(ctx, "session fingerprint recorded at its first refresh", "session_id", ses.ID)
	case subtle.ConstantTimeCompare([]byte(ses.Fingerprint), []byte(id.Fingerprint)) != 1:
		return s.endSession(ctx, req, ses, EndedAccountChanged)
	}
	s.audit.InfoContext(ctx, "session refreshed", sessionAttrs(ses, req.GetRemoteAddr())...)
	return id, nil
}

// endSession refuses a refresh whose account changed, was disabled or removed since the
// session was issued, and deletes the session: no later refresh with its token can succeed,
// even if the account comes back, and it leaves `sessions list`. A failed delete is logged;
// the refusal stands, and the next refresh checks again.
func (s *Server) endSession(ctx context.Context, req *authnv1.RefreshRequest, ses sessions.Session, reason string) (identity.Identity, error) {
	if err := s.sessions.Store().Revoke(ctx, ses.ID); err != nil && !errors.Is(err, sessions.ErrNotFound) {
		s.log.WarnContext(ctx, "ending a session failed; its refreshes are still refused", "session_id", ses.ID, "error", err)
	}
	s.ended(reason)
	s.audit.InfoContext(ctx, "session ended", append(sessionAttrs(ses, req.GetRemoteAddr()), "reason", reason,
		"refresh_client_id", req.GetClientId())...)
	return identity.Identity{}, fmt.Errorf("%w: %s", errRefused, reason)
}

// errRefused is any refresh token that does not lead to a current user.
var errRefused = errors.New("authn: refresh refused")

// storeErr makes a session store failure ErrUnavailable, keeping the context's own errors.
func storeErr(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("session store: %w: %w", ErrUnavailable, err)
}

func sessionAttrs(ses sessions.Session, remoteAddr string) []any {
	return []any{"session_id", ses.ID, "subject", ses.Subject, "backend", ses.Backend, "service", ses.Service,
		"client_id", ses.ClientID, "remote_addr", remoteAddr}
}

// toStatus is the one place authn errors become gRPC codes, for both services of this
// package; internal detail stays in the log.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	switch {
	case errors.Is(err, errRefused):
		return status.Error(codes.Unauthenticated, "invalid refresh token")
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrNoMatch):
		return status.Error(codes.Unauthenticated, "invalid credentials")
	case errors.Is(err, sessions.ErrNotFound):
		return status.Error(codes.NotFound, "session not found")
	case errors.Is(err, sessions.ErrBadPageToken):
		return status.Error(codes.InvalidArgument, "invalid page token")
	case errors.Is(err, errInvalidArgument):
		var ia invalidArgument
		errors.As(err, &ia)
		return status.Error(codes.InvalidArgument, ia.msg)
	case errors.Is(err, ErrLocked):
		// The lockout already wrote the audit event. The message is the same whether the
		// account exists or not; when to retry travels as RetryInfo (the gateway's Retry-After).
		return LockedStatus(err)
	case errors.Is(err, ErrUnsupported):
		// The chain turns a backend's ErrUnsupported into ErrNoMatch; one that escapes is a
		// caller asking for something this backend cannot do.
		return status.Error(codes.FailedPrecondition, "not supported by this authentication backend")
	case errors.Is(err, ErrBusy):
		// Not logged per request: under a flood that would be a second sink. Limiter metrics count it.
		return status.Error(codes.ResourceExhausted, "too many authentication requests; retry later")
	case errors.Is(err, ErrUnavailable):
		log.WarnContext(ctx, "authn backend unavailable", "error", err)
		return status.Error(codes.Unavailable, "authentication backend unavailable")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "authentication timed out")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	default:
		log.ErrorContext(ctx, "authn failed", "error", err)
		return status.Error(codes.Internal, "internal error")
	}
}

// LockedStatus (for every service that signs people in with the lockout-guarded chain) is
// ResourceExhausted with ErrorInfo (LockedReason), which tells it from ErrBusy,
// and RetryInfo with the time left (at least a second).
func LockedStatus(err error) error {
	retry := time.Second
	var le *LockedError
	if errors.As(err, &le) && le.RetryAfter > retry {
		retry = le.RetryAfter
	}
	st := status.New(codes.ResourceExhausted, "too many failed login attempts; retry later")
	if d, derr := st.WithDetails(
		&errdetails.ErrorInfo{Reason: LockedReason, Domain: ErrorDomain},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)},
	); derr == nil {
		st = d
	}
	return st.Err()
}

// errInvalidArgument marks a request the admin API refuses as malformed; its message is
// written for the caller and safe to return.
var errInvalidArgument = errors.New("authn: invalid argument")

type invalidArgument struct{ msg string }

func (e invalidArgument) Error() string        { return e.msg }
func (e invalidArgument) Is(target error) bool { return target == errInvalidArgument }
