// Package memory holds a signing key generated in memory at start: for tests and throwaway
// setups, never for anything a registry must keep trusting across restarts.
package memory

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// Config picks the algorithm: ES256 (default), RS256 or EdDSA.
type Config struct {
	Algorithm string `yaml:"algorithm"`
}

// Validate reports every problem.
func (c *Config) Validate() []error {
	var p config.Problems
	switch c.Algorithm {
	case "", "ES256", "RS256", "EdDSA":
	default:
		p.Addf("algorithm", "must be ES256, RS256 or EdDSA, not %q", c.Algorithm)
	}
	return p.Errs()
}

// Open generates the key.
func (c *Config) Open(context.Context, signer.Deps) (signer.KeyManager, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("memory key: %w", errs[0])
	}
	var s crypto.Signer
	var err error
	switch c.Algorithm {
	case "RS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	alg, err := signer.AlgorithmFor(s.Public())
	if err != nil {
		return nil, err
	}
	id, err := keyid.Thumbprint(s.Public())
	if err != nil {
		return nil, err
	}
	return signer.StaticKeys(s, id, alg), nil
}
