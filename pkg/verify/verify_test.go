package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/portcullis-dev/portcullis/pkg/verify"
)

// issuer is a stand-in for Portcullis's discovery and JWKS endpoints.
type issuer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []jose.JSONWebKey // private
	fetches atomic.Int32
	down    atomic.Bool
	maxAge  string
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{maxAge: "max-age=300"}
	is.rotate(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", 503)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": "portcullis", "jwks_uri": is.srv.URL + "/.well-known/jwks.json"})
	})
	mux.HandleFunc("/.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		is.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		is.mu.Unlock()
		w.Header().Set("Cache-Control", is.maxAge)
		_ = json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// rotate publishes a new key; tokens are signed with the newest.
func (is *issuer) rotate(t *testing.T) {
	t.Helper()
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, jose.JSONWebKey{Key: pk, KeyID: "k" + string(rune('0'+len(is.keys))), Algorithm: "ES256", Use: "sig"})
}

func (is *issuer) newest() jose.JSONWebKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[len(is.keys)-1]
}

type claims struct {
	jwt.Claims
	Access []verify.Access `json:"access,omitempty"`
}

func good(now time.Time) claims {
	return claims{Claims: jwt.Claims{Issuer: "portcullis", Subject: "alice", Audience: jwt.Audience{"registry.local"},
		Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now)},
		Access: []verify.Access{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}}}
}

func sign(t *testing.T, k jose.JSONWebKey, alg jose.SignatureAlgorithm, key any, c claims, extra map[jose.HeaderKey]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.KeyID)
	for h, v := range extra {
		opts = opts.WithHeader(h, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Now()
	is := newIssuer(t)
	k := is.newest()
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&k.Key.(*ecdsa.PrivateKey).PublicKey)
	cases := []struct {
		name string
		tok  func() string
		want error
	}{
		{"good", func() string { return sign(t, k, jose.ES256, k.Key, good(now), nil) }, nil},
		{"expired", func() string {
			c := good(now)
			c.Expiry = jwt.NewNumericDate(now.Add(-time.Minute))
			return sign(t, k, jose.ES256, k.Key, c, nil)
		}, verify.ErrExpired},
		{"not yet valid", func() string {
			c := good(now)
			c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour))
			return sign(t, k, jose.ES256, k.Key, c, nil)
		}, verify.ErrNotYetValid},
		{"wrong issuer", func() string {
			c := good(now)
			c.Issuer = "evil"
			return sign(t, k, jose.ES256, k.Key, c, nil)
		}, verify.ErrIssuer},
		{"wrong audience", func() string {
			c := good(now)
			c.Audience = jwt.Audience{"other.local"}
			return sign(t, k, jose.ES256, k.Key, c, nil)
		}, verify.ErrAudience},
		{"alg none", func() string {
			return `eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSJ9.`
		}, verify.ErrAlgorithm},
		{"HS256 keyed with the public key", func() string { return sign(t, k, jose.HS256, pubDER, good(now), nil) }, verify.ErrAlgorithm},
		{"attacker's key in a jwk header", func() string {
			jwk := jose.JSONWebKey{Key: &attacker.PublicKey, Algorithm: "ES256"}
			return sign(t, k, jose.ES256, attacker, good(now), map[jose.HeaderKey]any{"jwk": jwk})
		}, verify.ErrSignature},
		{"unknown kid", func() string {
			return sign(t, jose.JSONWebKey{KeyID: "nosuch"}, jose.ES256, k.Key, good(now), nil)
		}, verify.ErrUnknownKey},
		{"garbage", func() string { return "not.a.token" }, verify.ErrMalformed},
	}
	v, err := verify.New(verify.Options{URL: is.srv.URL, Audience: "registry.local"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		c, err := v.Verify(context.Background(), tc.tok())
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			continue
		}
		if err == nil && (c.Subject != "alice" || !c.Allows("repository", "alice/app", "push") || c.Allows("repository", "alice/app", "delete") || c.Allows("repository", "bob/app", "pull")) {
			t.Errorf("%s: claims %+v", tc.name, c)
		}
	}
}

// A rotation reaches the verifier through an unknown kid; a burst of unknown kids fetches the
// keys at most once per MinRefreshInterval; cached keys keep working while Portcullis is down.
func TestRotationRefreshAndOutage(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	v, err := verify.New(verify.Options{URL: is.srv.URL, Audience: "registry.local", Now: now, MinRefreshInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, is.newest(), jose.ES256, is.newest().Key, good(now()), nil)); err != nil {
		t.Fatal(err)
	}
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
	// A burst of tokens with unknown kids, once the interval has passed: one fetch, the rest
	// refused from the cache.
	clock.Add(int64(11 * time.Second))
	for range 20 {
		_, _ = v.Verify(ctx, sign(t, jose.JSONWebKey{KeyID: "forged"}, jose.ES256, is.newest().Key, good(now()), nil))
	}
	if n := is.fetches.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after a burst of unknown kids, want 2", n)
	}
	// Rotation: the new key id is fetched once the interval has passed.
	is.rotate(t)
	clock.Add(int64(11 * time.Second))
	if _, err := v.Verify(ctx, sign(t, is.newest(), jose.ES256, is.newest().Key, good(now()), nil)); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := is.fetches.Load(); n != 3 {
		t.Fatalf("%d JWKS fetches after the rotation, want 3", n)
	}
	// Portcullis down and the cache past its max-age: cached keys still verify.
	is.down.Store(true)
	clock.Add(int64(10 * time.Minute))
	if _, err := v.Verify(ctx, sign(t, is.newest(), jose.ES256, is.newest().Key, good(now()), nil)); err != nil {
		t.Fatalf("with Portcullis down and keys cached: %v", err)
	}
	// A verifier that never got keys says unavailable, not "bad token".
	v2, _ := verify.New(verify.Options{URL: is.srv.URL, Audience: "registry.local"})
	if _, err := v2.Verify(ctx, sign(t, is.newest(), jose.ES256, is.newest().Key, good(time.Now()), nil)); !errors.Is(err, verify.ErrUnavailable) {
		t.Fatalf("no keys ever: %v, want ErrUnavailable", err)
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	v, _ := verify.New(verify.Options{URL: is.srv.URL, Audience: "registry.local"})
	h := verify.Middleware(v, func(r *http.Request) (string, string, string) {
		return "repository", "alice/app", r.URL.Query().Get("action")
	},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := verify.FromContext(r.Context())
			_, _ = w.Write([]byte(c.Subject))
		}))
	tok := sign(t, is.newest(), jose.ES256, is.newest().Key, good(time.Now()), nil)
	for _, tc := range []struct {
		name, auth, action string
		want               int
	}{
		{"granted", "Bearer " + tok, "pull", 200},
		{"not granted", "Bearer " + tok, "delete", 403},
		{"no token", "", "pull", 401},
		{"bad token", "Bearer x.y.z", "pull", 401},
	} {
		req := httptest.NewRequest("GET", "/?action="+tc.action, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, rec.Code, rec.Body, tc.want)
		}
		if tc.want == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without a challenge", tc.name)
		}
	}
}

// ca makes a CA (or, with parent, a leaf certified by it) valid from notBefore to notAfter.
func ca(t *testing.T, cn string, isCA bool, notBefore, notAfter time.Time, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: isCA}
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
	return c, k
}

func TestX5CChains(t *testing.T) {
	is := newIssuer(t)
	now := time.Now()
	root, rootKey := ca(t, "portcullis root", true, now.Add(-time.Hour), now.Add(24*time.Hour), nil, nil)
	otherRoot, otherKey := ca(t, "attacker root", true, now.Add(-time.Hour), now.Add(24*time.Hour), nil, nil)
	leaf, leafKey := ca(t, "leaf", false, now.Add(-time.Hour), now.Add(time.Hour), root, rootKey)
	oldLeaf, oldKey := ca(t, "old leaf", false, now.Add(-3*time.Hour), now.Add(-2*time.Hour), root, rootKey)
	forged, forgedKey := ca(t, "forged leaf", false, now.Add(-time.Hour), now.Add(time.Hour), otherRoot, otherKey)
	roots := x509.NewCertPool()
	roots.AddCert(root)

	x5c := func(certs ...*x509.Certificate) map[jose.HeaderKey]any {
		var chain []string
		for _, c := range certs {
			chain = append(chain, base64.StdEncoding.EncodeToString(c.Raw))
		}
		return map[jose.HeaderKey]any{"x5c": chain}
	}
	// The kid names no JWKS key: only the chain can make these tokens good.
	unknown := jose.JSONWebKey{KeyID: "not-in-jwks"}
	cases := []struct {
		name  string
		roots *x509.CertPool
		raw   string
		want  error
	}{
		{"chain to the root", roots, sign(t, unknown, jose.ES256, leafKey, good(now), x5c(leaf)), nil},
		{"chain with the root included", roots, sign(t, unknown, jose.ES256, leafKey, good(now), x5c(leaf, root)), nil},
		{"chain to another root", roots, sign(t, unknown, jose.ES256, forgedKey, good(now), x5c(forged, otherRoot)), verify.ErrChain},
		{"expired leaf", roots, sign(t, unknown, jose.ES256, oldKey, good(now), x5c(oldLeaf)), verify.ErrChain},
		{"good chain, signed by another key", roots, sign(t, unknown, jose.ES256, forgedKey, good(now), x5c(leaf)), verify.ErrSignature},
		{"no roots configured: the chain is ignored, the kid decides", nil, sign(t, unknown, jose.ES256, leafKey, good(now), x5c(leaf)), verify.ErrUnknownKey},
		{"roots configured, no x5c: the JWKS decides", roots, sign(t, is.newest(), jose.ES256, is.newest().Key, good(now), nil), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := verify.New(verify.Options{URL: is.srv.URL, Audience: "registry.local", Roots: tc.roots})
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && (c.Issuer != "portcullis" || !c.Allows("repository", "alice/app", "push")) {
				t.Errorf("claims %+v", c)
			}
		})
	}
}

// Portcullis in Vault mode publishes a key propagation_delay before it signs and sets the
// JWKS max-age below that delay: a verifier that honours a short max-age holds the key when
// its first token comes, even inside MinRefreshInterval of its last fetch.
func TestShortMaxAgeIsHonoured(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	is.maxAge = "public, max-age=2"
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	v, err := verify.New(verify.Options{URL: is.srv.URL, Audience: "registry.local", Now: now, MinRefreshInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, is.newest(), jose.ES256, is.newest().Key, good(now()), nil)); err != nil {
		t.Fatal(err)
	}
	is.rotate(t) // published; signs 6 s later
	clock.Add(int64(3 * time.Second))
	if _, err := v.Verify(ctx, sign(t, is.keys[0], jose.ES256, is.keys[0].Key, good(now()), nil)); err != nil {
		t.Fatalf("old key after the cache went stale: %v", err)
	}
	clock.Add(int64(3 * time.Second))
	if _, err := v.Verify(ctx, sign(t, is.newest(), jose.ES256, is.newest().Key, good(now()), nil)); err != nil {
		t.Fatalf("first token of the new key, 6 s after it was published: %v", err)
	}
	if n := is.fetches.Load(); n != 3 {
		t.Errorf("%d JWKS fetches, want 3 (the first, and one each time the 2 s max-age had run out)", n)
	}
}
