// Package keyid derives the JWT "kid" that registries use to pick a trusted key.
package keyid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// ErrUnsupportedKey is returned for key types, curves or malformed keys that
// no kid can be derived for.
var ErrUnsupportedKey = errors.New("keyid: unsupported public key")

// Mode selects how a kid is derived, to match what the registry computes from
// its configured trust bundle.
type Mode string

const (
	// ModeThumbprint is the RFC 7638 JWK SHA-256 thumbprint, what distribution 3
	// derives from rootcertbundle and what JWKS consumers expect. Distribution
	// 3.x (at least to 3.1.2) drops leading zero bytes of EC coordinates, so
	// for about 1 in 128 P-256 keys its kid differs from this one.
	ModeThumbprint Mode = "thumbprint"
	// ModeLibtrust is the docker/libtrust key ID that distribution 2.x derives
	// from rootcertbundle.
	ModeLibtrust Mode = "libtrust"
)

// Validate reports whether m is a known mode.
func (m Mode) Validate() error {
	switch m {
	case ModeThumbprint, ModeLibtrust:
		return nil
	}
	return fmt.Errorf("keyid: unknown mode %q (want %q or %q)", string(m), ModeThumbprint, ModeLibtrust)
}

// KeyID derives the kid of pub in mode m.
func (m Mode) KeyID(pub crypto.PublicKey) (string, error) {
	switch m {
	case ModeThumbprint:
		return Thumbprint(pub)
	case ModeLibtrust:
		return Libtrust(pub)
	}
	return "", m.Validate()
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of pub, base64url
// without padding.
func Thumbprint(pub crypto.PublicKey) (string, error) {
	if err := check(pub); err != nil {
		return "", err
	}
	jwk := jose.JSONWebKey{Key: pub}
	sum, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// Libtrust returns the docker/libtrust key ID of pub: the first 240 bits of
// SHA-256 over its PKIX DER, base32, in twelve ':'-joined groups of four.
// Ed25519 is refused because libtrust, and so distribution 2.x, cannot
// load such keys: a kid for one would never match.
func Libtrust(pub crypto.PublicKey) (string, error) {
	if _, ok := pub.(ed25519.PublicKey); ok {
		return "", fmt.Errorf("%w: libtrust key IDs exist only for ECDSA and RSA keys", ErrUnsupportedKey)
	}
	if err := check(pub); err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	sum := sha256.Sum256(der)
	// 30 bytes are exactly 48 base32 characters, so there is no padding.
	enc := base32.StdEncoding.EncodeToString(sum[:30])
	groups := make([]string, 0, len(enc)/4)
	for i := 0; i < len(enc); i += 4 {
		groups = append(groups, enc[i:i+4])
	}
	return strings.Join(groups, ":"), nil
}

// check rejects what the encoders would panic on or silently accept: nil or
// zero-valued keys, points off the curve and curves JWT has no algorithm for.
func check(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil || k.X == nil || k.Y == nil {
			return fmt.Errorf("%w: incomplete ECDSA key", ErrUnsupportedKey)
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Errorf("%w: ECDSA curve %s", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		if _, err := k.Bytes(); err != nil {
			return fmt.Errorf("%w: invalid ECDSA key: %v", ErrUnsupportedKey, err)
		}
	case *rsa.PublicKey:
		if k == nil || k.N == nil || k.N.Sign() <= 0 || k.E <= 0 {
			return fmt.Errorf("%w: incomplete RSA key", ErrUnsupportedKey)
		}
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrUnsupportedKey, len(k))
		}
	default:
		return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	return nil
}
