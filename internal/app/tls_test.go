package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

func callAuthorize(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := authzv1.NewAuthzServiceClient(cc).Authorize(ctx, &authzv1.AuthorizeRequest{
		Identity: &commonv1.Identity{Subject: "alice", Groups: []string{"admins"}}, Service: "registry.local",
		Requested: []*commonv1.Scope{{Type: "repository", Name: "alice/app", Actions: []string{"push"}}}}, opts...)
	return status.Code(err)
}

func callSignToken(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := signerv1.NewSignerServiceClient(cc).SignToken(ctx, &signerv1.SignTokenRequest{Subject: "mallory", Audience: "registry.local",
		Access: []*commonv1.Scope{{Type: "repository", Name: "library/app", Actions: []string{"push", "pull"}}}, Ttl: durationpb.New(time.Hour), Jti: "jti-from-a-test"}, opts...)
	return status.Code(err)
}

func TestSplitTargetsWithMutualTLS(t *testing.T) {
	t.Parallel()
	cfg := apptest.SplitConfig(t)
	pki := apptest.NewRolePKI(t)
	cfg.InternalTLS = pki["none"] // every process below brings its own certificate
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"authn", "authz", "signer"} {
		apptest.Start(t, pki.As(cfg, target), target)
	}
	gw := apptest.Start(t, pki.As(cfg, "gateway"), "gateway")
	apptest.TokenAndVerify(t, gw.GatewayAddr)

	// Who may call what, each method reached on its own service's address.
	type call struct {
		name string
		addr string
		do   func(*grpc.ClientConn, ...grpc.CallOption) codes.Code
	}
	calls := []call{{"Authenticate", cfg.Authn.Listen, apptest.CallAuthenticate}, {"Authorize", cfg.Authz.Listen, callAuthorize},
		{"SignToken", cfg.Signer.Listen, callSignToken}}
	for _, role := range []string{"gateway", "authn", "authz", "signer", "admin", "none"} {
		want := codes.PermissionDenied
		if role == "gateway" {
			want = codes.OK
		}
		for _, c := range calls {
			if got := c.do(apptest.DialWith(t, c.addr, apptest.ClientCreds(t, pki[role]))); got != want {
				t.Errorf("%s certificate calling %s: %v, want %v", role, c.name, got, want)
			}
		}
	}
}

// A client that trusts the real CA but presents no certificate, or one from another CA, fails
// the TLS handshake (Unavailable): refused by the server's TLS itself, not only by the
// authorisation behind it, so a server that stopped asking for client certificates fails here.
func TestServicesRequireAClientCertificateInTheHandshake(t *testing.T) {
	t.Parallel()
	cfg := apptest.SplitConfig(t)
	pki := apptest.NewRolePKI(t)
	for _, target := range []string{"authn", "authz", "signer"} {
		apptest.Start(t, pki.As(cfg, target), target)
	}
	caPEM, err := os.ReadFile(pki["gateway"].CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	other := testpki.NewCA(t, t.TempDir()).Issue(t, "gateway", "spiffe://portcullis/gateway")
	otherCert, err := tls.LoadX509KeyPair(other.Cert, other.Key)
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]credentials.TransportCredentials{
		"plaintext":            insecure.NewCredentials(),
		"no certificate":       credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}),
		"another CA's gateway": credentials.NewTLS(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{otherCert}, MinVersion: tls.VersionTLS13}),
		"trusting another CA":  apptest.ClientCreds(t, grpctls.Config{CertFile: other.Cert, KeyFile: other.Key, CAFile: other.CA}),
	}
	for name, creds := range clients {
		for _, c := range []struct {
			addr string
			do   func(*grpc.ClientConn, ...grpc.CallOption) codes.Code
		}{{cfg.Authn.Listen, apptest.CallAuthenticate}, {cfg.Authz.Listen, callAuthorize}, {cfg.Signer.Listen, callSignToken}} {
			if got := c.do(apptest.DialWith(t, c.addr, creds)); got != codes.Unavailable {
				t.Errorf("%s client at %s: %v, want Unavailable (refused in the handshake)", name, c.addr, got)
			}
		}
	}

	// And the server does ask: a client's certificate callback runs only on a request.
	for _, addr := range []string{cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen} {
		asked := false
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				asked = true
				return &tls.Certificate{}, nil
			}})
		if err == nil {
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the server's verdict arrives after the handshake
			conn.Close()
		}
		if !asked || err == nil {
			t.Errorf("%s: certificate requested %v, connection error %v; want a request and a refusal", addr, asked, err)
		}
	}
}

func TestInternalTLSNeedsAllThreeFiles(t *testing.T) {
	t.Parallel()
	cfg, _ := app.DevConfig(t.TempDir())
	cfg.InternalTLS = grpctls.Config{CertFile: "c.pem"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a certificate without key and CA was accepted")
	}
}
