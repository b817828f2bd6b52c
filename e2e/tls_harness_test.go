//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
)

// roles are the identities of the split deployment: one certificate each, naming the role
// in a SPIFFE URI SAN, spiffe://portcullis/<role>.
var roles = []string{"gateway", "authn", "authz", "signer", "admin"}

// spiffeID is the identity Portcullis authorises a peer by (internal_tls.trust_domain is
// left at its default, portcullis).
func spiffeID(role string) string { return "spiffe://portcullis/" + role }

// internalPKI is the split deployment's CA and a certificate per role.
type internalPKI struct {
	CA    *testpki.CA
	Certs map[string]testpki.Files // by role
}

// newInternalPKI writes a CA and one certificate per role (for 127.0.0.1 and localhost,
// server and client use) into dir.
func newInternalPKI(t testing.TB, dir string) *internalPKI {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &internalPKI{CA: testpki.NewCA(t, dir), Certs: map[string]testpki.Files{}}
	for _, r := range roles {
		p.Certs[r] = p.CA.Issue(t, r, spiffeID(r))
	}
	return p
}

// config is the config's internal_tls section. The file names the gateway's certificate;
// every process overrides it with its own (flags), as four processes sharing one file do.
func (p *internalPKI) config() grpctls.Config {
	g := p.Certs["gateway"]
	return grpctls.Config{CertFile: g.Cert, KeyFile: g.Key, CAFile: p.CA.File}
}

// flags select role's certificate for one process.
func (p *internalPKI) flags(role string) []string {
	f := p.Certs[role]
	return []string{"-internal-tls.cert-file", f.Cert, "-internal-tls.key-file", f.Key}
}

// grpcTLS dials addr over TLS trusting the CA in caFile and presenting cert, if any. It
// is how the suite plays a peer (or an intruder) of the split services.
func grpcTLS(t testing.TB, addr, caFile string, cert *testpki.Files) *grpc.ClientConn {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// otherCA is a second, unrelated CA in its own directory: its certificates must be worth
// nothing to Portcullis, even one claiming the gateway's identity.
func otherCA(t testing.TB) *testpki.CA {
	t.Helper()
	return testpki.NewCA(t, t.TempDir())
}

// rpcContext bounds one gRPC call the suite makes.
func rpcContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
