// Package local keeps the signing key in a PEM file: the embedded default. The key is
// generated (ECDSA P-256, mode 0600) on first start when the file does not exist.
package local

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
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// Config configures the local key manager.
type Config struct {
	// Path of the PEM private key (EC, PKCS#8 or RSA).
	Path string `yaml:"path"`
	// KeyIDMode is "thumbprint" (RFC 7638, default; registry 3.x) or "libtrust"
	// (registry 2.8 with rootcertbundle).
	KeyIDMode keyid.Mode `yaml:"kid_mode"`
	// Generate creates the key when the file is missing (default true).
	Generate *bool `yaml:"generate"`
}

// Validate reports every problem without touching the file system.
func (c *Config) Validate() []error {
	var p config.Problems
	if c.Path == "" {
		p.Addf("path", "is required")
	}
	if c.KeyIDMode != "" {
		if err := c.KeyIDMode.Validate(); err != nil {
			p.Addf("kid_mode", "%v", err)
		}
	}
	return p.Errs()
}

// Open loads (or generates) the key.
func (c *Config) Open(_ context.Context, deps signer.Deps) (signer.KeyManager, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("local key: %w", errors.Join(errs...))
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mode := c.KeyIDMode
	if mode == "" {
		mode = keyid.ModeThumbprint
	}
	s, err := load(c.Path)
	if errors.Is(err, fs.ErrNotExist) && (c.Generate == nil || *c.Generate) {
		s, err = generate(c.Path, rand.Reader)
		if err == nil {
			log.Info("generated a new signing key", "path", c.Path, "type", "ECDSA P-256")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", c.Path, err)
	}
	alg, err := signer.AlgorithmFor(s.Public())
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", c.Path, err)
	}
	if alg == jose.EdDSA && mode == keyid.ModeLibtrust {
		return nil, fmt.Errorf("local key %s: Ed25519 keys cannot be used with kid_mode libtrust (registry 2.8 does not verify EdDSA)", c.Path)
	}
	id, err := mode.KeyID(s.Public())
	if err != nil {
		return nil, fmt.Errorf("local key %s: %w", c.Path, err)
	}
	return signer.StaticKeys(s, id, alg), nil
}

func load(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var k any
	switch block.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (want EC, RSA or PKCS#8 private key)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	switch s := k.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		return s.(crypto.Signer), nil
	case ed25519.PrivateKey:
		return s, nil
	}
	return nil, fmt.Errorf("unsupported private key type %T", k)
}

func generate(path string, rnd io.Reader) (crypto.Signer, error) {
	var k *ecdsa.PrivateKey
	for {
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rnd); err != nil {
			return nil, err
		}
		// distribution 3.x strips leading zero bytes from the coordinates when it computes a
		// key's thumbprint from a rootcertbundle, so for such keys (1 in 128) its kid would not
		// match RFC 7638's. Drawing again costs nothing and keeps every registry happy.
		if k.X.BitLen() > 248 && k.Y.BitLen() > 248 {
			break
		}
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: two replicas starting together must not overwrite each other's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return load(path)
		}
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return k, nil
}
