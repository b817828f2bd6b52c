package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis-dev/portcullis/pkg/grpctls"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// writePKI makes a CA and one certificate for 127.0.0.1 usable as server and client.
func writePKI(t *testing.T, dir string) grpctls.Config {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "portcullis"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := grpctls.Config{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	for path, b := range map[string]*pem.Block{c.CAFile: {Type: "CERTIFICATE", Bytes: caDER}, c.CertFile: {Type: "CERTIFICATE", Bytes: der}, c.KeyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c
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
