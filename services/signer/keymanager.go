// Package signer builds and signs registry tokens (compact JWS) with a key from a pluggable
// key manager, and publishes the public keys as a JWKS (go-jose).
package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Sentinel errors; toStatus maps them to gRPC codes.
var (
	ErrInvalidRequest = errors.New("signer: invalid request")
	ErrUnavailable    = errors.New("signer: key manager unavailable")
)

// Key is a signing key. The rest of the signer never knows where it lives.
type Key interface {
	crypto.Signer
	ID() string
	Algorithm() jose.SignatureAlgorithm
}

// ContextSigner is an optional ability of a Key whose signing goes over the network:
// it honours the caller's deadline.
type ContextSigner interface {
	SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// JWSSigner is an optional ability of a Key, preferred over ContextSigner and crypto.Signer:
// signatures already in JWS form (ECDSA as fixed-width r‖s), so a remote signer that can
// produce them saves an ASN.1 round trip per token. It honours the caller's deadline.
type JWSSigner interface {
	SignJWS(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// Chainer is an optional ability of a Key: tokens it signs carry this x5c certificate chain
// (DER, leaf first), so verifiers need to trust only the root.
type Chainer interface {
	Chain() [][]byte
}

// PublicKey is a verification key as published in the JWKS.
type PublicKey struct {
	ID           string
	Algorithm    jose.SignatureAlgorithm
	Key          crypto.PublicKey
	Certificates []*x509.Certificate
}

// HealthChecker is an optional ability of a KeyManager that depends on a remote service:
// readiness follows it, so a signer that cannot sign is reported as not serving.
type HealthChecker interface {
	Healthy(ctx context.Context) error
}

// Closer is an optional ability of a KeyManager holding goroutines or connections.
type Closer interface {
	Close(ctx context.Context) error
}

// RootCertifier is an optional ability of a KeyManager that signs with an x5c chain: the
// root certificates registries should trust instead of individual keys.
type RootCertifier interface {
	RootCertificates(ctx context.Context) []*x509.Certificate
}

// MaxAger is an optional ability of a KeyManager that rotates: how long verifiers may cache
// the JWKS without missing a key before it signs.
type MaxAger interface {
	JWKSMaxAge(ctx context.Context) time.Duration
}

// KeyManager hands out the current signing key and every key verifiers should trust.
type KeyManager interface {
	SigningKey(ctx context.Context) (Key, error)
	PublicKeys(ctx context.Context) ([]PublicKey, error)
}

// Deps are what a key manager may use.
type Deps struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Registerer receives the key manager's metrics; nil means none.
	Registerer prometheus.Registerer
	// TokenLifetime is the longest a token lives: a retired key stays published that long
	// plus the registry's leeway.
	TokenLifetime time.Duration
	// WrapHTTP wraps the transport of a key manager's HTTP client (Vault's), for tracing;
	// nil leaves it as it is.
	WrapHTTP func(http.RoundTripper) http.RoundTripper
}

// KeyManagerConfig is one key manager type's configuration; see package keys for the list.
type KeyManagerConfig interface {
	Validate() []error
	Open(ctx context.Context, deps Deps) (KeyManager, error)
}

// AlgorithmFor picks the JWS algorithm a public key signs with.
func AlgorithmFor(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		}
		return "", fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("RSA key of %d bits is too small (minimum 2048)", k.N.BitLen())
		}
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	}
	return "", fmt.Errorf("unsupported key type %T", pub)
}

// StaticKeys is a KeyManager holding one key that never rotates (a key file, a test key).
func StaticKeys(s crypto.Signer, id string, alg jose.SignatureAlgorithm) KeyManager {
	return &staticKeys{k: &staticKey{Signer: s, id: id, alg: alg}}
}

type staticKey struct {
	crypto.Signer
	id  string
	alg jose.SignatureAlgorithm
}

func (k *staticKey) ID() string                         { return k.id }
func (k *staticKey) Algorithm() jose.SignatureAlgorithm { return k.alg }

type staticKeys struct{ k *staticKey }

func (m *staticKeys) SigningKey(context.Context) (Key, error) { return m.k, nil }

func (m *staticKeys) PublicKeys(context.Context) ([]PublicKey, error) {
	return []PublicKey{{ID: m.k.id, Algorithm: m.k.alg, Key: m.k.Public()}}, nil
}
