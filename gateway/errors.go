package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// apiError is an error answer of the token endpoints: OAuth2-style JSON, never internal text.
type apiError struct {
	status      int
	code        string // OAuth2 "error"
	description string
	basicAuth   bool // add WWW-Authenticate: Basic
	// retryAfter is when a locked-out caller may try again (Retry-After, rounded up to whole
	// seconds); zero for every other answer.
	retryAfter time.Duration
}

func (e *apiError) Error() string { return e.code + ": " + e.description }

func badRequest(code, desc string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, description: desc}
}

func unauthorized(desc string) *apiError {
	return &apiError{status: http.StatusUnauthorized, code: "unauthorized", description: desc, basicAuth: true}
}

func serverError() *apiError {
	return &apiError{status: http.StatusInternalServerError, code: "server_error", description: "internal error"}
}

// fromGRPC is the one place a backend service's status becomes an HTTP answer. The gateway
// checks everything the client sent before it calls a backend, so a backend that refuses the
// request's content (InvalidArgument, FailedPrecondition — e.g. a TTL above the signer's
// maximum) or this caller (PermissionDenied: the peer authorisation refused the gateway) points
// at the deployment, not the client: that is a 500 whose detail goes to the log only. No
// backend's text ever reaches the client.
func (g *Gateway) fromGRPC(ctx context.Context, backend string, err error) *apiError {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unauthenticated:
		// The audit event records the refusal; this is the client's wrong password, not a fault.
		return unauthorized("invalid username or password")
	case codes.ResourceExhausted:
		if retry, ok := lockedOut(st); ok {
			// Too many failed logins from this caller: authn refused without checking and wrote
			// the audit event. Not a saturated backend, so nothing to warn about.
			return &apiError{status: http.StatusTooManyRequests, code: "too_many_attempts",
				description: "too many failed login attempts; retry after " + strconv.FormatInt(retrySeconds(retry), 10) + "s",
				retryAfter:  retry}
		}
		g.log.WarnContext(ctx, "backend saturated", "backend", backend, "code", st.Code().String(), "message", st.Message())
		return &apiError{status: http.StatusTooManyRequests, code: "temporarily_unavailable", description: "the token service is busy; retry shortly"}
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		g.log.WarnContext(ctx, "backend unavailable", "backend", backend, "code", st.Code().String(), "message", st.Message())
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the token service is temporarily unavailable; retry shortly"}
	default:
		g.log.ErrorContext(ctx, "backend call failed", "backend", backend, "code", st.Code().String(), "message", st.Message())
		return serverError()
	}
}

// The ErrorInfo authn gives a locked-out caller (authn.LockedReason and authn.ErrorDomain; the
// gateway reaches authn through its gRPC API only, so the values are repeated here).
const (
	lockedReason = "LOGIN_LOCKED"
	authnDomain  = "authn.portcullis.dev"
)

// lockedOut reports whether a ResourceExhausted status is authn's lockout, not a full queue
// (ErrBusy), and the RetryInfo delay it carries (a second when it carries none).
func lockedOut(st *status.Status) (time.Duration, bool) {
	locked, retry := false, time.Second
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			locked = locked || (d.GetReason() == lockedReason && d.GetDomain() == authnDomain)
		case *errdetails.RetryInfo:
			if r := d.GetRetryDelay(); r.IsValid() && r.AsDuration() > 0 {
				retry = r.AsDuration()
			}
		}
	}
	return retry, locked
}

// retrySeconds is a Retry-After value: whole seconds, rounded up, at least one.
func retrySeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// oauth is e as the OAuth2 form of the token endpoint answers it (RFC 6749 §5.2): wrong
// credentials or refresh token, and a caller locked out after too many of them, are
// invalid_grant. A locked-out caller keeps the Retry-After header; containerd falls back to
// the GET form on a 400 and meets the lockout's 429 there.
func (e *apiError) oauth(req *tokenRequest) *apiError {
	switch {
	case e.status == http.StatusUnauthorized:
		return invalidGrant(req)
	case e.retryAfter > 0:
		out := badRequest("invalid_grant", e.description)
		out.retryAfter = e.retryAfter
		return out
	}
	return e
}

func (g *Gateway) writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	if e.basicAuth {
		h.Set("WWW-Authenticate", `Basic realm=`+strconv.Quote(g.opt.Realm))
	}
	body := map[string]string{"error": e.code, "error_description": e.description}
	switch {
	case e.retryAfter > 0:
		h.Set("Retry-After", strconv.FormatInt(retrySeconds(e.retryAfter), 10))
		// docker shows "details" of a 429 as "toomanyrequests: …" rather than the raw body.
		body["details"] = e.description
	case e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests:
		h.Set("Retry-After", "1")
	}
	writeJSON(w, e.status, body)
}

// methodNotAllowed answers a method a route does not serve, in the same JSON as every error.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{
			"error": "invalid_request", "error_description": "method " + quoteShort(r.Method) + " is not allowed; use " + allow,
		})
	})
}

// featureOff is an endpoint whose service authn does not offer: an authn without the service
// (Unimplemented: an older one in a split deployment) or with it turned off
// (FailedPrecondition: back-channel logout without sso.issuer). The endpoint is then absent,
// as it is when the gateway itself has it off.
func featureOff(err error) *apiError {
	switch status.Code(err) {
	case codes.Unimplemented, codes.FailedPrecondition:
		return &apiError{status: http.StatusNotFound, code: "not_found", description: "no such endpoint"}
	}
	return nil
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "no such endpoint"})
}

// writeEmpty is the empty 200 of an endpoint whose success has nothing to say (revocation,
// back-channel logout); no-store as every answer of the token endpoints.
func writeEmpty(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
