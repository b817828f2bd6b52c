package signer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// chainKey is a key whose tokens carry an x5c chain that can be renewed.
type chainKey struct {
	crypto.Signer
	signer.UnimplementedKey
	id    string
	alg   jose.SignatureAlgorithm
	chain atomic.Pointer[[][]byte]
}

func (k *chainKey) ID() string                         { return k.id }
func (k *chainKey) Algorithm() jose.SignatureAlgorithm { return k.alg }
func (k *chainKey) Chain() [][]byte                    { return *k.chain.Load() }

var _ signer.Key = (*chainKey)(nil)

// newChainKey makes a key with a self-signed certificate as its chain; the certificate is
// also returned as the root a verifier would trust.
func newChainKey(t *testing.T, id string, curve elliptic.Curve, alg jose.SignatureAlgorithm) (*chainKey, *x509.Certificate) {
	t.Helper()
	pk, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &chainKey{Signer: pk, id: id, alg: alg}
	return k, k.renew(t)
}

// renew gives the key a new certificate and returns it.
func (k *chainKey) renew(t *testing.T) *x509.Certificate {
	t.Helper()
	p, err := signer.SelfSignedCertificatePEM(k, k.id, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k.chain.Store(&[][]byte{c.Raw})
	return c
}

// rotatingKM hands out its keys in turn, one per SigningKey call.
type rotatingKM struct {
	signer.UnimplementedKeyManager
	keys []signer.Key
	n    atomic.Uint64
}

func (m *rotatingKM) SigningKey(context.Context) (signer.Key, error) {
	return m.keys[(m.n.Add(1)-1)%uint64(len(m.keys))], nil
}

func (m *rotatingKM) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	var out []signer.PublicKey
	for _, k := range m.keys {
		out = append(out, signer.PublicKey{ID: k.ID(), Algorithm: k.Algorithm(), Key: k.Public()})
	}
	return out, nil
}

var allAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.RS256, jose.EdDSA}

// checkToken verifies raw as a verifier trusting root would: the kid names the key, the
// signature verifies with it, and the x5c chain leads to root and certifies that key.
func checkToken(raw, wantKid string, wantKey crypto.PublicKey, root *x509.Certificate) error {
	jws, err := jose.ParseSigned(raw, allAlgs)
	if err != nil {
		return err
	}
	hdr := jws.Signatures[0].Header
	if hdr.KeyID != wantKid {
		return fmt.Errorf("kid %q, want %q", hdr.KeyID, wantKid)
	}
	if _, err := jws.Verify(wantKey); err != nil {
		return fmt.Errorf("kid %s: %w", wantKid, err)
	}
	if root == nil {
		return nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	chains, err := hdr.Certificates(x509.VerifyOptions{Roots: roots})
	if err != nil {
		return fmt.Errorf("kid %s: x5c: %w", wantKid, err)
	}
	if leaf := chains[0][0]; !leaf.PublicKey.(*ecdsa.PublicKey).Equal(wantKey) {
		return fmt.Errorf("kid %s: x5c certifies another key", wantKid)
	}
	return nil
}

// Tokens signed concurrently while the key changes on every call each carry the kid and
// x5c of the key that signed them.
func TestSignConcurrentRotatingKeys(t *testing.T) {
	t.Parallel()
	k1, root1 := newChainKey(t, "kid-1", elliptic.P256(), jose.ES256)
	k2, root2 := newChainKey(t, "kid-2", elliptic.P384(), jose.ES384)
	byKid := map[string]struct {
		pub  crypto.PublicKey
		root *x509.Certificate
	}{"kid-1": {k1.Public(), root1}, "kid-2": {k2.Public(), root2}}
	s := signer.New(signer.Options{Issuer: "i", Audiences: []string{"a"}}, &rotatingKM{keys: []signer.Key{k1, k2}})

	const workers, each = 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	var kids [2]atomic.Int64
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tok, err := s.Sign(context.Background(), signer.Claims{Subject: "u", Audience: "a", TTL: time.Minute, JTI: fmt.Sprint(w, "-", i)})
				if err != nil {
					errs <- err
					continue
				}
				want, ok := byKid[tok.KeyID]
				if !ok {
					errs <- fmt.Errorf("Token.KeyID %q", tok.KeyID)
					continue
				}
				kids[map[string]int{"kid-1": 0, "kid-2": 1}[tok.KeyID]].Add(1)
				errs <- checkToken(tok.Raw, tok.KeyID, want.pub, want.root)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if kids[0].Load() != workers*each/2 || kids[1].Load() != workers*each/2 {
		t.Fatalf("tokens per key = %d, %d; want %d each", kids[0].Load(), kids[1].Load(), workers*each/2)
	}
}

// A renewed certificate for the same kid shows up in the next token's x5c.
func TestSignRenewedChain(t *testing.T) {
	t.Parallel()
	k, root := newChainKey(t, "kid", elliptic.P256(), jose.ES256)
	s := signer.New(signer.Options{Audiences: []string{"a"}}, memKM{k: k})
	sign := func() string {
		tok, err := s.Sign(context.Background(), signer.Claims{Audience: "a", TTL: time.Minute, JTI: "j"})
		if err != nil {
			t.Fatal(err)
		}
		return tok.Raw
	}
	if err := checkToken(sign(), "kid", k.Public(), root); err != nil {
		t.Fatal(err)
	}
	renewed := k.renew(t)
	raw := sign()
	if err := checkToken(raw, "kid", k.Public(), renewed); err != nil {
		t.Fatalf("after renewal: %v", err)
	}
	if err := checkToken(raw, "kid", k.Public(), root); err == nil {
		t.Fatal("after renewal the token still carries the old certificate")
	}
}

// jwsKey signs only through SignJWS: crypto.Signer's Sign fails the test.
type jwsKey struct {
	pk    *ecdsa.PrivateKey
	calls atomic.Int64
	// sig, when set, replaces the signature SignJWS returns.
	sig []byte
}

type ctxKey struct{}

func (k *jwsKey) ID() string                         { return "jws" }
func (k *jwsKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k *jwsKey) Public() crypto.PublicKey           { return k.pk.Public() }
func (k *jwsKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("crypto.Signer used although the key signs in JWS form")
}
func (k *jwsKey) SignJWS(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.calls.Add(1)
	if ctx.Value(ctxKey{}) != "request" {
		return nil, errors.New("SignJWS did not get the request's context")
	}
	if opts.HashFunc() != crypto.SHA256 {
		return nil, fmt.Errorf("opts %v, want SHA256", opts.HashFunc())
	}
	if k.sig != nil {
		return k.sig, nil
	}
	r, s, err := ecdsa.Sign(rand.Reader, k.pk, digest)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}

func (k *jwsKey) Chain() [][]byte { return nil }

var _ signer.Key = (*jwsKey)(nil)

func TestSignPrefersJWSSigner(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := &jwsKey{pk: pk}
	s := signer.New(signer.Options{Audiences: []string{"a"}}, memKM{k: k})
	ctx := context.WithValue(context.Background(), ctxKey{}, "request")
	tok, err := s.Sign(ctx, signer.Claims{Audience: "a", TTL: time.Minute, JTI: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if k.calls.Load() != 1 {
		t.Fatalf("SignJWS called %d times, want 1", k.calls.Load())
	}
	if err := checkToken(tok.Raw, "jws", &pk.PublicKey, nil); err != nil {
		t.Fatal(err)
	}
}

// A JWS-form signature of the wrong size (say, ASN.1 after all) is refused, not published.
func TestSignJWSSignerWrongSize(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	asn1Sig, err := ecdsa.SignASN1(rand.Reader, pk, make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	s := signer.New(signer.Options{Audiences: []string{"a"}}, memKM{k: &jwsKey{pk: pk, sig: asn1Sig}})
	ctx := context.WithValue(context.Background(), ctxKey{}, "request")
	tok, err := s.Sign(ctx, signer.Claims{Audience: "a", TTL: time.Minute, JTI: "j"})
	if !errors.Is(err, signer.ErrUnavailable) || tok.Raw != "" {
		t.Fatalf("Sign = %q, %v; want ErrUnavailable", tok.Raw, err)
	}
}

// plainKey has no JWS-form signing (UnimplementedKey answers ErrUnsupported): the signer
// signs with crypto.Signer's Sign and converts ECDSA's ASN.1 to JWS form.
type plainKey struct {
	*ecdsa.PrivateKey
	signer.UnimplementedKey
	calls *atomic.Int64
}

func (k plainKey) ID() string                         { return "plain" }
func (k plainKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k plainKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	k.calls.Add(1)
	return k.PrivateKey.Sign(r, digest, opts)
}

func TestSignFallsBackToCryptoSigner(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k := plainKey{PrivateKey: pk, calls: new(atomic.Int64)}
	s := signer.New(signer.Options{Audiences: []string{"a"}}, memKM{k: k})
	tok, err := s.Sign(context.Background(), signer.Claims{Audience: "a", TTL: time.Minute, JTI: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if k.calls.Load() != 1 {
		t.Fatalf("Sign called %d times, want 1", k.calls.Load())
	}
	if err := checkToken(tok.Raw, "plain", &pk.PublicKey, nil); err != nil {
		t.Fatal(err)
	}
}

func TestSignAlgorithms(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ek, _ := ed25519.GenerateKey(rand.Reader)
	for _, tt := range []struct {
		alg jose.SignatureAlgorithm
		key crypto.Signer
	}{{jose.ES256, p256}, {jose.ES384, p384}, {jose.RS256, rk}, {jose.EdDSA, ek}} {
		t.Run(string(tt.alg), func(t *testing.T) {
			t.Parallel()
			s := signer.New(signer.Options{Audiences: []string{"a"}}, signer.StaticKeys(tt.key, "k", tt.alg))
			tok, err := s.Sign(context.Background(), signer.Claims{Subject: "alice", Audience: "a", TTL: time.Minute, JTI: "j",
				Access: []scope.Scope{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}}})
			if err != nil {
				t.Fatal(err)
			}
			jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{tt.alg})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(tt.key.Public()); err != nil {
				t.Fatal(err)
			}
			if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "JWT" {
				t.Errorf("typ = %v, want JWT", typ)
			}
		})
	}
}

// A key whose declared algorithm does not fit its public key signs nothing.
func TestSignAlgorithmMismatch(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s := signer.New(signer.Options{Audiences: []string{"a"}}, signer.StaticKeys(pk, "k", jose.ES384))
	if tok, err := s.Sign(context.Background(), signer.Claims{Audience: "a", TTL: time.Minute, JTI: "j"}); err == nil {
		t.Fatalf("Sign = %q, want an error", tok.Raw)
	}
}

// BenchmarkSign is the signer's share of a token, run in parallel like the server's.
func BenchmarkSign(b *testing.B) {
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	x5c := &chainKey{Signer: pk, id: "kid-x5c", alg: jose.ES256}
	cert, _ := signer.SelfSignedCertificatePEM(x5c, "bench", time.Now(), time.Hour)
	blk, _ := pem.Decode(cert)
	x5c.chain.Store(&[][]byte{blk.Bytes, blk.Bytes})
	c := signer.Claims{Subject: "alice", Audience: "registry.local", TTL: 5 * time.Minute, JTI: "0123456789abcdef0123456789abcdef",
		Access: []scope.Scope{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}}}
	for _, bc := range []struct {
		name string
		km   signer.KeyManager
	}{
		{"ES256", signer.StaticKeys(pk, "kid-1", jose.ES256)},
		{"ES256-x5c", memKM{k: x5c}},
	} {
		s := signer.New(signer.Options{Issuer: "portcullis", Audiences: []string{"registry.local"}, MaxTTL: time.Hour}, bc.km)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Sign(context.Background(), c); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
