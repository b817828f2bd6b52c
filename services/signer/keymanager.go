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
	// ErrUnsupported: the key manager (or key) cannot do what was asked, such as rotating a
	// local key. UnimplementedKeyManager and UnimplementedKey answer it; toStatus maps it to
	// FailedPrecondition.
	ErrUnsupported = errors.New("signer: not supported by this key manager")
)

// UnsupportedError is an ErrUnsupported whose text is written for the caller (it names what
// would do the job), so toStatus may show it.
type UnsupportedError struct{ Reason string }

func (e *UnsupportedError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrUnsupported) hold.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// Key is a signing key. The rest of the signer never knows where it lives.
//
// It is one closed interface: every ability is a method, and UnimplementedKey gives the
// defaults, so a signer never looks for an ability by type assertion, and a wrapper that
// implements Key cannot lose one without the compiler (or its author) saying so.
type Key interface {
	crypto.Signer
	ID() string
	Algorithm() jose.SignatureAlgorithm
	// SignJWS signs digest with the caller's deadline and returns the signature in JWS form
	// (ECDSA as fixed-width r‖s), so a remote signer saves an ASN.1 round trip per token.
	// ErrUnsupported: the signer uses crypto.Signer's Sign and converts (a key in memory has no
	// deadline to honour).
	SignJWS(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error)
	// Chain is the x5c certificate chain (DER, leaf first) tokens signed with the key carry,
	// so verifiers need to trust only the root; nil: none.
	Chain() [][]byte
}

// UnimplementedKey gives a Key its default abilities: no JWS-form signing, no chain.
// Embed it by value.
type UnimplementedKey struct{}

// SignJWS answers ErrUnsupported: the signer falls back to Sign.
func (UnimplementedKey) SignJWS(context.Context, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, ErrUnsupported
}

// Chain answers nil: tokens carry no x5c chain.
func (UnimplementedKey) Chain() [][]byte { return nil }

// PublicKey is a verification key as published in the JWKS.
type PublicKey struct {
	ID           string
	Algorithm    jose.SignatureAlgorithm
	Key          crypto.PublicKey
	Certificates []*x509.Certificate
}

// KeyVersion is one key version's place in the rotation, for admins.
type KeyVersion struct {
	Version    int
	ID         string
	State      string
	Created    time.Time
	ActiveFrom time.Time
	RetiresAt  time.Time
}

// DefaultJWKSMaxAge is how long verifiers may cache the JWKS of a key manager that does not
// rotate.
const DefaultJWKSMaxAge = time.Minute

// KeyManager hands out the current signing key and every key verifiers should trust.
//
// It is one closed interface: each ability the signer, the admin API and the application
// use is a method here, and UnimplementedKeyManager answers the ones a key manager lacks
// (ErrUnsupported or a neutral default). Nothing discovers an ability by type assertion, so
// a wrapper (metrics, caching) that implements KeyManager must forward every method or the
// build fails; a drifted signature in an implementation fails the build too.
type KeyManager interface {
	SigningKey(ctx context.Context) (Key, error)
	PublicKeys(ctx context.Context) ([]PublicKey, error)
	// Healthy says whether the key manager can sign now; readiness follows it, so a signer
	// that cannot reach its remote key is reported as not serving. Default: nil.
	Healthy(ctx context.Context) error
	// RootCertificates are, for a key manager that signs with an x5c chain, the roots
	// registries should trust instead of individual keys. Default: nil (trust the keys).
	RootCertificates(ctx context.Context) []*x509.Certificate
	// JWKSMaxAge is how long verifiers may cache the JWKS without missing a key before it
	// signs. Default: DefaultJWKSMaxAge.
	JWKSMaxAge(ctx context.Context) time.Duration
	// KeyVersions lists the versions in the rotation, for admins. ErrUnsupported: the admin
	// API shows the signing key as version 1.
	KeyVersions(ctx context.Context) ([]KeyVersion, error)
	// Rotate creates a new key version (it signs only after the propagation delay).
	// Default: an ErrUnsupported that says which key manager rotates.
	Rotate(ctx context.Context) error
	// Close stops the key manager's goroutines and connections. Default: nil.
	Close(ctx context.Context) error
}

// UnimplementedKeyManager gives a KeyManager its default abilities: a key that is always
// healthy, never rotates and is trusted by itself. Embed it by value; a key manager
// overrides what it can do.
type UnimplementedKeyManager struct{}

// Healthy answers nil: a key in memory or in a file is always there.
func (UnimplementedKeyManager) Healthy(context.Context) error { return nil }

// RootCertificates answers nil: registries trust the keys themselves.
func (UnimplementedKeyManager) RootCertificates(context.Context) []*x509.Certificate { return nil }

// JWKSMaxAge answers DefaultJWKSMaxAge.
func (UnimplementedKeyManager) JWKSMaxAge(context.Context) time.Duration { return DefaultJWKSMaxAge }

// KeyVersions answers ErrUnsupported.
func (UnimplementedKeyManager) KeyVersions(context.Context) ([]KeyVersion, error) {
	return nil, ErrUnsupported
}

// Rotate answers ErrUnsupported, naming the key manager that rotates.
func (UnimplementedKeyManager) Rotate(context.Context) error {
	return &UnsupportedError{Reason: "this key manager does not rotate keys (use the vault key manager)"}
}

// Close answers nil: nothing to stop.
func (UnimplementedKeyManager) Close(context.Context) error { return nil }

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
	UnimplementedKey
	id  string
	alg jose.SignatureAlgorithm
}

func (k *staticKey) ID() string                         { return k.id }
func (k *staticKey) Algorithm() jose.SignatureAlgorithm { return k.alg }

type staticKeys struct {
	UnimplementedKeyManager
	k *staticKey
}

var (
	_ KeyManager = (*staticKeys)(nil)
	_ Key        = (*staticKey)(nil)
)

func (m *staticKeys) SigningKey(context.Context) (Key, error) { return m.k, nil }

func (m *staticKeys) PublicKeys(context.Context) ([]PublicKey, error) {
	return []PublicKey{{ID: m.k.id, Algorithm: m.k.alg, Key: m.k.Public()}}, nil
}
