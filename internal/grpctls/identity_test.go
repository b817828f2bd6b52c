package grpctls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
)

// serve runs a TLS health server whose Check only the gateway may call and whose Watch
// nobody may call.
func serve(t *testing.T, srvFiles testpki.Files, trustDomain string) string {
	t.Helper()
	creds, err := grpctls.Config{CertFile: srvFiles.Cert, KeyFile: srvFiles.Key, CAFile: srvFiles.CA}.Server()
	if err != nil {
		t.Fatal(err)
	}
	az := grpctls.NewAuthorizer(grpctls.Rules{"/grpc.health.v1.Health/Check": {grpctls.RoleGateway}},
		grpctls.FromCertificate(trustDomain), slog.New(slog.DiscardHandler))
	s := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(az.Unary()), grpc.StreamInterceptor(az.Stream()))
	grpc_health_v1.RegisterHealthServer(s, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

func call(t *testing.T, addr string, f testpki.Files) (check, watch codes.Code) {
	t.Helper()
	creds, err := grpctls.Config{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA, TrustDomain: "example.org"}.Client(grpctls.RoleAuthn)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := grpc_health_v1.NewHealthClient(cc)
	_, err = c.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{})
	check = status.Code(err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w, err := c.Watch(ctx, &grpc_health_v1.HealthCheckRequest{})
	if err == nil {
		_, err = w.Recv()
	}
	return check, status.Code(err)
}

func TestAuthorizeByCertificateIdentity(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, t.TempDir())
	addr := serve(t, ca.Issue(t, "server", "spiffe://example.org/authn"), "example.org")
	cases := []struct {
		name string
		uris []string
		want codes.Code
	}{
		{"gateway", []string{"spiffe://example.org/gateway"}, codes.OK},
		{"other role", []string{"spiffe://example.org/authn"}, codes.PermissionDenied},
		{"no identity", nil, codes.PermissionDenied},
		{"other trust domain", []string{"spiffe://portcullis/gateway"}, codes.PermissionDenied},
		{"nested path", []string{"spiffe://example.org/x/gateway"}, codes.PermissionDenied},
		{"two identities", []string{"spiffe://example.org/gateway", "spiffe://example.org/admin"}, codes.PermissionDenied},
		{"not spiffe", []string{"https://example.org/gateway"}, codes.PermissionDenied},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			check, watch := call(t, addr, ca.Issue(t, "client-"+string(rune('a'+i)), tc.uris...))
			if check != tc.want {
				t.Errorf("Check: %v, want %v", check, tc.want)
			}
			if watch != codes.PermissionDenied {
				t.Errorf("Watch (not in the rules): %v, want PermissionDenied", watch)
			}
		})
	}
}

func TestFixedIdentityAndDefaultDeny(t *testing.T) {
	t.Parallel()
	rules := grpctls.Rules{"/a.S/": {grpctls.RoleGateway}, "/a.S/Admin": {grpctls.RoleAdmin}, "/grpc.health.v1.Health/": {grpctls.AnyPeer}}
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		identify grpctls.Identify
		method   string
		want     codes.Code
	}{
		{grpctls.Fixed(grpctls.RoleGateway), "/a.S/Sign", codes.OK},
		{grpctls.Fixed(grpctls.RoleGateway), "/a.S/Admin", codes.PermissionDenied},
		{grpctls.Fixed(grpctls.RoleAdmin), "/a.S/Admin", codes.OK},
		{grpctls.Fixed(grpctls.RoleAdmin), "/a.S/Sign", codes.PermissionDenied},
		{grpctls.Fixed(grpctls.RoleAuthn), "/grpc.health.v1.Health/Check", codes.OK},
		{grpctls.Fixed(grpctls.RoleGateway), "/b.T/Anything", codes.PermissionDenied},
		{grpctls.Fixed(""), "/grpc.health.v1.Health/Check", codes.OK},
		{grpctls.Fixed(""), "/a.S/Sign", codes.PermissionDenied},
		{grpctls.FromCertificate("portcullis"), "/grpc.health.v1.Health/Check", codes.Unauthenticated},
	} {
		got := status.Code(grpctls.NewAuthorizer(rules, tc.identify, log).Check(t.Context(), tc.method))
		if got != tc.want {
			t.Errorf("%s as %q: %v, want %v", tc.method, tc.identify(t.Context()).Role, got, tc.want)
		}
	}
}

func TestTrustDomainIsValidated(t *testing.T) {
	t.Parallel()
	for td, ok := range map[string]bool{"": true, "portcullis": true, "prod.example.org": true, "Prod": false, "a/b": false, "spiffe://x": false} {
		errs := grpctls.Config{TrustDomain: td}.Validate()
		if (len(errs) == 0) != ok {
			t.Errorf("trust_domain %q: %v", td, errs)
		}
	}
	if d := (grpctls.Config{}).Domain(); d != grpctls.DefaultTrustDomain {
		t.Errorf("default trust domain %q", d)
	}
}

// PeerFromTLS is what the HTTP admin listener identifies callers with: only a verified
// chain counts, and a certificate names a role under the same rules as on gRPC.
func TestPeerFromTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, t.TempDir())
	leaf := func(name string, uris ...string) *x509.Certificate {
		f := ca.Issue(t, name, uris...)
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	verified := func(c *x509.Certificate) *tls.ConnectionState {
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	admin := leaf("admin", "spiffe://example.org/admin")
	for _, tc := range []struct {
		name string
		cs   *tls.ConnectionState
		want grpctls.Peer
	}{
		{"no connection state", nil, grpctls.Peer{}},
		{"no certificate", &tls.ConnectionState{}, grpctls.Peer{}},
		{"presented but not verified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{admin}}, grpctls.Peer{}},
		{"admin", verified(admin), grpctls.Peer{Verified: true, Role: "admin", ID: "spiffe://example.org/admin"}},
		{"other trust domain", verified(leaf("other", "spiffe://portcullis/admin")), grpctls.Peer{Verified: true, ID: "spiffe://portcullis/admin"}},
		{"nested path", verified(leaf("nested", "spiffe://example.org/x/admin")), grpctls.Peer{Verified: true, ID: "spiffe://example.org/x/admin"}},
		{"two identities", verified(leaf("two", "spiffe://example.org/admin", "spiffe://example.org/gateway")),
			grpctls.Peer{Verified: true, ID: "spiffe://example.org/admin,spiffe://example.org/gateway"}},
		{"not spiffe", verified(leaf("https", "https://example.org/admin")), grpctls.Peer{Verified: true}},
		{"no identity", verified(leaf("none")), grpctls.Peer{Verified: true}},
	} {
		if got := grpctls.PeerFromTLS(tc.cs, "example.org"); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// A client accepts a server only when the server's certificate names a role it asked for:
// every internal certificate is valid for localhost, so the host name tells nothing.
func TestClientChecksTheServersRole(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, t.TempDir())
	gw := ca.Issue(t, "gateway", "spiffe://portcullis/gateway")
	client := grpctls.Config{CertFile: gw.Cert, KeyFile: gw.Key, CAFile: gw.CA}
	cases := []struct {
		name string
		uris []string
		want codes.Code
	}{
		{"authn", []string{"spiffe://portcullis/authn"}, codes.OK},
		{"authz holding a localhost certificate", []string{"spiffe://portcullis/authz"}, codes.Unavailable},
		{"no identity", nil, codes.Unavailable},
		{"other trust domain", []string{"spiffe://example.org/authn"}, codes.Unavailable},
		{"two identities", []string{"spiffe://portcullis/authn", "spiffe://portcullis/authz"}, codes.Unavailable},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := serve(t, ca.Issue(t, "server"+string(rune('a'+i)), tc.uris...), grpctls.DefaultTrustDomain)
			creds, err := client.Client(grpctls.RoleAuthn)
			if err != nil {
				t.Fatal(err)
			}
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			_, err = grpc_health_v1.NewHealthClient(cc).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{})
			if status.Code(err) != tc.want {
				t.Fatalf("Check against a %s server: %v, want %v", tc.name, err, tc.want)
			}
		})
	}
	if _, err := client.Client(); err == nil {
		t.Fatal("a client accepting no server role was built")
	}
}
