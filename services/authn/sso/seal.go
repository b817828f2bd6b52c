package sso

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// sealVersion is the first byte of a sealed refresh token; a new format or key scheme gets a
// new one, and an old reader refuses what it does not know rather than misreading it.
const sealVersion = 1

// sealAD prefixes the associated data; the subject follows, so a token sealed for one
// person cannot be replayed as another's session.
const sealAD = "portcullis sso refresh token\x00"

// ErrUnsealable: a sealed refresh token does not open with this key for this subject (another
// key, another subject, tampered with, or not a sealed token at all).
var ErrUnsealable = errors.New("sso: sealed refresh token does not open")

// Sealer encrypts refresh tokens at rest with AES-256-GCM: version byte ‖ 12-byte random
// nonce ‖ ciphertext and tag, the subject bound as associated data.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer makes a Sealer from a KeySize-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("sso: encryption key of %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts token for subject with a fresh random nonce.
func (s *Sealer) Seal(subject, token string) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(token)+s.aead.Overhead())
	out[0] = sealVersion
	// crypto/rand.Read never fails (Go 1.24+: it crashes the program rather than return
	// predictable bytes), so a nonce is never reused for want of randomness.
	_, _ = rand.Read(out[1:])
	return s.aead.Seal(out, out[1:1+ns], []byte(token), ad(subject))
}

// Open decrypts what Seal made for subject; anything else is ErrUnsealable.
func (s *Sealer) Open(subject string, sealed []byte) (string, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealVersion {
		return "", ErrUnsealable
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], ad(subject))
	if err != nil {
		return "", ErrUnsealable
	}
	return string(pt), nil
}

func ad(subject string) []byte { return []byte(sealAD + subject) }
