// Package regtrust reads a distribution registry's token-auth settings (auth.token in its
// config file) and says whether a registry of each major version given them would trust a
// token's signing key, and if not, why and what to change.
//
// The two majors pick the key differently, which is behind most "token signed by untrusted
// key" reports:
//   - both first try an x5c certificate chain in the token's header against rootcertbundle;
//     a chain that is present but does not verify is final;
//   - otherwise distribution 2.x looks the kid up among the libtrust key IDs of the
//     rootcertbundle certificates' keys, ignores jwks, and verifies only ES* and RS*;
//   - distribution 3.x looks the kid up among its own thumbprints of the rootcertbundle keys
//     and the kids the jwks file gives. Its thumbprint is RFC 7638's except that EC
//     coordinates lose their leading zero bytes, so for about one P-256 key in 128 it differs
//     from every other implementation's (Portcullis's JWKS included).
package regtrust

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/keyid"
)

// Settings are a registry's auth.token settings, with the files they name read.
type Settings struct {
	Realm, Service, Issuer string
	// RootCertBundle and JWKS are the configured file names, resolved against the config
	// file's directory when relative.
	RootCertBundle, JWKS string
	// SigningAlgorithms is the configured list (3.x); empty means the registry's default.
	SigningAlgorithms []string
	Certs             []*x509.Certificate
	// KeySet is nil when no jwks file is configured.
	KeySet *jose.JSONWebKeySet
}

// Load reads a registry config file and the trust files its auth.token section names.
func Load(path string) (*Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Parse reads a registry config (the whole file or just its auth section); relative file
// names are resolved against dir.
func Parse(data []byte, dir string) (*Settings, error) {
	var doc struct {
		Auth struct {
			Token *struct {
				Realm             string   `yaml:"realm"`
				Service           string   `yaml:"service"`
				Issuer            string   `yaml:"issuer"`
				RootCertBundle    string   `yaml:"rootcertbundle"`
				JWKS              string   `yaml:"jwks"`
				SigningAlgorithms []string `yaml:"signingalgorithms"`
			} `yaml:"token"`
		} `yaml:"auth"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a registry config: %w", err)
	}
	t := doc.Auth.Token
	if t == nil {
		return nil, errors.New("no auth.token section: the registry does not use token auth")
	}
	s := &Settings{Realm: t.Realm, Service: t.Service, Issuer: t.Issuer, SigningAlgorithms: t.SigningAlgorithms}
	var errs []error
	for _, need := range []struct{ key, val string }{{"realm", t.Realm}, {"service", t.Service}, {"issuer", t.Issuer}} {
		if need.val == "" {
			errs = append(errs, fmt.Errorf("auth.token.%s is not set (the registry refuses to start)", need.key))
		}
	}
	if t.RootCertBundle == "" && t.JWKS == "" {
		errs = append(errs, errors.New("auth.token names neither rootcertbundle nor jwks: the registry trusts no key"))
	}
	resolve := func(p string) string {
		if p != "" && !filepath.IsAbs(p) {
			return filepath.Join(dir, p)
		}
		return p
	}
	s.RootCertBundle, s.JWKS = resolve(t.RootCertBundle), resolve(t.JWKS)
	if s.RootCertBundle != "" {
		certs, err := readBundle(s.RootCertBundle)
		if err != nil {
			errs = append(errs, err)
		}
		s.Certs = certs
	}
	if s.JWKS != "" {
		b, err := os.ReadFile(s.JWKS)
		if err != nil {
			errs = append(errs, fmt.Errorf("jwks: %w", err))
		} else {
			var set jose.JSONWebKeySet
			if err := json.Unmarshal(b, &set); err != nil {
				errs = append(errs, fmt.Errorf("jwks %s: %w", s.JWKS, err))
			} else {
				s.KeySet = &set
			}
		}
	}
	return s, errors.Join(errs...)
}

func readBundle(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rootcertbundle: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("rootcertbundle %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("rootcertbundle %s holds no PEM certificate", path)
	}
	return certs, nil
}

// TrustedKey is a key the settings trust and the kids each registry major knows it by.
type TrustedKey struct {
	// From says where it is configured: "rootcertbundle certificate 1 (CN=…)" or "jwks key 2".
	From string
	Key  crypto.PublicKey
	// V2KeyID is the libtrust key ID 2.x derives (empty for jwks keys, which 2.x ignores,
	// and for keys libtrust cannot load).
	V2KeyID string
	// V3KeyID is the kid 3.x knows the key by: its thumbprint for a bundle key, the file's
	// kid for a jwks key.
	V3KeyID string
	// Thumbprint is the key's RFC 7638 thumbprint.
	Thumbprint string
}

// Keys lists the trusted keys, bundle first.
func (s *Settings) Keys() []TrustedKey {
	var ks []TrustedKey
	for i, c := range s.Certs {
		k := TrustedKey{From: fmt.Sprintf("rootcertbundle certificate %d (CN=%s)", i+1, c.Subject.CommonName), Key: c.PublicKey,
			V3KeyID: Dist3Thumbprint(c.PublicKey)}
		k.V2KeyID, _ = keyid.Libtrust(c.PublicKey)
		k.Thumbprint, _ = keyid.Thumbprint(c.PublicKey)
		ks = append(ks, k)
	}
	if s.KeySet != nil {
		for i, jk := range s.KeySet.Keys {
			k := TrustedKey{From: fmt.Sprintf("jwks key %d", i+1), Key: jk.Public().Key, V3KeyID: jk.KeyID}
			k.Thumbprint, _ = keyid.Thumbprint(k.Key)
			ks = append(ks, k)
		}
	}
	return ks
}

// PinnedKeys lists the keys these settings trust by kid although the token with header h
// carries an x5c chain: every jwks key, and a bundle certificate for the chain's leaf key.
// Each is trusted with no expiry, so a bare token (no x5c) signed with it verifies past
// every leaf; in x5c mode a registry should trust the root alone.
func (s *Settings) PinnedKeys(h Header) []TrustedKey {
	if len(h.X5C) == 0 {
		return nil
	}
	leaf, _ := h.X5C[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	var pinned []TrustedKey
	for _, k := range s.Keys() {
		if strings.HasPrefix(k.From, "jwks") || (leaf != nil && leaf.Equal(k.Key)) {
			pinned = append(pinned, k)
		}
	}
	return pinned
}

// Dist3Thumbprint is the kid distribution 3.x derives from a rootcertbundle key: RFC 7638's
// thumbprint, except that EC coordinates are encoded without their leading zero bytes.
// Empty for key types 3.x does not derive one for.
func Dist3Thumbprint(pub crypto.PublicKey) string {
	var doc string
	b64 := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		doc = fmt.Sprintf(`{"e":"%s","kty":"RSA","n":"%s"}`, b64(big.NewInt(int64(k.E)).Bytes()), b64(k.N.Bytes()))
	case *ecdsa.PublicKey:
		doc = fmt.Sprintf(`{"crv":"%s","kty":"EC","x":"%s","y":"%s"}`, k.Params().Name, b64(k.X.Bytes()), b64(k.Y.Bytes()))
	case ed25519.PublicKey:
		doc = fmt.Sprintf(`{"crv":"Ed25519","kty":"OKP","x":"%s"}`, b64(k))
	default:
		return ""
	}
	sum := sha256.Sum256([]byte(doc))
	return b64(sum[:])
}

// Header is what of a token's JOSE header decides which key a registry uses.
type Header struct {
	Algorithm string
	KeyID     string
	// X5C is the certificate chain, leaf first; nil without an x5c header.
	X5C []*x509.Certificate
}

// Major is a distribution major version.
type Major string

const (
	V2 Major = "2.x"
	V3 Major = "3.x"
)

// Verdict is whether a registry of one major with these settings trusts a token's key.
type Verdict struct {
	Major   Major
	Trusted bool
	// Via says how the key was found when trusted; Why and Fix say, when not, in plain words.
	Via, Why, Fix string
}

// v2Algorithms are what libtrust, and so 2.x, verifies.
var v2Algorithms = []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512"}

// Check says, for 2.x and 3.x in turn, whether a registry with these settings would trust
// the key that signed a token with header h.
func (s *Settings) Check(h Header) []Verdict {
	return []Verdict{s.check(V2, h), s.check(V3, h)}
}

func (s *Settings) check(m Major, h Header) Verdict {
	v := Verdict{Major: m}
	if m == V2 && !slices.Contains(v2Algorithms, h.Algorithm) {
		v.Why = fmt.Sprintf("distribution 2.x verifies only %s; the token is signed with %s", strings.Join(v2Algorithms, ", "), h.Algorithm)
		v.Fix = "sign with an ECDSA or RSA (PKCS#1 v1.5) key for 2.x registries, or upgrade the registry to 3.x"
		return v
	}
	if m == V3 && len(s.SigningAlgorithms) > 0 && !slices.Contains(s.SigningAlgorithms, h.Algorithm) {
		v.Why = fmt.Sprintf("the registry's auth.token.signingalgorithms (%s) does not list the token's %s", strings.Join(s.SigningAlgorithms, ", "), h.Algorithm)
		v.Fix = fmt.Sprintf("add %s to signingalgorithms, or drop the setting (3.x then accepts every algorithm it knows)", h.Algorithm)
		return v
	}
	if len(h.X5C) > 0 {
		return s.checkChain(v, h)
	}
	if h.KeyID == "" {
		v.Why = "the token has neither a kid nor an x5c chain: no registry can tell which key signed it"
		v.Fix = "sign tokens with a kid (Portcullis always sets one)"
		return v
	}
	keys := s.Keys()
	for _, k := range keys {
		if m == V2 && k.V2KeyID == h.KeyID {
			v.Trusted, v.Via = true, fmt.Sprintf("kid %s is the libtrust key ID of %s", h.KeyID, k.From)
			return v
		}
		if m == V3 && k.V3KeyID == h.KeyID {
			how := "3.x's thumbprint of"
			if strings.HasPrefix(k.From, "jwks") {
				how = "the kid of"
			}
			v.Trusted, v.Via = true, fmt.Sprintf("kid %s is %s %s", h.KeyID, how, k.From)
			return v
		}
	}
	v.Why, v.Fix = s.explainUnknownKid(m, h.KeyID, keys)
	return v
}

// explainUnknownKid finds why no configured key carries kid: the right key under another
// derivation, or a different key altogether.
func (s *Settings) explainUnknownKid(m Major, kid string, keys []TrustedKey) (why, fix string) {
	known := func(f func(TrustedKey) string) []string {
		var ids []string
		for _, k := range keys {
			// A key in both the bundle and the jwks (as registry-config writes it) is one kid.
			if id := f(k); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	for _, k := range keys {
		switch {
		case m == V2 && strings.HasPrefix(k.From, "jwks") && k.V3KeyID == kid:
			return fmt.Sprintf("kid %s is in the jwks file, which distribution 2.x ignores: 2.x trusts only rootcertbundle, by libtrust key ID", kid),
				"set the signer's kid_mode: libtrust for 2.x registries (then run portcullis registry-config again), or upgrade the registry to 3.x"
		case m == V2 && k.Thumbprint == kid:
			return fmt.Sprintf("kid %s is the RFC 7638 thumbprint of %s, but distribution 2.x derives libtrust key IDs (%s)", kid, k.From, k.V2KeyID),
				"set the signer's kid_mode: libtrust for 2.x registries (then run portcullis registry-config again), or upgrade the registry to 3.x"
		case m == V3 && k.V2KeyID == kid:
			return fmt.Sprintf("kid %s is the libtrust key ID of %s, which 2.x derives; 3.x derives the thumbprint %s and reads the jwks file's kids", kid, k.From, k.V3KeyID),
				"give the registry the jwks file that portcullis registry-config writes (auth.token.jwks), or set the signer's kid_mode: thumbprint"
		case m == V3 && k.Thumbprint == kid && !strings.HasPrefix(k.From, "jwks"):
			return fmt.Sprintf("kid %s is the RFC 7638 thumbprint of %s, but that key has an EC coordinate starting with a zero byte, "+
					"which distribution 3.x drops before hashing: it knows the key as %s", kid, k.From, k.V3KeyID),
				"give the registry the jwks file that portcullis registry-config writes (auth.token.jwks): 3.x takes the kid from it as written"
		}
	}
	ids := known(func(k TrustedKey) string { return k.V3KeyID })
	if m == V2 {
		ids = known(func(k TrustedKey) string { return k.V2KeyID })
	}
	what := "no key"
	if len(ids) > 0 {
		what = "only " + strings.Join(ids, ", ")
	}
	return fmt.Sprintf("kid %s is not among the keys the registry trusts (%s): its trust files are for another key", kid, what),
		"run portcullis registry-config against this Portcullis and give the registry the files it writes (then restart the registry)"
}

func (s *Settings) checkChain(v Verdict, h Header) Verdict {
	roots := x509.NewCertPool()
	for _, c := range s.Certs {
		roots.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range h.X5C[1:] {
		inter.AddCert(c)
	}
	chains, err := h.X5C[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		v.Why = fmt.Sprintf("the token's x5c chain (leaf CN=%s) does not verify against rootcertbundle: %v; with an x5c header the registry never falls back to the kid",
			h.X5C[0].Subject.CommonName, err)
		v.Fix = "give the registry the x5c root certificate as rootcertbundle (portcullis registry-config writes it)"
		if len(s.Certs) == 0 {
			v.Why = "the token carries an x5c chain, but the registry has no rootcertbundle to verify it with"
		}
		return v
	}
	root := chains[0][len(chains[0])-1]
	v.Trusted, v.Via = true, fmt.Sprintf("x5c chain from CN=%s to the rootcertbundle's CN=%s", h.X5C[0].Subject.CommonName, root.Subject.CommonName)
	return v
}
