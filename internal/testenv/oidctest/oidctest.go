// Package oidctest runs an OpenID Connect token issuer for tests and benchmarks: its own
// signing keys, a discovery document and a JWKS over HTTP on loopback, and tokens signed on
// demand, including the malformed and malicious ones a verifier must refuse.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer. Its URL is the iss of the tokens it signs; discovery is at
// URL/.well-known/openid-configuration and the keys at JWKSURL.
type Issuer struct {
	URL     string
	JWKSURL string

	srv *httptest.Server

	mu      sync.Mutex
	keys    []signingKey // published, current last
	down    bool
	jwksHit atomic.Int64
	discHit atomic.Int64
}

type signingKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// New starts an issuer on a loopback port with one RS256 key. Close stops it.
func New() (*Issuer, error) {
	i := &Issuer{}
	if _, err := i.Rotate(jose.RS256, true); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", i.serveDiscovery)
	mux.HandleFunc("GET /keys", i.serveKeys)
	i.srv = httptest.NewServer(i.gate(mux))
	i.URL = i.srv.URL
	i.JWKSURL = i.srv.URL + "/keys"
	return i, nil
}

// Start is New for a test, stopped when the test ends.
func Start(t testing.TB) *Issuer {
	t.Helper()
	i, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(i.Close)
	return i
}

// Close stops the server.
func (i *Issuer) Close() { i.srv.Close() }

// SetDown makes the issuer unreachable (true): every connection is dropped without an
// answer, as when its host is down. false brings it back.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	i.down = down
	i.mu.Unlock()
}

// JWKSRequests and DiscoveryRequests count the requests answered or dropped so far.
func (i *Issuer) JWKSRequests() int64      { return i.jwksHit.Load() }
func (i *Issuer) DiscoveryRequests() int64 { return i.discHit.Load() }

// Rotate makes a new key of alg's type (RS*/PS*: RSA 2048; ES256/384/512: the matching
// curve; EdDSA: Ed25519) the one that signs, and publishes it. keepOld keeps the earlier keys
// published (a rotation's overlap); false withdraws them. It returns the new key's ID.
func (i *Issuer) Rotate(alg jose.SignatureAlgorithm, keepOld bool) (string, error) {
	priv, err := newKey(alg)
	if err != nil {
		return "", err
	}
	kid := randomKID()
	i.mu.Lock()
	defer i.mu.Unlock()
	if !keepOld {
		i.keys = nil
	}
	i.keys = append(i.keys, signingKey{kid: kid, alg: alg, priv: priv})
	return kid, nil
}

func newKey(alg jose.SignatureAlgorithm) (crypto.Signer, error) {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		return rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.ES384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case jose.ES512:
		return ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case jose.EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	default:
		return nil, fmt.Errorf("oidctest: no key type for %s", alg)
	}
}

func randomKID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (i *Issuer) current() signingKey {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.keys[len(i.keys)-1]
}

// Claims are the registered claims of a token for aud issued at now, valid for ttl: iss,
// aud, iat, nbf, exp. Add the platform's own claims to the map.
func (i *Issuer) Claims(aud string, now time.Time, ttl time.Duration) map[string]any {
	return map[string]any{
		"iss": i.URL,
		"aud": aud,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
}

// Sign signs claims with the current key, naming it in the kid header.
func (i *Issuer) Sign(claims map[string]any) (string, error) {
	k := i.current()
	return sign(k.alg, k.priv, k.kid, claims)
}

// SignWithKID signs claims with the current key but names kid in the header, a key the
// issuer does not publish.
func (i *Issuer) SignWithKID(claims map[string]any, kid string) (string, error) {
	k := i.current()
	return sign(k.alg, k.priv, kid, claims)
}

// MustSign is Sign for tests.
func (i *Issuer) MustSign(t testing.TB, claims map[string]any) string {
	t.Helper()
	tok, err := i.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sign(alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Unsigned is claims as a token with alg "none" and an empty signature.
func (i *Issuer) Unsigned(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := `{"alg":"none","typ":"JWT","kid":"` + i.current().kid + `"}`
	return b64(hdr) + "." + b64(string(payload)) + ".", nil
}

// HS256WithPublicKey is claims signed with HS256 under the current public key's PEM bytes as
// the secret: the algorithm-confusion forgery, valid for a verifier that lets the token's alg
// pick how to use a key.
func (i *Issuer) HS256WithPublicKey(claims map[string]any) (string, error) {
	pemBytes, err := i.PublicKeyPEM()
	if err != nil {
		return "", err
	}
	return sign(jose.HS256, pemBytes, i.current().kid, claims)
}

// PublicKeyPEM is the current key's public half, PKIX in PEM.
func (i *Issuer) PublicKeyPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(i.current().priv.Public())
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// gate drops connections while the issuer is down.
func (i *Issuer) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/keys":
			i.jwksHit.Add(1)
		case "/.well-known/openid-configuration":
			i.discHit.Add(1)
		}
		i.mu.Lock()
		down := i.down
		i.mu.Unlock()
		if down {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (i *Issuer) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	var algs []string
	for _, k := range i.keys {
		algs = append(algs, string(k.alg))
	}
	i.mu.Unlock()
	writeJSON(w, map[string]any{
		"issuer":                                i.URL,
		"jwks_uri":                              i.JWKSURL,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": algs,
	})
}

func (i *Issuer) serveKeys(w http.ResponseWriter, _ *http.Request) {
	i.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range i.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	i.mu.Unlock()
	writeJSON(w, set)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
