package regclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

var decodeNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// signed makes a compact ES256 token with header extras and claims.
func signed(t *testing.T, key *ecdsa.PrivateKey, headers map[jose.HeaderKey]any, claims ...any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range headers {
		opts = opts.WithHeader(k, v)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	b := jwt.Signed(sig)
	for _, c := range claims {
		b = b.Claims(c)
	}
	raw, err := b.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// cert issues a certificate for key's public half, signed by parent (self-signed when nil).
func cert(t *testing.T, cn string, key *ecdsa.PrivateKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, from, to time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: from, NotAfter: to, IsCA: parent == nil, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDecode(t *testing.T) {
	t.Parallel()
	rootKey, leafKey := newKey(t), newKey(t)
	root := cert(t, "Portcullis root", rootKey, nil, nil, decodeNow.Add(-24*time.Hour), decodeNow.Add(365*24*time.Hour))
	leaf := cert(t, "signer-1", leafKey, root, rootKey, decodeNow.Add(-time.Hour), decodeNow.Add(-time.Minute)) // expired leaf
	x5c := []string{base64.StdEncoding.EncodeToString(leaf.Raw), base64.StdEncoding.EncodeToString(root.Raw)}

	std := jwt.Claims{Issuer: "portcullis", Subject: "alice", Audience: jwt.Audience{"registry.local"}, ID: "jti-1",
		IssuedAt: jwt.NewNumericDate(decodeNow.Add(-time.Minute)), NotBefore: jwt.NewNumericDate(decodeNow.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(decodeNow.Add(4*time.Minute + 30*time.Second))}
	access := map[string]any{"access": []Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}, {Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		"session": "ses_1"}
	raw := signed(t, leafKey, map[jose.HeaderKey]any{"kid": "ABCD:EFGH", "x5c": x5c}, std, access)

	ti, err := Decode(raw + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(ti.X5CCerts) != 2 || !ti.X5CCerts[0].Equal(leaf) || !ti.X5CCerts[1].Equal(root) {
		t.Errorf("X5CCerts = %v, want the leaf and the root", ti.X5CCerts)
	}
	ti.X5CCerts = nil
	want := &TokenInfo{Algorithm: "ES256", KeyID: "ABCD:EFGH", Type: "JWT",
		X5C: []Cert{{Subject: "CN=signer-1", Issuer: "CN=Portcullis root", NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC()},
			{Subject: "CN=Portcullis root", Issuer: "CN=Portcullis root", NotBefore: root.NotBefore.UTC(), NotAfter: root.NotAfter.UTC()}},
		Issuer: "portcullis", Subject: "alice", Audience: []string{"registry.local"}, ID: "jti-1",
		IssuedAt: decodeNow.Add(-time.Minute), NotBefore: decodeNow.Add(-time.Minute), Expiry: decodeNow.Add(4*time.Minute + 30*time.Second),
		Access: []Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}, {Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		Other:  map[string]string{"session": `"ses_1"`}}
	if !reflect.DeepEqual(ti, want) {
		t.Fatalf("Decode =\n%+v\nwant\n%+v", ti, want)
	}

	var out strings.Builder
	if err := ti.Write(&out, decodeNow); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"decoded WITHOUT verifying the signature",
		"  alg:  ES256\n", "  kid:  ABCD:EFGH\n", "  typ:  JWT\n",
		"  x5c:  2 certificate(s), leaf first\n",
		`    [0] subject "CN=signer-1", issuer "CN=Portcullis root", valid 2026-03-01T11:00:00Z to 2026-03-01T11:59:00Z EXPIRED` + "\n",
		`    [1] subject "CN=Portcullis root", issuer "CN=Portcullis root", valid 2026-02-28T12:00:00Z to 2027-03-01T12:00:00Z` + "\n",
		"  iss:  portcullis\n", "  sub:  alice\n", "  aud:  registry.local\n", "  jti:  jti-1\n",
		"  exp:  2026-03-01T12:04:30Z (4m30s left)\n",
		"  access:\n    repository:alice/app:pull,push\n    registry:catalog:*\n",
		`  session: "ses_1"` + "\n",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("Write lacks %q:\n%s", line, out.String())
		}
	}
}

func TestDecodeWriteStates(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	cases := []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"expired, empty access, aud list", map[string]any{"exp": decodeNow.Add(-90 * time.Second).Unix(), "aud": []string{"a", "b"}, "access": []any{}},
			[]string{"(EXPIRED 1m30s ago)", "  access: (empty: grants nothing)", "  aud:  a, b", "  x5c:  (none)", "  kid:  (none)"}},
		{"not yet valid, no exp, no access claim", map[string]any{"nbf": decodeNow.Add(time.Hour).Unix()},
			[]string{"(NOT YET VALID: 1h0m0s from now)", "(none: the token never expires)", "  access: (no access claim)", "  iss:  (none)"}},
		{"terminal escapes in claims are neutralised", map[string]any{"sub": "evil\x1b[2J", "access": []map[string]any{{"type": "repository", "name": "x\x07", "actions": []string{"pull"}}}},
			[]string{"  sub:  evil?[2J\n", "repository:x?:pull"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ti, err := Decode(signed(t, key, nil, tc.claims))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := ti.Write(&out, decodeNow); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("Write lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + "."
	for name, raw := range map[string]string{
		"not a JWT":    "opaque-token-from-some-registry",
		"alg none":     none,
		"bad payload":  base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"ES256"}`)) + ".!!!." + "c2ln",
		"empty string": "",
	} {
		if _, err := Decode(raw); err == nil {
			t.Errorf("%s: Decode(%q) succeeded", name, raw)
		}
	}
}
