package gateway

import (
	"context"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/pbconv"
	"github.com/portcullis-dev/portcullis/internal/randid"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// AnonymousSubject is the sub claim of tokens issued to callers who sent no credentials.
const AnonymousSubject = identity.AnonymousSubject

// refreshTokenPrefix starts every refresh token authn issues (services/authn/sessions). The
// gateway only uses it to tell a refresh token sent as a Basic password from a password, and
// to refuse what cannot be one without a backend call; authn decides whether it is valid.
const refreshTokenPrefix = "pcr_"

// refreshTokenUser is the Basic username some clients send with an identity token.
const refreshTokenUser = "<token>"

// Grant types as audit events name them.
const (
	grantAnonymous = "anonymous"
	grantPassword  = "password"
	grantRefresh   = "refresh_token"
	grantExchange  = "token_exchange" // RFC 8693's grant, GrantTypeTokenExchange
)

// tokenRequest is a token request after parsing, whichever form it came in.
type tokenRequest struct {
	service   string
	scopes    []scope.Scope
	grantType string // grantAnonymous, grantPassword, grantRefresh, grantExchange or grantDevice
	username  string
	password  string
	// subjectToken is the subject_token of a token exchange: a secret, never logged.
	subjectToken string
	hasCreds     bool
	offline      bool   // the client asked for a refresh token
	refresh      string // the refresh token of a refresh grant: a secret, never logged
	deviceCode   string // the device_code of a device grant: a secret, never logged
	clientID     string
	remoteAddr   string // the client's, behind trusted proxies (see remoteAddr)
}

type issued struct {
	token      string
	issuedAt   time.Time
	expiresIn  int64
	granted    []scope.Scope
	jti        string
	subject    string
	decisionID string
	// refreshToken goes into the answer: the one authn issued for an offline request, or the
	// client's own on a refresh grant (never rotated: docker keeps the first one it got).
	refreshToken string
}

// handleToken serves the Docker token protocol: GET /token?service=…&scope=…, HTTP Basic.
func (g *Gateway) handleToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if len(r.URL.RawQuery) > g.opt.MaxQueryBytes {
		g.finish(w, r, start, nil, badRequest("invalid_request", "query string too long"), nil)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		g.finish(w, r, start, nil, badRequest("invalid_request", "malformed query string"), nil)
		return
	}
	req := &tokenRequest{clientID: q.Get("client_id"), grantType: grantAnonymous}
	req.remoteAddr, _ = g.remoteAddr(r)
	if h := r.Header.Get("Authorization"); h != "" {
		req.grantType, req.hasCreds = grantPassword, true // until the credentials say otherwise
		user, pass, ok := r.BasicAuth()
		if !ok {
			g.finish(w, r, start, req, unauthorized("the Authorization header must use HTTP Basic credentials"), nil)
			return
		}
		switch {
		case (user == "" || user == refreshTokenUser) && strings.HasPrefix(pass, refreshTokenPrefix):
			// containerd's fallback after a failed POST refresh: Basic "" / refresh token.
			req.grantType, req.refresh = grantRefresh, pass
		case user == "":
			// Wrong credentials, like any unknown user: the client should ask for others.
			// Checked before the account parameter, which would call it a bad request.
			g.finish(w, r, start, req, unauthorized("invalid username or password"), nil)
			return
		default:
			req.username, req.password = user, pass
		}
	}
	if !req.hasCreds && g.opt.RefuseAnonymous {
		// docker_auth's answer to a caller without credentials when its users lack "": the
		// client should ask for credentials (docker login). Nothing is asked of a backend.
		g.finish(w, r, start, req, unauthorized("credentials required: anonymous requests are not allowed"), nil)
		return
	}
	// A refresh grant names no user (the session does), so account cannot be compared.
	if acct := q.Get("account"); acct != "" && req.grantType != grantRefresh && (!req.hasCreds || acct != req.username) {
		g.finish(w, r, start, req, badRequest("invalid_request", "account does not match the authenticated user"), nil)
		return
	}
	// docker login sends offline_token=true; anonymous callers get no session whatever they ask.
	req.offline = req.grantType == grantPassword && strings.EqualFold(q.Get("offline_token"), "true")
	if e := g.parseCommon(req, q["service"], q["scope"]); e != nil {
		g.finish(w, r, start, req, e, nil)
		return
	}
	out, e := g.issue(r.Context(), req)
	if e != nil {
		if e.status == http.StatusUnauthorized && req.grantType == grantRefresh {
			e.description = "invalid, expired or revoked refresh token"
		}
		g.finish(w, r, start, req, e, nil)
		return
	}
	g.finish(w, r, start, req, nil, out)
	writeJSON(w, http.StatusOK, tokenAnswer{
		AccessToken: out.token, ExpiresIn: out.expiresIn, IssuedAt: out.issuedAt.UTC().Format(time.RFC3339),
		RefreshToken: out.refreshToken, Token: out.token,
	})
}

// tokenAnswer is the token endpoint's answer. Its fields are in the order of their names,
// as encoding/json writes a map's keys, so the bytes are those of the map it replaces.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int64  `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Token        string `json:"token"`
}

// oauthSingleParams may each appear once in an OAuth2 request (RFC 6749 §3.1).
var oauthSingleParams = []string{"grant_type", "client_id", "service", "scope", "username", "password", "refresh_token", "access_type",
	"subject_token", "subject_token_type", "requested_token_type", "actor_token", "actor_token_type", "device_code"}

// readForm reads an OAuth2 form body (RFC 6749 §4.3.2/§6) into r.PostForm, bounded by
// gateway.max_query_bytes. Anything but a form would parse as an empty form and be refused for
// a reason the client did not cause. Parameters (charset) are allowed: containerd sends
// "; charset=utf-8".
func (g *Gateway) readForm(w http.ResponseWriter, r *http.Request) *apiError {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return badRequest("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, int64(g.opt.MaxQueryBytes))
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badRequest("invalid_request", "request body too long")
		}
		return badRequest("invalid_request", "malformed form body")
	}
	return nil
}

// onceEach refuses a form that repeats one of params (RFC 6749 §3.1: a parameter is sent at
// most once): which value counts would be the server's guess.
func onceEach(f url.Values, params []string) *apiError {
	for _, p := range params {
		if len(f[p]) > 1 {
			return badRequest("invalid_request", p+" must be given once")
		}
	}
	return nil
}

// handleOAuthToken serves the OAuth2 form of the token endpoint (distribution's oauth.md):
// the password grant (access_type=offline asks for a refresh token) and the refresh grant.
func (g *Gateway) handleOAuthToken(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := g.readForm(w, r); e != nil {
		g.finish(w, r, start, nil, e, nil)
		return
	}
	f := r.PostForm
	req := &tokenRequest{clientID: f.Get("client_id")}
	req.remoteAddr, _ = g.remoteAddr(r)
	if e := onceEach(f, oauthSingleParams); e != nil {
		g.finish(w, r, start, req, e, nil)
		return
	}
	switch gt := f.Get("grant_type"); gt {
	case "password":
		req.grantType = grantPassword
		req.username, req.password, req.hasCreds = f.Get("username"), f.Get("password"), true
		if req.username == "" {
			g.finish(w, r, start, req, badRequest("invalid_request", "username is required for the password grant"), nil)
			return
		}
		// Basic cannot carry a ':' in the user name; the form can. Such a name could pass for
		// a namespaced subject (robot:ci, system:anonymous) and no backend holds one.
		if identity.CheckBareName(req.username) != nil {
			g.finish(w, r, start, req, badRequest("invalid_request", `username must not contain ":"`), nil)
			return
		}
		switch at := f.Get("access_type"); at {
		case "offline":
			req.offline = true
		case "", "online":
		default:
			g.finish(w, r, start, req, badRequest("invalid_request", "access_type must be offline or online, not "+quoteShort(at)), nil)
			return
		}
	case "refresh_token":
		req.grantType, req.refresh, req.hasCreds = grantRefresh, f.Get("refresh_token"), true
		if req.refresh == "" {
			g.finish(w, r, start, req, badRequest("invalid_request", "refresh_token is required for the refresh_token grant"), nil)
			return
		}
	case GrantTypeDeviceCode:
		g.handleDeviceToken(w, r, start, req, f)
		return
	case GrantTypeTokenExchange:
		// No client_id needed: the subject token names the caller, and no session is made.
		g.handleTokenExchange(w, r, start, req, f)
		return
	case "":
		g.finish(w, r, start, req, badRequest("invalid_request", "grant_type is required"), nil)
		return
	default:
		g.finish(w, r, start, req, badRequest("unsupported_grant_type", "unsupported grant_type "+quoteShort(gt)), nil)
		return
	}
	if req.clientID == "" {
		g.finish(w, r, start, req, badRequest("invalid_request", "client_id is required"), nil)
		return
	}
	if e := g.parseCommon(req, f["service"], f["scope"]); e != nil {
		g.finish(w, r, start, req, e, nil)
		return
	}
	if req.grantType == grantRefresh && !strings.HasPrefix(req.refresh, refreshTokenPrefix) {
		// Not a token authn issues: no need to ask it.
		g.finish(w, r, start, req, invalidGrant(req), nil)
		return
	}
	out, e := g.issue(r.Context(), req)
	if e != nil {
		e = e.oauth(req) // RFC 6749 §5.2: bad credentials or refresh token, a locked-out caller
		g.finish(w, r, start, req, e, nil)
		return
	}
	g.finish(w, r, start, req, nil, out)
	writeJSON(w, http.StatusOK, oauthAnswer(out))
}

// oauthAnswer is the OAuth2 token endpoint's answer (RFC 6749 §5.1), with docker's token and
// issued_at beside access_token and expires_in.
func oauthAnswer(out *issued) map[string]any {
	answer := map[string]any{
		"access_token": out.token, "token": out.token, "token_type": "Bearer",
		"expires_in": out.expiresIn, "issued_at": out.issuedAt.UTC().Format(time.RFC3339),
		"scope": strings.Join(scopeStrings(out.granted), " "),
	}
	if out.refreshToken != "" {
		answer["refresh_token"] = out.refreshToken
	}
	return answer
}

// invalidGrant is RFC 6749's answer to credentials or a refresh token that are not good.
func invalidGrant(req *tokenRequest) *apiError {
	desc := "invalid username or password"
	switch req.grantType {
	case grantRefresh:
		desc = "invalid, expired or revoked refresh token"
	case grantExchange:
		desc = "invalid, expired or untrusted subject_token"
	case grantDevice:
		desc = "invalid, spent or unknown device code"
	}
	return badRequest("invalid_grant", desc)
}

// parseCommon checks the service and scope parameters both forms share.
func (g *Gateway) parseCommon(req *tokenRequest, services, scopes []string) *apiError {
	switch {
	case len(services) == 0 || services[0] == "":
		return badRequest("invalid_request", "service is required")
	case len(services) > 1:
		return badRequest("invalid_request", "service must be given once")
	case !slices.Contains(g.opt.Services, services[0]):
		return badRequest("invalid_request", "unknown service "+quoteShort(services[0]))
	}
	req.service = services[0]
	ss, err := scope.ParseList(scopes)
	if err != nil {
		return badRequest("invalid_scope", err.Error())
	}
	req.scopes = ss
	return nil
}

// issue runs the decision: authn (unless anonymous), authz, signer — each a gRPC call.
func (g *Gateway) issue(ctx context.Context, req *tokenRequest) (out *issued, _ *apiError) {
	ctx, cancel := context.WithTimeout(ctx, g.opt.BackendTimeout)
	defer cancel()
	id, refreshToken := identity.Anon(), ""
	switch {
	case req.grantType == grantRefresh:
		// authn re-reads the identity from the backend that issued the session; the token is
		// bound to its service there, so a token of another service is Unauthenticated.
		resp, err := g.c.Authn.Refresh(ctx, &authnv1.RefreshRequest{
			RefreshToken: req.refresh, Service: req.service, ClientId: req.clientID, RemoteAddr: req.remoteAddr,
		})
		if err != nil {
			return nil, g.fromGRPC(ctx, "authn", err)
		}
		id, refreshToken = pbconv.IdentityFromPB(resp.GetIdentity()), req.refresh
	case req.grantType == grantDevice:
		// The approved flow names the service and scopes; the session is the approver's.
		resp, e := g.pollDevice(ctx, req)
		if e != nil {
			return nil, e
		}
		id, refreshToken = pbconv.IdentityFromPB(resp.GetIdentity()), resp.GetRefreshToken()
	case req.hasCreds:
		resp, err := g.c.Authn.Authenticate(ctx, &authnv1.AuthenticateRequest{
			Username: req.username, Password: req.password, SubjectToken: req.subjectToken, Service: req.service,
			ClientId: req.clientID, RemoteAddr: req.remoteAddr, Offline: req.offline,
		})
		if err != nil {
			return nil, g.fromGRPC(ctx, "authn", err)
		}
		id, refreshToken = pbconv.IdentityFromPB(resp.GetIdentity()), resp.GetRefreshToken()
	}
	if refreshToken != "" && req.grantType != grantRefresh {
		// A new session: until the answer carries its token, nobody holds it. End it if the
		// request fails from here on.
		defer func() {
			if out == nil {
				g.endSession(ctx, refreshToken, req.remoteAddr)
			}
		}()
	}
	granted, decisionID := []scope.Scope{}, ""
	if len(req.scopes) > 0 {
		resp, err := g.c.Authz.Authorize(ctx, &authzv1.AuthorizeRequest{
			Identity: pbconv.IdentityToPB(id), Service: req.service, Requested: pbconv.ScopesToPB(req.scopes),
			RemoteAddr: req.remoteAddr, ClientId: req.clientID,
		})
		if err != nil {
			return nil, g.fromGRPC(ctx, "authz", err)
		}
		granted, decisionID = pbconv.ScopesFromPB(resp.GetGranted()), resp.GetDecisionId()
	}
	// The token's jti is the policy decision's id, so a token found in a registry's log
	// leads to the decision log entry that granted it. A request without scopes has no
	// decision; an id of another shape is not trusted to be unique.
	jti := decisionID
	if !isDecisionID(jti) {
		jti = randid.Hex(16)
	}
	subject := id.Subject
	if id.Anonymous {
		// The signer refuses access without a subject; a policy may still grant anonymous
		// pulls. No bare subject contains ':' and no backend may take the prefix system:
		// (identity.CheckSubjectPrefix), so this is no user's name.
		subject = AnonymousSubject
	}
	resp, err := g.c.Signer.SignToken(ctx, &signerv1.SignTokenRequest{
		Subject: subject, Audience: req.service, Access: pbconv.ScopesToPB(granted),
		Ttl: durationpb.New(g.opt.TokenTTL), Jti: jti,
	})
	if err != nil {
		return nil, g.fromGRPC(ctx, "signer", err)
	}
	iat := resp.GetIssuedAt().AsTime()
	return &issued{
		token: resp.GetToken(), issuedAt: iat, granted: granted, jti: jti, subject: subject, decisionID: decisionID,
		refreshToken: refreshToken,
		expiresIn:    int64(resp.GetExpiresAt().AsTime().Sub(iat) / time.Second),
	}, nil
}

// endSession ends the session of an undelivered refresh token. The request's own deadline
// may be what failed it, so the call gets a fresh one; a failure is only logged: the session
// then expires unused (its token was never given out).
func (g *Gateway) endSession(ctx context.Context, refreshToken, remoteAddr string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.opt.BackendTimeout)
	defer cancel()
	if _, err := g.c.Authn.EndSession(ctx, &authnv1.EndSessionRequest{RefreshToken: refreshToken, RemoteAddr: remoteAddr}); err != nil {
		g.log.WarnContext(ctx, "could not end the session of an undelivered refresh token", "code", status.Code(err).String())
	}
}

// finish records the outcome: metrics, and one audit event per token decision. It never
// logs a password or a token, access or refresh. On error it writes the error answer.
func (g *Gateway) finish(w http.ResponseWriter, r *http.Request, start time.Time, req *tokenRequest, e *apiError, out *issued) {
	outcome := "issued"
	if e != nil {
		outcome = outcomeOf(e)
	}
	g.metrics.tokens.WithLabelValues(outcome).Inc()
	g.metrics.latency.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	client, peer := g.remoteAddr(r)
	// Typed attributes, room for all of them: the line is written on every request.
	attrs := make([]slog.Attr, 0, 22)
	attrs = append(attrs, slog.String("outcome", outcome), slog.String("method", r.Method), slog.String("remote_addr", client),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	if peer != client {
		attrs = append(attrs, slog.String("proxy_addr", peer))
	}
	if req != nil {
		attrs = append(attrs, slog.String("grant_type", req.grantType), slog.String("username", req.username), slog.Bool("anonymous", !req.hasCreds),
			slog.Bool("offline", req.offline), slog.String("client_id", req.clientID), slog.String("service", req.service), slog.Any("requested", scopeStrings(req.scopes)))
	}
	if out != nil {
		// The identity's subject, which a backend may spell differently from the login name.
		attrs = append(attrs, slog.String("subject", out.subject), slog.Any("granted", scopeStrings(out.granted)), slog.String("jti", out.jti), slog.String("decision_id", out.decisionID),
			// Whether this answer started a session; the token itself is never logged.
			slog.Bool("session_issued", out.refreshToken != "" && req.grantType != grantRefresh))
	}
	if e != nil {
		attrs = append(attrs, slog.Int("status", e.status), slog.String("error", e.code))
		g.writeError(w, e)
	}
	g.audit.LogAttrs(r.Context(), slog.LevelInfo, "token decision", attrs...)
}

// auditHead is how the audit event of a form endpoint beside the token decision starts: its
// outcome, the caller's address (and its proxy's when one was trusted) and the time taken.
func (g *Gateway) auditHead(r *http.Request, start time.Time, outcome string) []any {
	client, peer := g.remoteAddr(r)
	attrs := []any{"outcome", outcome, "remote_addr", client, "duration_ms", float64(time.Since(start).Microseconds()) / 1000}
	if peer != client {
		attrs = append(attrs, "proxy_addr", peer)
	}
	return attrs
}

// outcomeOf is the metrics and audit outcome of an error answer.
func outcomeOf(e *apiError) string {
	switch {
	case e.retryAfter > 0: // refused unchecked after too many failed logins
		return "locked"
	case e.code == deviceAuthorizationPending || e.code == deviceSlowDown:
		// A device polling while its person decides: routine, not a refusal.
		return "pending"
	case e.status == http.StatusUnauthorized || e.code == "invalid_grant" || e.code == deviceAccessDenied || e.code == deviceExpiredToken:
		return "unauthorized"
	case e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests:
		return "unavailable"
	case e.status >= 500:
		return "error"
	}
	return "bad_request"
}

func scopeStrings(ss []scope.Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}

// quoteShort quotes client input for an error message, cut so an answer stays small.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// isDecisionID accepts what the authz service issues: 32 lowercase hex digits.
func isDecisionID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
