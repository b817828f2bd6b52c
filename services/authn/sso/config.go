package sso

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/loopback"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
)

// Config is the sso: section: the company IdP people sign in with. The mapping keys
// (subject, groups, labels, claims) mean what they mean for the oidc workload backend.
type Config struct {
	// Issuer is the IdP's issuer URL; its discovery document is
	// <issuer>/.well-known/openid-configuration. https (http only on loopback).
	Issuer string `yaml:"issuer,omitempty"`
	// CAFile is a PEM bundle trusted, besides the system roots, for the IdP.
	CAFile string `yaml:"ca_file,omitempty"`
	// ClientID is Portcullis's client at the IdP.
	ClientID string `yaml:"client_id,omitempty"`
	// ClientSecretFile holds the client secret (client_secret_basic); surrounding white
	// space is ignored. Exactly one of it and PrivateKeyJWT.
	ClientSecretFile string `yaml:"client_secret_file,omitempty"`
	// PrivateKeyJWT authenticates the client with a signed assertion (RFC 7523) instead.
	PrivateKeyJWT *PrivateKeyJWT `yaml:"private_key_jwt,omitempty"`
	// Scopes asked for; default openid, email, profile, offline_access. openid is required;
	// offline_access (or the IdP's equivalent) gives the refresh token revalidation needs.
	Scopes []string `yaml:"scopes,omitempty"`
	// Subject is the claim naming the person: unique and stable at the IdP. Required.
	Subject string `yaml:"subject,omitempty"`
	// Groups are claims whose values (a string or an array of them) become groups.
	Groups claims.Strings `yaml:"groups,omitempty"`
	// Labels maps a label to the claim of its values.
	Labels map[string]string `yaml:"labels,omitempty"`
	// Claims an ID token must carry for its person to sign in at all: claim → pattern(s).
	Claims map[string]claims.Strings `yaml:"claims,omitempty"`
	// EncryptionKeyFile holds 32 random bytes: the AES-256-GCM key refresh tokens are
	// encrypted with at rest. Every authn replica reads the same file.
	EncryptionKeyFile string `yaml:"encryption_key_file,omitempty"`
	// SessionMaxTTL bounds an SSO session (default 168h).
	SessionMaxTTL config.Duration `yaml:"session_max_ttl,omitempty"`
	// RevalidateInterval is how often a session's account is re-checked at the IdP (default
	// 1h, at least 1s).
	RevalidateInterval config.Duration `yaml:"revalidate_interval,omitempty"`
}

// PrivateKeyJWT is the client's signing key for private_key_jwt.
type PrivateKeyJWT struct {
	// KeyFile is a PEM private key (PKCS#8, PKCS#1 or SEC 1): RSA (≥ 2048 bits, RS256), EC
	// P-256/384/521 (ES256/384/512) or Ed25519 (EdDSA).
	KeyFile string `yaml:"key_file"`
	// KeyID is the kid of the assertion's header, as registered at the IdP; default the key's
	// RFC 7638 thumbprint (base64url SHA-256).
	KeyID string `yaml:"key_id"`
}

// Defaults.
var (
	DefaultScopes             = []string{"openid", "email", "profile", "offline_access"}
	DefaultSessionMaxTTL      = 168 * time.Hour
	DefaultRevalidateInterval = time.Hour
)

// KeySize is the length of the refresh token encryption key.
const KeySize = 32

// Defaults fills in what the file left out.
func (c *Config) Defaults() {
	if len(c.Scopes) == 0 {
		c.Scopes = slices.Clone(DefaultScopes)
	}
	if c.SessionMaxTTL == 0 {
		c.SessionMaxTTL = config.Duration(DefaultSessionMaxTTL)
	}
	if c.RevalidateInterval == 0 {
		c.RevalidateInterval = config.Duration(DefaultRevalidateInterval)
	}
}

func (c *Config) mapping() claims.Spec {
	return claims.Spec{
		Subject: c.Subject, Groups: c.Groups, Labels: c.Labels, Claims: c.Claims,
		SubjectHint: "(a claim unique and stable at the IdP, e.g. sub or preferred_username)",
	}
}

// Validate reports every problem at once. It reads the files the section names (to say
// which is missing, unreadable or malformed) and changes nothing; zero durations and empty
// scopes are the defaults and accepted.
func (c *Config) Validate() []error {
	var p config.Problems
	if c.Issuer == "" {
		p.Addf("issuer", "is required")
	} else if err := checkURL(c.Issuer); err != nil {
		p.Addf("issuer", "%v", err)
	}
	if c.CAFile != "" {
		if _, err := readCAFile(c.CAFile); err != nil {
			p.Addf("ca_file", "%v", err)
		}
	}
	if c.ClientID == "" {
		p.Addf("client_id", "is required")
	}
	switch {
	case c.ClientSecretFile != "" && c.PrivateKeyJWT != nil:
		p.Addf("client_secret_file", "set either client_secret_file or private_key_jwt, not both")
	case c.ClientSecretFile != "":
		if _, err := readSecret(c.ClientSecretFile); err != nil {
			p.Addf("client_secret_file", "%v", err)
		}
	case c.PrivateKeyJWT != nil:
		if c.PrivateKeyJWT.KeyFile == "" {
			p.Addf("private_key_jwt.key_file", "is required")
		} else if _, err := readSigningKey(c.PrivateKeyJWT.KeyFile); err != nil {
			p.Addf("private_key_jwt.key_file", "%v", err)
		}
	default:
		p.Addf("client_secret_file", "one of client_secret_file and private_key_jwt.key_file is required")
	}
	if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, "openid") {
		p.Addf("scopes", "must contain openid")
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			p.Addf("scopes", "%q is not a scope", s)
		}
	}
	c.mapping().Validate("", &p)
	if c.EncryptionKeyFile == "" {
		p.Addf("encryption_key_file", "is required (%d random bytes, e.g. head -c %d /dev/urandom)", KeySize, KeySize)
	} else if _, err := readKey(c.EncryptionKeyFile); err != nil {
		p.Addf("encryption_key_file", "%v", err)
	}
	if c.SessionMaxTTL < 0 {
		p.Addf("session_max_ttl", "must not be negative")
	}
	if d := c.RevalidateInterval.D(); d != 0 && d < time.Second {
		p.Addf("revalidate_interval", "must be at least 1s")
	}
	return p.Errs()
}

// checkURL accepts https URLs, and http ones only on loopback hosts (a test IdP): discovery
// and keys fetched in the clear could be swapped for an attacker's.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must not have a query, fragment or user info", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopback.Host(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%q must use https (http only for loopback addresses)", s)
}

// checkEndpoint is checkURL for a discovered endpoint, which may carry a query.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	u.RawQuery = ""
	return checkURL(u.String())
}

func readCAFile(name string) (*x509.CertPool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fileErr(err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificates", name)
	}
	return pool, nil
}

// fileErr says what is wrong with a file without its contents.
func fileErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %v", pe.Path, pe.Err)
	}
	return err
}

func readSecret(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fileErr(err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", name)
	}
	return s, nil
}

func readKey(name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fileErr(err)
	}
	if len(b) != KeySize {
		// The length only: a key written as hex or with a newline is the usual mistake.
		return nil, fmt.Errorf("%s holds %d bytes, want exactly %d random bytes (head -c %d /dev/urandom)", name, len(b), KeySize, KeySize)
	}
	return b, nil
}

// readSigningKey reads a PEM private key usable for a client assertion.
func readSigningKey(name string) (crypto.Signer, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fileErr(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s holds no PEM block", name)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key", name, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not a private key", name)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: RSA key of %d bits, want at least 2048", name, k.N.BitLen())
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256, 384, 521:
			return k, nil
		}
		return nil, fmt.Errorf("%s: unsupported EC curve", name)
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: unsupported key type %T", name, key)
}
