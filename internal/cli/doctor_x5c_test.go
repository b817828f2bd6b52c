package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/regtrust"
	"github.com/portcullis-dev/portcullis/pkg/regclient"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// While tokens carry an x5c chain, a registry that also trusts a signing key by kid (a jwks
// file, or a bundle certificate that is not a CA) accepts bare tokens of that key for as
// long as its files stay: the doctor reports it as a problem.
func TestDoctorFlagsAKeyPinnedInX5CMode(t *testing.T) {
	t.Parallel()
	f := newFakeKM(t)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "portcullis signing key v1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	// Signed by itself: what the chain verifies to does not matter here, what is pinned does.
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, leafTmpl, f.key.Public(), f.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	selfSigned, err := signer.SelfSignedCertificatePEM(fakeKey{PrivateKey: f.key, id: f.id}, "Portcullis token signer", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.root.Raw})
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-256","kid":%q,"x":%q,"y":%q}]}`, f.id,
		b64(f.key.X.FillBytes(make([]byte, 32))), b64(f.key.Y.FillBytes(make([]byte, 32))))
	cases := []struct {
		name       string
		x5c        bool
		bundle     []byte
		jwks       bool
		wantPinned string // "" when no pin problem is wanted
	}{
		{"x5c, root only", true, rootPEM, false, ""},
		{"x5c, jwks pins the key", true, rootPEM, true, "jwks key 1"},
		{"x5c, bundle pins the key", true, append(append([]byte{}, rootPEM...), selfSigned...), false, "rootcertbundle certificate 2"},
		{"jwks mode, jwks", false, selfSigned, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			auth := "auth:\n  token:\n    realm: http://localhost:5001/token\n    service: r\n    issuer: portcullis\n    rootcertbundle: bundle.pem\n"
			write(t, filepath.Join(dir, "bundle.pem"), tc.bundle)
			if tc.jwks {
				auth += "    jwks: jwks.json\n"
				write(t, filepath.Join(dir, "jwks.json"), []byte(jwks))
			}
			write(t, filepath.Join(dir, "config.yml"), []byte(auth))
			s, err := regtrust.Load(filepath.Join(dir, "config.yml"))
			if err != nil {
				t.Fatal(err)
			}
			ti := &regclient.TokenInfo{Algorithm: "ES256", KeyID: f.id, Issuer: "portcullis", Audience: []string{"r"}, Expiry: time.Now().Add(time.Minute)}
			if tc.x5c {
				ti.X5C, ti.X5CCerts = []regclient.Cert{{Subject: leaf.Subject.String()}}, []*x509.Certificate{leaf}
			}
			var out bytes.Buffer
			d := &doctorCmd{out: &out, now: time.Now}
			d.checkToken(ti, regclient.Challenge{Scheme: "bearer", Params: map[string]string{"service": "r"}}, s, nil, false)
			got := strings.Contains(out.String(), "pins")
			if got != (tc.wantPinned != "") || (got && !strings.Contains(out.String(), tc.wantPinned)) || got != (d.problems > 0) {
				t.Fatalf("want a pin problem naming %q: %v; %d problems:\n%s", tc.wantPinned, tc.wantPinned != "", d.problems, out.String())
			}
		})
	}
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
