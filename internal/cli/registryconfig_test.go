package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/internal/regtrust"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// fakeKM is a key manager with one ECDSA key; with root set it is in x5c mode (the root
// certificate is what registries should trust).
type fakeKM struct {
	signer.UnimplementedKeyManager
	key  *ecdsa.PrivateKey
	id   string
	root *x509.Certificate
}

type fakeKey struct {
	*ecdsa.PrivateKey
	signer.UnimplementedKey
	id string
}

func (k fakeKey) ID() string                         { return k.id }
func (k fakeKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }

func (f *fakeKM) SigningKey(context.Context) (signer.Key, error) {
	return fakeKey{PrivateKey: f.key, id: f.id}, nil
}

func (f *fakeKM) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	return []signer.PublicKey{{ID: f.id, Algorithm: jose.ES256, Key: f.key.Public()}}, nil
}

type fakeX5CKM struct{ *fakeKM }

func (f fakeX5CKM) RootCertificates(context.Context) []*x509.Certificate {
	return []*x509.Certificate{f.root}
}

func newFakeKM(t *testing.T) *fakeKM {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := keyid.Thumbprint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	rk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, rk.Public(), rk)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeKM{key: k, id: id, root: root}
}

// In x5c mode the registry must trust the root alone: a jwks line (or a bundle certificate
// for the signing key) pins the key past every leaf, so a bare token signed with a stolen
// signer token would be accepted for as long as the files stay.
func TestRegistryConfigX5CWritesTheRootOnly(t *testing.T) {
	t.Parallel()
	f := newFakeKM(t)
	cases := []struct {
		name     string
		km       signer.KeyManager
		wantJWKS bool
	}{
		{"jwks mode pins the key", f, true},
		{"x5c mode trusts the root only", fakeX5CKM{f}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var stdout, stderr bytes.Buffer
			if err := writeRegistryTrust(context.Background(), tc.km, dir, "http://localhost:5001/token", "registry.local", "portcullis", regtrust.V3, &stdout, &stderr); err != nil {
				t.Fatal(err)
			}
			s, err := regtrust.Load(filepath.Join(dir, "auth-token.yml"))
			if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "jwks.json"))
			if got := s.JWKS != "" || statErr == nil; got != tc.wantJWKS {
				t.Fatalf("jwks line %q, jwks.json written: %v; want jwks: %v\n%s", s.JWKS, statErr == nil, tc.wantJWKS, stdout.String())
			}
			if tc.wantJWKS {
				return
			}
			if len(s.Certs) != 1 || !s.Certs[0].Equal(f.root) {
				t.Fatalf("rootcertbundle holds %d certificates, want the root alone", len(s.Certs))
			}
			for _, k := range s.Keys() {
				if pk, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool }); ok && pk.Equal(f.key.Public()) {
					t.Fatalf("the registry config pins the signing key (%s)", k.From)
				}
			}
			// A bare token (no x5c) from the signing key is refused by both majors.
			for _, v := range s.Check(regtrust.Header{Algorithm: "ES256", KeyID: f.id}) {
				if v.Trusted {
					t.Fatalf("a %s registry given these files trusts a bare token of the signing key: %s", v.Major, v.Via)
				}
			}
			if !strings.Contains(stdout.String(), "no jwks") {
				t.Fatalf("registry-config does not say why it wrote no jwks:\n%s", stdout.String())
			}
		})
	}
}

// TestRegistryConfig2xNote: the distribution 2.x note is for those who name 2.x
// (-registry-version 2); a 3.x user (the default) is not told about libtrust. Named, a key
// 2.x would refuse is an error with the fix; a key it trusts passes quietly.
func TestRegistryConfig2xNote(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		args    []string
		kidMode string
		wantErr string // "" for success
	}{
		{name: "3.x by default: no word about 2.x", kidMode: "thumbprint"},
		{name: "-registry-version 3", args: []string{"-registry-version", "3"}, kidMode: "thumbprint"},
		{name: "2.x named, thumbprint kid: refused with the fix", args: []string{"-registry-version", "2"}, kidMode: "thumbprint",
			wantErr: "kid_mode: libtrust"},
		{name: "2.8 named, libtrust kid: trusted", args: []string{"-registry-version", "2.8"}, kidMode: "libtrust"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := filepath.Join(dir, "portcullis.yaml")
			yaml := "gateway: {services: [registry.local], public_url: \"http://localhost:5001\"}\n" +
				"authn: {backends: [{name: u, type: static, config: {users: []}}]}\n" +
				"signer: {key: {type: local, config: {path: " + strconv.Quote(filepath.Join(dir, "key.pem")) + ", kid_mode: " + tc.kidMode + "}}}\n"
			if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"-config", cfg, "-data-dir", dir, "-out", filepath.Join(dir, "out")}, tc.args...)
			err := runRegistryConfig(context.Background(), args, &stdout, &stderr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("registry-config: %v\n%s", err, stderr.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "2.x")):
				t.Fatalf("registry-config: error %v, want one naming 2.x and %q\n%s", err, tc.wantErr, stderr.String())
			case tc.wantErr == "" && strings.Contains(stderr.String(), "2.x"):
				t.Errorf("stderr speaks of 2.x:\n%s", stderr.String())
			}
		})
	}
}
