package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// apiError is an error answer of the token endpoints: OAuth2-style JSON, never internal text.
type apiError struct {
	status      int
	code        string // OAuth2 "error"
	description string
	basicAuth   bool // add WWW-Authenticate: Basic
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

func (g *Gateway) writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	if e.basicAuth {
		h.Set("WWW-Authenticate", `Basic realm=`+strconv.Quote(g.opt.Realm))
	}
	if e.status == http.StatusServiceUnavailable || e.status == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
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

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusNotFound, map[string]string{"error": "not_found", "error_description": "no such endpoint"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
