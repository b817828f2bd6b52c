package grpctls

import (
	"context"
	"crypto/tls"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The roles of a deployment's processes: the last part of spiffe://<trust domain>/<role>.
const (
	RoleGateway = "gateway"
	RoleAuthn   = "authn"
	RoleAuthz   = "authz"
	RoleSigner  = "signer"
	RoleAdmin   = "admin"
)

// AnyPeer in a rule admits every caller whose certificate verified, whatever it names.
const AnyPeer = "*"

// Peer is who is calling.
type Peer struct {
	// Verified: the caller proved its identity (a verified certificate, or it is trusted by
	// how it reaches the server, see Fixed).
	Verified bool
	// Role is the role its identity names; empty when it names none in the trust domain.
	Role string
	// ID is the identity as presented (a URI SAN), for logs.
	ID string
}

// Identify tells a server who is calling.
type Identify func(ctx context.Context) Peer

// FromCertificate identifies callers by their verified client certificate (PeerFromTLS).
func FromCertificate(trustDomain string) Identify {
	return func(ctx context.Context) Peer {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return Peer{}
		}
		ti, ok := p.AuthInfo.(credentials.TLSInfo)
		if !ok {
			return Peer{}
		}
		return PeerFromTLS(&ti.State, trustDomain)
	}
}

// PeerFromTLS identifies the peer of a TLS connection by the one spiffe:// URI SAN of its
// verified certificate. A certificate with none, several, or one outside trustDomain is
// verified but has no role; a connection without a verified certificate (nil cs, none
// presented, or not verified) is not verified. gRPC servers and the HTTP admin listener
// share it so that a certificate names the same role on both.
func PeerFromTLS(cs *tls.ConnectionState, trustDomain string) Peer {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Peer{}
	}
	var ids []string
	role := ""
	for _, u := range cs.VerifiedChains[0][0].URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		ids = append(ids, u.String())
		r, ok := strings.CutPrefix(u.Path, "/")
		if ok && u.Host == trustDomain && u.User == nil && u.RawQuery == "" && u.Fragment == "" &&
			r != "" && !strings.Contains(r, "/") {
			role = r
		}
	}
	if len(ids) != 1 { // a SPIFFE identity is exactly one URI; two would be ambiguous
		role = ""
	}
	return Peer{Verified: true, Role: role, ID: strings.Join(ids, ",")}
}

// Fixed says every caller has role. It is for listeners whose callers cannot present a
// certificate and are trusted by how they reach the server: the in-process listener of
// -target=all (the gateway), a plaintext listener on loopback, or the admin REST API's
// in-process server, reached only once its HTTP handler has checked the admin certificate.
func Fixed(role string) Identify {
	return func(context.Context) Peer { return Peer{Verified: true, Role: role, ID: "(" + role + " by position)"} }
}

// Rules map a gRPC service ("/pkg.Service/") or a full method ("/pkg.Service/Method") to the
// roles that may call it. A method in neither is refused to everybody.
type Rules map[string][]string

// MethodsOf is the Rules key that covers every method of the service d describes.
func MethodsOf(d *grpc.ServiceDesc) string { return "/" + d.ServiceName + "/" }

func (r Rules) roles(method string) ([]string, bool) {
	if roles, ok := r[method]; ok {
		return roles, true
	}
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		roles, ok := r[method[:i+1]]
		return roles, ok
	}
	return nil, false
}

// Authorizer refuses every call whose caller's role the rules do not name for the method.
type Authorizer struct {
	rules    Rules
	identify Identify
	log      *slog.Logger
}

// NewAuthorizer returns an authorizer; refusals are logged on log (no credential is logged).
func NewAuthorizer(rules Rules, identify Identify, log *slog.Logger) *Authorizer {
	return &Authorizer{rules: rules, identify: identify, log: log}
}

// Check returns nil when the caller in ctx may call method, else a status error:
// Unauthenticated without a verified identity, PermissionDenied otherwise.
func (a *Authorizer) Check(ctx context.Context, method string) error {
	p := a.identify(ctx)
	roles, listed := a.rules.roles(method)
	reason := ""
	switch {
	case !p.Verified:
		reason = "no verified client certificate"
	case !listed:
		reason = "method not allowed to anybody"
	case !p.allowed(roles):
		reason = "role not allowed for this method"
	default:
		return nil
	}
	addr := ""
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		addr = pr.Addr.String()
	}
	a.log.WarnContext(ctx, "gRPC call refused", "method", method, "peer", addr, "identity", p.ID, "role", p.Role, "reason", reason)
	if !p.Verified {
		return status.Error(codes.Unauthenticated, "a verified client certificate is required")
	}
	return status.Errorf(codes.PermissionDenied, "caller may not call %s", method)
}

func (p Peer) allowed(roles []string) bool {
	for _, r := range roles {
		if r == AnyPeer || (r == p.Role && p.Role != "") {
			return true
		}
	}
	return false
}

// Unary is the interceptor for unary calls.
func (a *Authorizer) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := a.Check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// Stream is the interceptor for streaming calls (health Watch).
func (a *Authorizer) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := a.Check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}
