package regtrust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/keyid"
)

func ecKey(t *testing.T, zeroLead bool) *ecdsa.PrivateKey {
	t.Helper()
	for range 100000 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		lead := len(k.X.Bytes()) < 32 || len(k.Y.Bytes()) < 32
		if lead == zeroLead {
			return k
		}
	}
	t.Fatal("no key of the wanted shape")
	return nil
}

func selfSigned(t *testing.T, k crypto.Signer, cn string, ca bool, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: ca}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// write lays out a registry config with the given bundle certificates and jwks keys.
func write(t *testing.T, certs []*x509.Certificate, jwks []jose.JSONWebKey, extra string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := "version: 0.1\nauth:\n  token:\n    realm: https://auth.example.com/token\n    service: registry.example.com\n    issuer: portcullis\n" + extra
	if certs != nil {
		var b []byte
		for _, c := range certs {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		if err := os.WriteFile(filepath.Join(dir, "bundle.pem"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg += "    rootcertbundle: bundle.pem\n"
	}
	if jwks != nil {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: jwks})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "jwks.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg += "    jwks: jwks.json\n"
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheck(t *testing.T) {
	plain := ecKey(t, false)
	quirky := ecKey(t, true)
	other := ecKey(t, false)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	plainCert, quirkyCert := selfSigned(t, plain, "plain", true, nil, nil), selfSigned(t, quirky, "quirky", true, nil, nil)
	kid := func(m keyid.Mode, k crypto.PublicKey) string {
		id, err := m.KeyID(k)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	thumb, lib := kid(keyid.ModeThumbprint, plain.Public()), kid(keyid.ModeLibtrust, plain.Public())
	quirkyThumb := kid(keyid.ModeThumbprint, quirky.Public())
	leaf := selfSigned(t, other, "leaf", false, plainCert, plain)

	type want struct {
		trusted bool
		why     string // substring of Why when not trusted
	}
	cases := []struct {
		name   string
		certs  []*x509.Certificate
		jwks   []jose.JSONWebKey
		extra  string
		h      Header
		v2, v3 want
	}{
		{name: "thumbprint kid, bundle only: 3.x yes, 2.x derives libtrust",
			certs: []*x509.Certificate{plainCert}, h: Header{Algorithm: "ES256", KeyID: thumb},
			v2: want{why: "derives libtrust key IDs"}, v3: want{trusted: true}},
		{name: "libtrust kid, bundle only: 2.x yes, 3.x derives thumbprints",
			certs: []*x509.Certificate{plainCert}, h: Header{Algorithm: "ES256", KeyID: lib},
			v2: want{trusted: true}, v3: want{why: "which 2.x derives"}},
		{name: "libtrust kid in jwks too: both",
			certs: []*x509.Certificate{plainCert}, jwks: []jose.JSONWebKey{{Key: plain.Public(), KeyID: lib, Algorithm: "ES256"}},
			h: Header{Algorithm: "ES256", KeyID: lib}, v2: want{trusted: true}, v3: want{trusted: true}},
		{name: "zero-byte EC coordinate, bundle only: 3.x's thumbprint differs",
			certs: []*x509.Certificate{quirkyCert}, h: Header{Algorithm: "ES256", KeyID: quirkyThumb},
			v2: want{why: "derives libtrust"}, v3: want{why: "starting with a zero byte"}},
		{name: "zero-byte EC coordinate with jwks: 3.x takes the jwks kid",
			certs: []*x509.Certificate{quirkyCert}, jwks: []jose.JSONWebKey{{Key: quirky.Public(), KeyID: quirkyThumb, Algorithm: "ES256"}},
			h: Header{Algorithm: "ES256", KeyID: quirkyThumb}, v2: want{why: "derives libtrust"}, v3: want{trusted: true}},
		{name: "wrong bundle",
			certs: []*x509.Certificate{quirkyCert}, h: Header{Algorithm: "ES256", KeyID: thumb},
			v2: want{why: "its trust files are for another key"}, v3: want{why: "its trust files are for another key"}},
		{name: "EdDSA: 2.x cannot verify it",
			certs: []*x509.Certificate{plainCert}, jwks: []jose.JSONWebKey{{Key: edPriv.Public(), KeyID: "ed", Algorithm: "EdDSA"}},
			h: Header{Algorithm: "EdDSA", KeyID: "ed"}, v2: want{why: "verifies only ES256"}, v3: want{trusted: true}},
		{name: "algorithm not in signingalgorithms",
			certs: []*x509.Certificate{plainCert}, extra: "    signingalgorithms: [RS256]\n",
			h: Header{Algorithm: "ES256", KeyID: thumb}, v2: want{why: "derives libtrust"}, v3: want{why: "signingalgorithms (RS256)"}},
		{name: "x5c chain to the bundle: both, whatever the kid",
			certs: []*x509.Certificate{plainCert}, h: Header{Algorithm: "ES256", KeyID: "whatever", X5C: []*x509.Certificate{leaf}},
			v2: want{trusted: true}, v3: want{trusted: true}},
		{name: "x5c chain to another root: final, no kid fallback",
			certs: []*x509.Certificate{quirkyCert}, h: Header{Algorithm: "ES256", KeyID: quirkyThumb, X5C: []*x509.Certificate{leaf}},
			v2: want{why: "does not verify against rootcertbundle"}, v3: want{why: "never falls back to the kid"}},
		{name: "no kid",
			certs: []*x509.Certificate{plainCert}, h: Header{Algorithm: "ES256"},
			v2: want{why: "neither a kid"}, v3: want{why: "neither a kid"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(write(t, tc.certs, tc.jwks, tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			got := s.Check(tc.h)
			for i, w := range []want{tc.v2, tc.v3} {
				v := got[i]
				if v.Trusted != w.trusted {
					t.Errorf("%s: trusted = %v (%s%s), want %v", v.Major, v.Trusted, v.Via, v.Why, w.trusted)
					continue
				}
				if w.trusted && v.Via == "" {
					t.Errorf("%s: trusted without saying how", v.Major)
				}
				if !w.trusted && (!strings.Contains(v.Why, w.why) || v.Fix == "") {
					t.Errorf("%s: why %q (fix %q), want it to mention %q and a fix", v.Major, v.Why, v.Fix, w.why)
				}
			}
		})
	}
}

// TestDist3Thumbprint pins the derivation against RFC 7638 where they agree and shows
// where they part.
func TestDist3Thumbprint(t *testing.T) {
	plain, quirky := ecKey(t, false), ecKey(t, true)
	if got, want := Dist3Thumbprint(plain.Public()), mustThumb(t, plain.Public()); got != want {
		t.Errorf("plain key: %s, want the RFC 7638 %s", got, want)
	}
	if got, rfc := Dist3Thumbprint(quirky.Public()), mustThumb(t, quirky.Public()); got == rfc {
		t.Errorf("zero-led key: 3.x's derivation %s equals RFC 7638's: the quirk is not modelled", got)
	}
	if Dist3Thumbprint("not a key") != "" {
		t.Error("unknown key type got a kid")
	}
}

func mustThumb(t *testing.T, k crypto.PublicKey) string {
	t.Helper()
	id, err := keyid.Thumbprint(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLoadReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	cfg := "auth:\n  token:\n    realm: https://a/token\n    rootcertbundle: missing.pem\n    jwks: bad.json\n"
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"auth.token.service", "auth.token.issuer", "missing.pem", "bad.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if err := os.WriteFile(path, []byte("version: 0.1\nauth:\n  htpasswd: {realm: x, path: y}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "does not use token auth") {
		t.Errorf("htpasswd config: %v", err)
	}
}

func TestJWKSOnlyKeyOn2x(t *testing.T) {
	k := ecKey(t, false)
	s, err := Load(write(t, nil, []jose.JSONWebKey{{Key: k.Public(), KeyID: "k1", Algorithm: "ES256"}}, ""))
	if err != nil {
		t.Fatal(err)
	}
	v := s.Check(Header{Algorithm: "ES256", KeyID: "k1"})
	if v[0].Trusted || !strings.Contains(v[0].Why, "2.x ignores") || !v[1].Trusted {
		t.Errorf("verdicts %+v", v)
	}
}

// TestUnknownKidListsEachKidOnce: registry-config writes the key to the bundle and to the
// jwks, so 3.x knows it twice under one kid; a refusal names that kid once.
func TestUnknownKidListsEachKidOnce(t *testing.T) {
	k := ecKey(t, false)
	thumb := mustThumb(t, k.Public())
	s, err := Load(write(t, []*x509.Certificate{selfSigned(t, k, "signer", true, nil, nil)},
		[]jose.JSONWebKey{{Key: k.Public(), KeyID: thumb, Algorithm: "ES256"}}, ""))
	if err != nil {
		t.Fatal(err)
	}
	v := s.Check(Header{Algorithm: "ES256", KeyID: "another-key"})[1]
	if v.Trusted {
		t.Fatalf("3.x trusts an unknown kid: %+v", v)
	}
	if n := strings.Count(v.Why, thumb); n != 1 {
		t.Errorf("3.x: %q names the kid %d times, want once", v.Why, n)
	}
}
