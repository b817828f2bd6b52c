package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis-dev/portcullis/pkg/grpctls"
	"github.com/portcullis-dev/portcullis/pkg/testpki"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// writePKI makes a CA and one certificate for 127.0.0.1 usable as server and client.
func writePKI(t *testing.T, dir string) grpctls.Config {
	t.Helper()
	f := testpki.Write(t, dir)
	return grpctls.Config{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA}
}

func TestSplitTargetsWithMutualTLS(t *testing.T) {
	t.Parallel()
	cfg, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.InternalTLS = writePKI(t, t.TempDir())
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen = freeAddr(t), freeAddr(t), freeAddr(t)
	cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"authn", "authz", "signer"} {
		start(t, cfg, target)
	}
	gw := start(t, cfg, "gateway")
	tokenAndVerify(t, gw.GatewayAddr)

	// Without a certificate from the CA nobody reaches authn, where passwords go.
	other := writePKI(t, t.TempDir())
	otherCreds, err := other.Client()
	if err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]grpc.DialOption{
		"plaintext":           grpc.WithTransportCredentials(insecure.NewCredentials()),
		"another CA's client": grpc.WithTransportCredentials(otherCreds),
	} {
		cc, err := grpc.NewClient(cfg.Authn.Listen, opt)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = authnv1.NewAuthnServiceClient(cc).Authenticate(ctx, &authnv1.AuthenticateRequest{Username: "alice", Password: "alice"})
		cancel()
		cc.Close()
		if err == nil {
			t.Fatalf("%s: authn answered", name)
		}
	}
}

func TestInternalTLSNeedsAllThreeFiles(t *testing.T) {
	t.Parallel()
	cfg, _ := DevConfig(t.TempDir())
	cfg.InternalTLS = grpctls.Config{CertFile: "c.pem"}
	if err := cfg.Validate(); err == nil {
		t.Fatal("a certificate without key and CA was accepted")
	}
}
