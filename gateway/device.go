package gateway

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/pkg/scope"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// GrantTypeDeviceCode is RFC 8628's grant: a device polls POST /token with its device_code
// until a person approves the flow on the device page.
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// grantDevice is the device code grant as audit events name it.
const grantDevice = "device_code"

// deviceAuthParams may each appear once in a device authorization request (RFC 8628 §3.1).
var deviceAuthParams = []string{"client_id", "scope", "service"}

// maxClientIDBytes bounds a client_id: authn stores it with the flow and the approval page
// shows it, and no client needs more.
const maxClientIDBytes = 128

// defaultPollInterval is RFC 8628 §3.2's interval when the server names none.
const defaultPollInterval = 5 * time.Second

// The RFC 8628 §3.5 error codes authn's PollDeviceAuthorization answers carry as their
// ErrorInfo reason.
const (
	deviceAuthorizationPending = "authorization_pending"
	deviceSlowDown             = "slow_down"
	deviceAccessDenied         = "access_denied"
	deviceExpiredToken         = "expired_token"
)

// deviceOn reports whether the device flow is served. It is on exactly when the gateway has a
// DeviceAuthorizationService client: internal/app gives it one when sessions are on, since
// the flow's answer is a session.
func (g *Gateway) deviceOn() bool { return g.c.Device != nil }

// handleDeviceAuthorization is RFC 8628 §3.1's device authorization endpoint: `portcullis
// login` (or any device) starts a flow here and gets the codes; the person approves it on the
// gateway's /device page. The device code is a secret (it polls for the session): it is in
// the answer only, never in a log.
func (g *Gateway) handleDeviceAuthorization(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req, resp, e := g.startDevice(w, r)
	outcome := "started"
	if e != nil {
		outcome = outcomeOf(e)
	}
	attrs := g.auditHead(r, start, outcome)
	if req != nil {
		attrs = append(attrs, "client_id", req.clientID, "service", req.service, "requested", scopeStrings(req.scopes))
	}
	if e != nil {
		attrs = append(attrs, "status", e.status, "error", e.code)
	}
	// Neither code: the device code polls for a session, and the user code approves one.
	g.audit.InfoContext(r.Context(), "device authorization", attrs...)
	if e != nil {
		g.writeError(w, e)
		return
	}
	base := strings.TrimSuffix(g.opt.PublicURL, "/")
	interval := resp.GetInterval().AsDuration()
	if interval <= 0 {
		interval = defaultPollInterval
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               resp.GetDeviceCode(),
		"user_code":                 resp.GetUserCode(),
		"verification_uri":          base + "/device",
		"verification_uri_complete": base + "/device?user_code=" + url.QueryEscape(resp.GetUserCode()),
		"expires_in":                int64(resp.GetExpiresIn().AsDuration() / time.Second),
		"interval":                  retrySeconds(interval),
	})
}

// startDevice checks a device authorization request and starts the flow at authn. req is
// what was read of the request, for the audit event (nil before the form was read).
func (g *Gateway) startDevice(w http.ResponseWriter, r *http.Request) (*tokenRequest, *authnv1.StartDeviceAuthorizationResponse, *apiError) {
	if e := g.readForm(w, r); e != nil {
		return nil, nil, e
	}
	f := r.PostForm
	req := &tokenRequest{clientID: f.Get("client_id")}
	req.remoteAddr, _ = g.remoteAddr(r)
	if e := onceEach(f, deviceAuthParams); e != nil {
		return req, nil, e
	}
	if e := checkClientID(req.clientID); e != nil {
		return req, nil, e
	}
	if e := g.parseCommon(req, f["service"], f["scope"]); e != nil {
		return req, nil, e
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.opt.BackendTimeout)
	defer cancel()
	ua := r.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	resp, err := g.c.Device.StartDeviceAuthorization(ctx, &authnv1.StartDeviceAuthorizationRequest{
		ClientId: req.clientID, Service: req.service, Scopes: scopeStrings(req.scopes),
		RemoteAddr: req.remoteAddr, UserAgent: strings.ToValidUTF8(ua, "?"),
	})
	if err != nil {
		if status.Code(err) == codes.InvalidArgument {
			// The gateway checked the service and each scope; authn keeps a flow's scopes
			// within tighter bounds (their number and length) than a token request's.
			return req, nil, badRequest("invalid_request", "the device authorization request was refused: too many or too long scopes")
		}
		if e := featureOff(err); e != nil {
			return req, nil, e
		}
		if status.Code(err) == codes.ResourceExhausted {
			// authn's per-address cap on started flows, not a saturated backend.
			return req, nil, &apiError{status: http.StatusTooManyRequests, code: "temporarily_unavailable",
				description: "too many sign-ins started from this address; try again in a few minutes", retryAfter: time.Minute}
		}
		return req, nil, g.fromGRPC(ctx, "authn", err)
	}
	if resp.GetDeviceCode() == "" || resp.GetUserCode() == "" {
		g.log.ErrorContext(ctx, "authn started a device flow without its codes")
		return req, nil, serverError()
	}
	return req, resp, nil
}

// checkClientID refuses a missing client_id and one no client would send: RFC 6749's
// client_id is printable ASCII (VSCHAR), and authn keeps it with the flow.
func checkClientID(id string) *apiError {
	switch {
	case id == "":
		return badRequest("invalid_request", "client_id is required")
	case len(id) > maxClientIDBytes:
		return badRequest("invalid_request", "client_id is too long")
	}
	for i := range len(id) {
		if c := id[i]; c < 0x20 || c > 0x7e {
			return badRequest("invalid_request", "client_id must be printable ASCII")
		}
	}
	return nil
}

// handleDeviceToken serves the device code grant of POST /token (RFC 8628 §3.4): until the
// person decides, each poll answers authorization_pending (or slow_down); once approved, the
// flow's service and scopes are authorized and signed as for a password grant with offline
// access, and the answer carries the new session's refresh token.
func (g *Gateway) handleDeviceToken(w http.ResponseWriter, r *http.Request, start time.Time, req *tokenRequest, f url.Values) {
	req.grantType, req.hasCreds, req.offline = grantDevice, true, true
	if !g.deviceOn() {
		g.finish(w, r, start, req, badRequest("unsupported_grant_type", "the device authorization grant is not enabled here"), nil)
		return
	}
	req.deviceCode = f.Get("device_code")
	if req.deviceCode == "" {
		g.finish(w, r, start, req, badRequest("invalid_request", "device_code is required for the device_code grant"), nil)
		return
	}
	if e := checkClientID(req.clientID); e != nil {
		g.finish(w, r, start, req, e, nil)
		return
	}
	out, e := g.issue(r.Context(), req)
	if e != nil {
		g.finish(w, r, start, req, e.oauth(req), nil)
		return
	}
	g.finish(w, r, start, req, nil, out)
	writeJSON(w, http.StatusOK, oauthAnswer(out))
}

// pollDevice asks authn about the flow of req's device code. Once approved, it fills req's
// service and scopes with the flow's (what the person saw on the approval page) and returns
// the approver's identity and new session.
func (g *Gateway) pollDevice(ctx context.Context, req *tokenRequest) (*authnv1.PollDeviceAuthorizationResponse, *apiError) {
	resp, err := g.c.Device.PollDeviceAuthorization(ctx, &authnv1.PollDeviceAuthorizationRequest{
		DeviceCode: req.deviceCode, ClientId: req.clientID, RemoteAddr: req.remoteAddr,
	})
	if err != nil {
		if e := deviceError(err); e != nil {
			return nil, e
		}
		return nil, g.fromGRPC(ctx, "authn", err)
	}
	// The flow was started with a configured service and valid scopes; a configuration
	// changed since then, or an authn that says otherwise, is the deployment's fault.
	ss, perr := scope.ParseList(resp.GetScopes())
	switch {
	case resp.GetRefreshToken() == "":
		g.log.ErrorContext(ctx, "authn approved a device flow without a session")
		return nil, serverError()
	case !slices.Contains(g.opt.Services, resp.GetService()) || perr != nil:
		g.log.ErrorContext(ctx, "an approved device flow names an unknown service or bad scopes", "service", resp.GetService())
		// Nobody will hold the session's token.
		g.endSession(ctx, resp.GetRefreshToken(), req.remoteAddr)
		return nil, serverError()
	}
	req.service, req.scopes = resp.GetService(), ss
	return resp, nil
}

// deviceError is authn's answer to a poll of a flow that is not (or no longer) approvable, as
// RFC 8628 §3.5 says it: 400 with the ErrorInfo's reason as the error. nil for any other
// status, which fromGRPC maps (an UNAUTHENTICATED without a reason is invalid_grant there).
func deviceError(err error) *apiError {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated:
	default:
		return nil
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		switch reason := info.GetReason(); reason {
		case deviceAuthorizationPending:
			return badRequest(reason, "the person has not approved the request yet; poll again after the interval")
		case deviceSlowDown:
			return badRequest(reason, "polled too fast: add 5 seconds to the interval")
		case deviceAccessDenied:
			return badRequest(reason, "the person denied the request")
		case deviceExpiredToken:
			return badRequest(reason, "the device code expired; start again")
		case "invalid_grant":
			return badRequest(reason, "invalid, spent or unknown device code")
		}
	}
	return nil
}
