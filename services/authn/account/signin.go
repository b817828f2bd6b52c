package account

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
)

// flowTTL is how long a sign-in may take at the IdP.
const flowTTL = 10 * time.Minute

// flowLabel is what a sealed flow is bound to (sso.Sealer's associated data): it holds ':',
// which no subject of the IdP can (sso refuses them), so a sealed refresh token never opens
// as a flow nor a flow as a refresh token.
const flowLabel = "account:signin-flow:v1"

// flow is what BeginSignIn hands the browser, sealed, and CompleteSignIn takes back.
type flow struct {
	sso.AuthRequest
	ReturnTo    string `json:"return_to"`
	RedirectURI string `json:"redirect_uri"`
	Expires     int64  `json:"exp"` // unix seconds
}

// BeginSignIn implements authnv1.AccountServiceServer.
func (s *Server) BeginSignIn(ctx context.Context, req *authnv1.BeginSignInRequest) (*authnv1.BeginSignInResponse, error) {
	if s.o.SSO == nil {
		return nil, s.toStatus(ctx, errNoSSO)
	}
	f := flow{AuthRequest: sso.NewAuthRequest(), ReturnTo: localPath(req.GetReturnTo()), Expires: s.now().Add(flowTTL).Unix()}
	u, err := s.o.SSO.AuthCodeURL(ctx, f.AuthRequest, nil)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// The provider sends its own redirect_uri (gateway.public_url + the callback path); a
	// gateway that thinks it is elsewhere would never see the callback.
	if pu, perr := url.Parse(u); perr == nil {
		f.RedirectURI = pu.Query().Get("redirect_uri")
	}
	if req.GetRedirectUri() != "" && req.GetRedirectUri() != f.RedirectURI {
		return nil, s.toStatus(ctx, &invalidArgument{"redirect_uri is not the callback registered at the identity provider"})
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	sealed := s.o.SSO.Sealer().Seal(flowLabel, string(b))
	return &authnv1.BeginSignInResponse{AuthorizationUrl: u, Flow: base64.RawURLEncoding.EncodeToString(sealed)}, nil
}

// openFlow reads a sealed flow; anything that does not open, or has expired, is errBadSignIn.
func (s *Server) openFlow(raw string) (flow, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(raw) > 8<<10 {
		return flow{}, fmt.Errorf("%w: malformed flow", errBadSignIn)
	}
	js, err := s.o.SSO.Sealer().Open(flowLabel, sealed)
	if err != nil {
		return flow{}, fmt.Errorf("%w: flow does not open", errBadSignIn)
	}
	var f flow
	if err := json.Unmarshal([]byte(js), &f); err != nil {
		return flow{}, fmt.Errorf("%w: malformed flow", errBadSignIn)
	}
	if !s.now().Before(time.Unix(f.Expires, 0)) {
		return flow{}, fmt.Errorf("%w: flow expired", errBadSignIn)
	}
	return f, nil
}

// CompleteSignIn implements authnv1.AccountServiceServer.
func (s *Server) CompleteSignIn(ctx context.Context, req *authnv1.CompleteSignInRequest) (*authnv1.CompleteSignInResponse, error) {
	if s.o.SSO == nil {
		return nil, s.toStatus(ctx, errNoSSO)
	}
	f, err := s.openFlow(req.GetFlow())
	if err == nil && f.RedirectURI != req.GetRedirectUri() {
		err = fmt.Errorf("%w: redirect_uri is not the flow's", errBadSignIn)
	}
	if err == nil {
		if err = f.CheckState(req.GetState()); err != nil {
			err = fmt.Errorf("%w: %w", errBadSignIn, err)
		}
	}
	var in *sso.SignIn
	if err == nil {
		in, err = s.o.SSO.Exchange(ctx, req.GetCode(), f.AuthRequest)
		switch {
		case errors.Is(err, sso.ErrNotAllowed):
			err = fmt.Errorf("%w: %w", errRefused, err)
		case errors.Is(err, sso.ErrExchange), errors.Is(err, sso.ErrInvalidToken):
			err = fmt.Errorf("%w: %w", errBadSignIn, err)
		}
	}
	var id identity.Identity
	if err == nil {
		// Belt and braces: sso's mapping refuses such subjects already, and one here could pass
		// for a robot's or another namespace's.
		if identity.CheckBareName(in.Identity.Subject) != nil || in.Identity.Subject == "" {
			err = fmt.Errorf("%w: subject holds ':'", errRefused)
		} else if id, err = s.o.Directory.SignedIn(ctx, in); err == nil && id.Subject != in.Identity.Subject {
			err = fmt.Errorf("%w: the directory answered another subject", errRefused)
		}
	}
	if err != nil {
		s.auditSignIn(ctx, "sso", id, req.GetRemoteAddr(), err)
		return nil, s.toStatus(ctx, err)
	}
	id.Backend = s.o.SSOBackend
	ttl := min(s.o.WebSessionTTL, s.o.SSO.Config().SessionMaxTTL.D())
	token, ws, err := s.startWebSession(ctx, id, in.SessionID, req.GetRemoteAddr(), req.GetUserAgent(), ttl)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.auditSignIn(ctx, "sso", id, req.GetRemoteAddr(), nil, "web_session_id", ws.ID)
	return &authnv1.CompleteSignInResponse{WebSessionToken: token, ExpiresAt: timestamppb.New(ws.ExpiresAt),
		ReturnTo: f.ReturnTo}, nil
}

// PasswordSignIn implements authnv1.AccountServiceServer.
func (s *Server) PasswordSignIn(ctx context.Context, req *authnv1.PasswordSignInRequest) (*authnv1.PasswordSignInResponse, error) {
	id, err := s.passwordSignIn(ctx, req)
	if err != nil {
		s.auditSignIn(ctx, "password", id, req.GetRemoteAddr(), err, "username", req.GetUsername())
		return nil, s.toStatus(ctx, err)
	}
	token, ws, err := s.startWebSession(ctx, id, "", req.GetRemoteAddr(), req.GetUserAgent(), s.o.WebSessionTTL)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.auditSignIn(ctx, "password", id, req.GetRemoteAddr(), nil, "username", req.GetUsername(), "web_session_id", ws.ID)
	return &authnv1.PasswordSignInResponse{WebSessionToken: token, ExpiresAt: timestamppb.New(ws.ExpiresAt)}, nil
}

func (s *Server) passwordSignIn(ctx context.Context, req *authnv1.PasswordSignInRequest) (identity.Identity, error) {
	if req.GetUsername() == "" || req.GetPassword() == "" || identity.CheckBareName(req.GetUsername()) != nil {
		return identity.Identity{}, fmt.Errorf("%w: no user name, no password, or a name with ':'", errBadCredentials)
	}
	id, err := s.o.Password.Authenticate(ctx, authn.Credentials{Username: req.GetUsername(),
		Password: authn.Password(req.GetPassword()), ClientID: ClientID, RemoteAddr: req.GetRemoteAddr()})
	if err != nil {
		return identity.Identity{}, err
	}
	// Only a person of a password backend whose account can be re-read: a robot key, a
	// personal access token or a workload JWT in the password field is refused as a wrong
	// password, and so is anything that could not be re-checked at every page.
	if id.Anonymous || !id.ValidUntil.IsZero() || id.Backend == pats.Backend || id.Backend == s.o.SSOBackend ||
		strings.HasPrefix(id.Subject, identity.RobotPrefix) || strings.HasPrefix(id.Subject, identity.SystemPrefix) ||
		!s.o.Resolver.PersonBackend(id.Backend) {
		return identity.Identity{}, fmt.Errorf("%w: backend %q cannot sign in to the pages", errBadCredentials, id.Backend)
	}
	return id, nil
}

// auditSignIn writes the one audit event of a sign-in. Never a password, code or token.
func (s *Server) auditSignIn(ctx context.Context, method string, id identity.Identity, remoteAddr string, err error, extra ...any) {
	result := "success"
	if err != nil {
		result = "failure"
		if errors.Is(err, authn.ErrLocked) {
			result = "refused"
		}
	}
	attrs := append([]any{"result", result, "method", method, "subject", id.Subject, "backend", id.Backend,
		"remote_addr", remoteAddr}, extra...)
	if err != nil {
		attrs = append(attrs, "reason", reason(err))
	}
	s.audit.InfoContext(ctx, "signed in", attrs...)
}

// reason is a short code for why a sign-in failed, safe to log.
func reason(err error) string {
	switch {
	case errors.Is(err, authn.ErrLocked):
		return "locked"
	case errors.Is(err, errBadCredentials), errors.Is(err, authn.ErrInvalidCredentials), errors.Is(err, authn.ErrNoMatch):
		return "invalid_credentials"
	case errors.Is(err, errRefused):
		return "not_allowed"
	case errors.Is(err, errBadSignIn):
		return "bad_flow_state_or_code"
	case errors.Is(err, authn.ErrUnavailable), errors.Is(err, sso.ErrUnavailable), errors.Is(err, ssoaccounts.ErrUnavailable),
		errors.Is(err, errStore):
		return "unavailable"
	default:
		return "error"
	}
}

// localPath is return_to if it is a path of the gateway's own ("/…", not "//host"), else "/".
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\x00\r\n\t") || len(p) > 2048 {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return p
}
