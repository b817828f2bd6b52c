// Package account is a person's own account as the gateway's pages show it: signing in (with
// the company IdP through package sso, or with a password of a password backend), the web
// session that follows, the person's registry sessions and personal access tokens, approving
// a `portcullis login` device flow, and the IdP's back-channel logout. The gateway only
// translates; every decision is made here, behind authnv1.AccountService.
//
// A web session is re-checked on every call: its person is re-read in the backend that
// vouched for them (for the IdP: the ssoaccounts directory, which revalidates), and a
// changed credential fingerprint, a disabled or removed account ends it.
package account

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/internal/secret"
	"github.com/portcullis-dev/portcullis/services/authn/internal/textlimit"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

// TokenPrefix starts every web session token, so secret scanners recognize a leaked one.
const TokenPrefix = "pcw_"

// ClientID is the client_id the password sign-in presents to the chain (and its lockout).
const ClientID = "portcullis-web"

// DefaultWebSessionTTL is how long a web session lives when Options.WebSessionTTL is 0.
const DefaultWebSessionTTL = 12 * time.Hour

const tokenBytes = 32

// Directory is what the account needs of the people known through the IdP
// (*ssoaccounts.Directory): recording a sign-in, and finding whom a logout token names.
type Directory interface {
	SignedIn(ctx context.Context, in *sso.SignIn) (identity.Identity, error)
	Logout(ctx context.Context, l *sso.Logout, sidSubjects func(ctx context.Context, sid string) ([]string, error)) ([]string, error)
}

// Options are the Server's parts.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// WebSessions keeps the web sessions. Required.
	WebSessions websessions.Store
	// Sessions are the registry sessions (refresh tokens). Required.
	Sessions *sessions.Manager
	// PATs are the personal access tokens; nil: sso.pat.enabled is off.
	PATs *pats.Manager
	// PATMaxTTL is sso.pat.max_ttl, shown on the pages.
	PATMaxTTL time.Duration
	// Devices are the device flows `portcullis login` starts; nil: none.
	Devices DeviceFlows
	// Password is the lockout-guarded chain logins use: a password sign-in is a login.
	Password authn.Authenticator
	// Resolver re-reads the person behind a web session (the chain itself, not a cache).
	Resolver *authn.Chain
	// SSO is the company IdP; nil: no sso: section, only password sign-ins.
	SSO *sso.Provider
	// Directory records the people who sign in with the IdP. Required with SSO.
	Directory Directory
	// SSOBackend is the chain's name of the sso backend; default sso.Backend.
	SSOBackend string
	// SessionEvent is called with authn.EventRevoked for each registry session this service
	// ends (metrics hook in here); nil: nothing.
	SessionEvent func(event string)
	// WebSessionTTL is a web session's lifetime (default 12h); for the IdP's people at most
	// sso.session_max_ttl.
	WebSessionTTL time.Duration
}

// Server implements authnv1.AccountServiceServer.
type Server struct {
	authnv1.UnimplementedAccountServiceServer
	o     Options
	log   *slog.Logger
	audit *slog.Logger

	mu     sync.Mutex
	lastGC time.Time
}

// gcInterval is how often a sign-in deletes expired web sessions; each one is refused by its
// ExpiresAt anyway, the sweep only keeps the table small.
const gcInterval = time.Hour

var _ authnv1.AccountServiceServer = (*Server)(nil)

// NewServer returns the account service over o.
func NewServer(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.WebSessionTTL <= 0 {
		o.WebSessionTTL = DefaultWebSessionTTL
	}
	if o.SSOBackend == "" {
		o.SSOBackend = sso.Backend
	}
	if o.SessionEvent == nil {
		o.SessionEvent = func(string) {}
	}
	if o.PATs != nil && o.PATMaxTTL <= 0 {
		o.PATMaxTTL = o.PATs.MaxTTL()
	}
	return &Server{o: o, log: o.Logger, audit: o.Logger.With("log_type", "audit")}
}

func (s *Server) now() time.Time { return s.o.Now().UTC().Truncate(time.Microsecond) }

// Errors of this package; toStatus maps them.
var (
	// errNotSignedIn: no live web session for the token, or its person changed or ended.
	errNotSignedIn = errors.New("account: not signed in")
	// errNoSSO: an IdP call without an sso: section.
	errNoSSO = errors.New("account: no identity provider is configured")
	// errNoPATs: a token call without sso.pat.enabled.
	errNoPATs = errors.New("account: personal access tokens are off")
	// errBadSignIn: a sign-in flow, state, code or ID token that does not hold.
	errBadSignIn = errors.New("account: sign-in failed")
	// errRefused: a valid IdP sign-in of a person who may not sign in here.
	errRefused = errors.New("account: not allowed to sign in")
	// errBadCredentials: a password sign-in refused, whatever the reason (wrong password,
	// a robot, a token).
	errBadCredentials = errors.New("account: invalid credentials")
	// errBadLogoutToken: a back-channel logout token that does not verify.
	errBadLogoutToken = errors.New("account: invalid logout token")
	// errNotFound: a session or token that is not the person's own, or none.
	errNotFound = errors.New("account: not found")
	// errStore: a store failure (detail in the log only).
	errStore = errors.New("account: store unavailable")
)

type invalidArgument struct{ msg string }

func (e *invalidArgument) Error() string { return e.msg }

func newToken() (token string, hash [32]byte) {
	token, _ = secret.New(TokenPrefix, tokenBytes) // crypto/rand never fails (Go 1.24+)
	return token, websessions.HashToken(token)
}

func newID() string {
	id, _ := secret.New("wss_", 16)
	return id
}

// wellFormed checks a token's shape before any store read.
func wellFormed(token string) bool { return secret.WellFormed(token, TokenPrefix, tokenBytes) }

// startWebSession stores a new web session of id and returns its token.
func (s *Server) startWebSession(ctx context.Context, id identity.Identity, idpSID, remoteAddr, userAgent string, ttl time.Duration) (string, websessions.Session, error) {
	token, h := newToken()
	now := s.now()
	ws := websessions.Session{
		ID: newID(), TokenHash: h, Subject: id.Subject, Backend: id.Backend, Fingerprint: id.Fingerprint,
		IDPSessionID: idpSID, RemoteAddr: remoteAddr, UserAgent: textlimit.Truncate(userAgent, 512),
		CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := s.o.WebSessions.Create(ctx, ws); err != nil {
		return "", websessions.Session{}, storeErr("creating a web session", err)
	}
	s.gc(ctx, now)
	return token, ws, nil
}

// gc deletes expired web sessions at most once per gcInterval.
func (s *Server) gc(ctx context.Context, now time.Time) {
	s.mu.Lock()
	due := now.Sub(s.lastGC) >= gcInterval
	if due {
		s.lastGC = now
	}
	s.mu.Unlock()
	if !due {
		return
	}
	if n, err := s.o.WebSessions.DeleteExpired(context.WithoutCancel(ctx), now); err != nil {
		s.log.WarnContext(ctx, "deleting expired web sessions failed", "error", err)
	} else if n > 0 {
		s.log.InfoContext(ctx, "deleted expired web sessions", "count", n)
	}
}

// signedIn is the web session of token and its person as the backend knows them now. A
// session that expired, or whose account ended or changed credential, is deleted.
func (s *Server) signedIn(ctx context.Context, token string) (websessions.Session, identity.Identity, error) {
	if !wellFormed(token) {
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	}
	h := websessions.HashToken(token)
	ws, err := s.o.WebSessions.ByTokenHash(ctx, h)
	switch {
	case errors.Is(err, websessions.ErrNotFound):
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	case err != nil:
		return websessions.Session{}, identity.Identity{}, storeErr("reading a web session", err)
	}
	// Found by an index on the hash; comparing again keeps a store bug from accepting another.
	if subtle.ConstantTimeCompare(ws.TokenHash[:], h[:]) != 1 {
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	}
	if !s.now().Before(ws.ExpiresAt) {
		s.end(ctx, ws, "expired")
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	}
	id, err := s.o.Resolver.Resolve(ctx, ws.Backend, ws.Subject)
	switch {
	case errors.Is(err, authn.ErrNoMatch):
		s.end(ctx, ws, authn.EndedAccountRemoved)
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	case errors.Is(err, authn.ErrAccountDisabled), errors.Is(err, sso.ErrAccountEnded):
		s.end(ctx, ws, authn.EndedAccountDisabled)
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	case err != nil:
		// Cannot tell now (a directory down): refuse this call, keep the session.
		return websessions.Session{}, identity.Identity{}, err
	}
	if id.Subject != ws.Subject || subtle.ConstantTimeCompare([]byte(id.Fingerprint), []byte(ws.Fingerprint)) != 1 {
		s.end(ctx, ws, authn.EndedAccountChanged)
		return websessions.Session{}, identity.Identity{}, errNotSignedIn
	}
	return ws, id, nil
}

// end deletes a web session that can no longer be used; a failure is logged, the refusal
// stands either way.
func (s *Server) end(ctx context.Context, ws websessions.Session, reason string) {
	if err := s.o.WebSessions.Delete(context.WithoutCancel(ctx), ws.ID); err != nil && !errors.Is(err, websessions.ErrNotFound) {
		s.log.WarnContext(ctx, "deleting an ended web session failed", "web_session_id", ws.ID, "error", err)
	}
	if reason != "expired" {
		s.audit.InfoContext(ctx, "web session ended", "web_session_id", ws.ID, "subject", ws.Subject,
			"backend", ws.Backend, "reason", reason)
	}
}

// storeErr keeps the context's own errors and makes anything else errStore, logged.
func storeErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", errStore, what, err)
}
