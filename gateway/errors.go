package gateway

import (
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

// fromGRPC is the one place a backend service's status becomes an HTTP answer.
// Only messages of InvalidArgument are passed on: they describe the client's own input.
func fromGRPC(err error) *apiError {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unauthenticated:
		return &apiError{status: http.StatusUnauthorized, code: "unauthorized", description: "invalid username or password", basicAuth: true}
	case codes.InvalidArgument:
		return badRequest("invalid_request", st.Message())
	case codes.PermissionDenied:
		return &apiError{status: http.StatusForbidden, code: "access_denied", description: "access denied"}
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Canceled:
		return &apiError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the token service is temporarily unavailable; retry shortly"}
	default:
		return &apiError{status: http.StatusInternalServerError, code: "server_error", description: "internal error"}
	}
}

func (g *Gateway) writeError(w http.ResponseWriter, e *apiError) {
	h := w.Header()
	if e.basicAuth {
		h.Set("WWW-Authenticate", `Basic realm=`+strconv.Quote(g.opt.Realm))
	}
	if e.status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
