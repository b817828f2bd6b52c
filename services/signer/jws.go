package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The token is a compact JWS (RFC 7515 §7.1) assembled here rather than by a go-jose Signer:
// the protected header only depends on the key (alg, kid, x5c), so it is encoded once per
// key and each token costs one payload encoding and one signature. Verifiers (and our
// tests) parse it with go-jose like any other JWS.

// keyHeader is what signing with one key needs besides the key: the encoded protected
// header and how to turn the key's signature into JWS form. It is immutable once built.
type keyHeader struct {
	prefix []byte // base64url(protected header) + "."
	alg    jose.SignatureAlgorithm
	chain  [][]byte // the x5c the header carries: a renewed certificate means a new header
	ecSize int      // ECDSA: bytes of r and of s in the JWS signature; 0 otherwise
}

// fits reports whether h is still the header for a key with this algorithm and chain.
// Chain() usually hands back the same slices, which bytes.Equal compares by pointer.
func (h *keyHeader) fits(alg jose.SignatureAlgorithm, chain [][]byte) bool {
	if h.alg != alg || len(h.chain) != len(chain) {
		return false
	}
	for i := range chain {
		if !bytes.Equal(h.chain[i], chain[i]) {
			return false
		}
	}
	return true
}

func newKeyHeader(k Key, chain [][]byte) (*keyHeader, error) {
	alg := k.Algorithm()
	want, err := AlgorithmFor(k.Public())
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.ID(), err)
	}
	if want != alg {
		return nil, fmt.Errorf("key %s: algorithm %s does not fit its public key (%s)", k.ID(), alg, want)
	}
	hdr := struct {
		Alg string   `json:"alg"`
		Kid string   `json:"kid"`
		Typ string   `json:"typ"`
		X5c []string `json:"x5c,omitempty"`
	}{Alg: string(alg), Kid: k.ID(), Typ: "JWT"}
	for _, der := range chain {
		hdr.X5c = append(hdr.X5c, base64.StdEncoding.EncodeToString(der))
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("key %s: header: %w", k.ID(), err)
	}
	h := &keyHeader{alg: alg, chain: chain}
	h.prefix = append(base64.RawURLEncoding.AppendEncode(nil, js), '.')
	if pub, ok := k.Public().(*ecdsa.PublicKey); ok {
		h.ecSize = (pub.Curve.Params().BitSize + 7) / 8
	}
	return h, nil
}

// maxCachedKeys bounds the header cache. Only the signing key is ever looked up, so a few
// entries cover a rotation in progress; when full the cache starts over.
const maxCachedKeys = 8

// headerCache maps kid → *keyHeader. Readers load an immutable map without locking;
// writers (a new key, a renewed chain) copy it under mu.
type headerCache struct {
	mu sync.Mutex
	m  atomic.Pointer[map[string]*keyHeader]
}

func (c *headerCache) get(k Key) (*keyHeader, error) {
	id, alg := k.ID(), k.Algorithm()
	chain := k.Chain()
	if m := c.m.Load(); m != nil {
		if h, ok := (*m)[id]; ok && h.fits(alg, chain) {
			return h, nil
		}
	}
	h, err := newKeyHeader(k, chain)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[string]*keyHeader{}
	if old := c.m.Load(); old != nil && len(*old) < maxCachedKeys {
		for kid, v := range *old {
			next[kid] = v
		}
	}
	next[id] = h
	c.m.Store(&next)
	return h, nil
}

// signJWS signs the JWS signing input with k and returns the signature in JWS form.
func signJWS(ctx context.Context, k Key, h *keyHeader, input []byte) ([]byte, error) {
	var digest []byte
	var opts crypto.SignerOpts
	switch h.alg {
	case jose.ES256, jose.RS256:
		d := sha256.Sum256(input)
		digest, opts = d[:], crypto.SHA256
	case jose.ES384:
		d := sha512.Sum384(input)
		digest, opts = d[:], crypto.SHA384
	case jose.EdDSA:
		digest, opts = input, crypto.Hash(0)
	default:
		return nil, fmt.Errorf("unsupported algorithm %s", h.alg)
	}
	sig, err := k.SignJWS(ctx, digest, opts)
	if err == nil {
		if h.ecSize > 0 && len(sig) != 2*h.ecSize {
			return nil, fmt.Errorf("key %s: JWS signature of %d bytes, want %d", k.ID(), len(sig), 2*h.ecSize)
		}
		return sig, nil
	}
	if !errors.Is(err, ErrUnsupported) {
		return nil, err
	}
	// A key without JWS-form signing (in memory: nothing remote to wait for).
	if sig, err = k.Sign(rand.Reader, digest, opts); err != nil {
		return nil, err
	}
	if h.ecSize > 0 {
		return ecdsaRaw(sig, h.ecSize)
	}
	return sig, nil
}

// ecdsaRaw turns an ASN.1 ECDSA signature into JWS's fixed-width r‖s, without big.Int.
func ecdsaRaw(der []byte, size int) ([]byte, error) {
	var seq cryptobyte.String
	var r, s []byte // positive, minimally encoded, without the leading zero
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() {
		return nil, fmt.Errorf("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	for i, v := range [][]byte{r, s} {
		if len(v) > size || (len(v) == 1 && v[0] == 0) {
			return nil, fmt.Errorf("ECDSA signature out of range")
		}
		copy(out[(i+1)*size-len(v):], v)
	}
	return out, nil
}
