package verify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type claimsKey struct{}

// FromContext returns the claims Middleware or UnaryInterceptor verified.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// Required names what a request needs: access type, name and action ("" type: any valid token).
type Required func(r *http.Request) (typ, name, action string)

// Middleware lets through requests whose Bearer token verifies and grants what need says:
// 401 with a Bearer challenge without a valid token, 403 when it does not grant the action.
// The claims are in the request's context (FromContext).
func Middleware(v *Verifier, need Required, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || raw == "" {
			deny(w, http.StatusUnauthorized, "invalid_request", "a Bearer token is required")
			return
		}
		c, err := v.Verify(r.Context(), raw)
		if err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, ErrUnavailable) {
				status = http.StatusServiceUnavailable
			}
			deny(w, status, "invalid_token", "the token is not valid")
			return
		}
		if typ, name, action := need(r); typ != "" && !c.Allows(typ, name, action) {
			deny(w, http.StatusForbidden, "insufficient_scope", "the token does not grant "+typ+":"+name+":"+action)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

func deny(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="`+code+`"`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
}

// UnaryInterceptor verifies the Bearer token in the "authorization" metadata of every call
// and puts the claims in its context; need (may be nil) says what a method requires.
func UnaryInterceptor(v *Verifier, need func(fullMethod string) (typ, name, action string)) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		var raw string
		for _, a := range md.Get("authorization") {
			if t, ok := strings.CutPrefix(a, "Bearer "); ok {
				raw = t
			}
		}
		if raw == "" {
			return nil, status.Error(codes.Unauthenticated, "a Bearer token is required")
		}
		c, err := v.Verify(ctx, raw)
		switch {
		case errors.Is(err, ErrUnavailable):
			return nil, status.Error(codes.Unavailable, "signing keys unavailable")
		case err != nil:
			return nil, status.Error(codes.Unauthenticated, "the token is not valid")
		}
		if need != nil {
			if typ, name, action := need(info.FullMethod); typ != "" && !c.Allows(typ, name, action) {
				return nil, status.Error(codes.PermissionDenied, "the token does not grant this call")
			}
		}
		return handler(context.WithValue(ctx, claimsKey{}, c), req)
	}
}
