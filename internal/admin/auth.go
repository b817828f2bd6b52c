package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Auth guards the admin server: every call on it must carry
// "authorization: Bearer <secret>". With no secret configured it refuses everything.
// Refusals are logged, never the credential.
type Auth struct {
	// digest is SHA-256 of the secret: comparing fixed-length digests in constant time says
	// nothing about the secret's length, which comparing the strings would.
	digest  [sha256.Size]byte
	enabled bool
	log     *slog.Logger
}

// NewAuth returns the guard for secret ("" disables the admin API).
func NewAuth(secret string, log *slog.Logger) *Auth {
	return &Auth{digest: sha256.Sum256([]byte(secret)), enabled: secret != "", log: log}
}

const bearerPrefix = "Bearer "

// Check returns nil when ctx carries the admin credential, else PermissionDenied (admin API
// disabled) or Unauthenticated.
func (a *Auth) Check(ctx context.Context, method string) error {
	var presented string
	var values []string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		values = md.Get("authorization")
	}
	// One header only: with two, which one a proxy or the client library honours is a guess.
	hasBearer := false
	if len(values) == 1 && len(values[0]) >= len(bearerPrefix) && strings.EqualFold(values[0][:len(bearerPrefix)], bearerPrefix) {
		presented, hasBearer = values[0][len(bearerPrefix):], true
	}
	got := sha256.Sum256([]byte(presented))
	if subtle.ConstantTimeCompare(got[:], a.digest[:]) == 1 && hasBearer && a.enabled {
		return nil
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	a.log.WarnContext(ctx, "admin call refused", "method", method, "peer", addr,
		"credential_present", len(values) > 0, "bearer", hasBearer)
	if !a.enabled {
		return status.Error(codes.PermissionDenied, "the admin API is disabled: no admin credential is configured")
	}
	return status.Error(codes.Unauthenticated, "admin credential required (authorization: Bearer <secret>)")
}

// Unary is the interceptor for unary calls.
func (a *Auth) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.Check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the interceptor for streaming calls (health Watch).
func (a *Auth) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.Check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
