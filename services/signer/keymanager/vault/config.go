// Package vault keeps the signing key in Vault's transit engine: the private key never leaves
// Vault. Versions rotate without any verifier noticing (publish, then activate; see Schedule),
// and concurrent signatures are coalesced into one batch_input call.
package vault

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/keyid"
)

// Config configures the Vault transit key manager.
type Config struct {
	// Address of Vault, e.g. https://vault:8200 (default: $VAULT_ADDR).
	Address string `yaml:"address"`
	// Mount is the transit engine's mount path (default "transit").
	Mount string `yaml:"mount"`
	// Key is the transit key's name.
	Key string `yaml:"key"`
	// KeyType is what the key must be: ecdsa-p256 (ES256, default), rsa-2048 or rsa-4096
	// (RS256, PKCS#1 v1.5), ed25519 (EdDSA; registry 3.x only).
	KeyType string `yaml:"key_type"`
	// KeyIDMode: thumbprint (default) or libtrust (registry 2.8 kid matching).
	KeyIDMode keyid.Mode `yaml:"kid_mode"`

	Auth AuthConfig `yaml:"auth"`
	TLS  TLSConfig  `yaml:"tls"`

	// RequestTimeout bounds one Vault call, so a hung Vault turns into Unavailable fast (default 800ms).
	RequestTimeout config.Duration `yaml:"request_timeout"`
	// PropagationDelay is how long a new version is published before it signs (default 10m):
	// longer than any verifier caches the JWKS.
	PropagationDelay config.Duration `yaml:"propagation_delay"`
	// RefreshInterval is how often key versions are re-read (default: a quarter of the
	// propagation delay, at most 1m).
	RefreshInterval config.Duration `yaml:"refresh_interval"`

	Batch BatchConfig `yaml:"batch"`
	// X5C, when set, signs tokens with an x5c chain under a root certificate whose key is a
	// second transit key; registries then trust only the root and rotation never touches them.
	// The serving signer only reads the certificates: `portcullis keys certify` makes them
	// under its own Vault identity (see Certifier).
	X5C *X5CConfig `yaml:"x5c"`
}

// AuthConfig says how Portcullis logs in to Vault.
type AuthConfig struct {
	// Method: token (default), approle or kubernetes.
	Method string `yaml:"method"`
	// TokenFile holds a Vault token; without it $VAULT_TOKEN is used (method token).
	TokenFile string `yaml:"token_file"`
	// RoleID and SecretIDFile for AppRole.
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Role and ServiceAccountTokenFile for Kubernetes
	// (default /var/run/secrets/kubernetes.io/serviceaccount/token).
	Role                    string `yaml:"role"`
	ServiceAccountTokenFile string `yaml:"service_account_token_file"`
	// MountPath of the auth method (default: approle or kubernetes).
	MountPath string `yaml:"mount_path"`
}

// TLSConfig is for https Vault addresses.
type TLSConfig struct {
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
}

// BatchConfig tunes the coalescing of sign calls.
type BatchConfig struct {
	// Disabled sends one Vault call per token.
	Disabled bool `yaml:"disabled"`
	// MaxSize bounds the items of one batch_input call (default 64).
	MaxSize int `yaml:"max_size"`
	// Concurrency is the number of Vault calls in flight (default 2).
	Concurrency int `yaml:"concurrency"`
}

// X5CConfig configures the certificate chain mode. Two identities take part: the certifier
// (`portcullis keys certify`, its own Vault credentials and deploy/vault/portcullis-certifier.hcl)
// signs the root and the leaf certificates with the root transit key and stores them in KV;
// the serving signer (deploy/vault/portcullis.hcl) only reads them, so a stolen serving token
// cannot certify anything.
type X5CConfig struct {
	// RootKey is the transit key (same mount) that signs the root and leaf certificates;
	// only the certifier uses it.
	RootKey string `yaml:"root_key"`
	// CommonName of the root certificate (default "Portcullis token root").
	CommonName string `yaml:"common_name"`
	// LeafValidity is how long a leaf certificate is valid (default 24h). The certifier renews
	// a leaf once less than half of it is left, and the signer signs only with a version whose
	// leaf outlives the token (signer.max_ttl + 60 s), so it must exceed 2 × (max_ttl + 60 s);
	// half of it is how long signing survives a stopped certifier.
	LeafValidity config.Duration `yaml:"leaf_validity"`
	// Store is where the certificates live.
	Store StoreConfig `yaml:"store"`
}

// StoreConfig is the KV version 2 secret holding the root and leaf certificates: the
// certifier writes it, the serving signer reads it.
type StoreConfig struct {
	// Mount of the KV v2 engine (default "secret").
	Mount string `yaml:"mount"`
	// Path of the secret inside the mount (default "portcullis/x5c"); one per signing key.
	Path string `yaml:"path"`
}

var keyTypes = []string{"ecdsa-p256", "rsa-2048", "rsa-4096", "ed25519"}

func (c *Config) withDefaults() Config {
	d := *c
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&d.Mount, "transit")
	def(&d.KeyType, "ecdsa-p256")
	def(&d.Auth.Method, "token")
	if d.KeyIDMode == "" {
		d.KeyIDMode = keyid.ModeThumbprint
	}
	if d.RequestTimeout == 0 {
		d.RequestTimeout = config.Duration(800 * time.Millisecond)
	}
	if d.PropagationDelay == 0 {
		d.PropagationDelay = config.Duration(10 * time.Minute)
	}
	if d.RefreshInterval == 0 {
		d.RefreshInterval = config.Duration(min(time.Minute, d.PropagationDelay.D()/4))
	}
	if d.Batch.MaxSize == 0 {
		d.Batch.MaxSize = 64
	}
	if d.Batch.Concurrency == 0 {
		d.Batch.Concurrency = 2
	}
	if d.X5C != nil {
		x := *d.X5C
		def(&x.CommonName, "Portcullis token root")
		def(&x.Store.Mount, "secret")
		def(&x.Store.Path, "portcullis/x5c")
		if x.LeafValidity == 0 {
			x.LeafValidity = config.Duration(24 * time.Hour)
		}
		d.X5C = &x
	}
	return d
}

// Validate reports every problem without contacting Vault.
func (c *Config) Validate() []error {
	var p config.Problems
	d := c.withDefaults()
	if d.Address != "" {
		if u, err := url.Parse(d.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Addf("address", "must be an http(s) URL")
		}
	}
	if d.Key == "" {
		p.Addf("key", "is required (the transit key's name)")
	}
	if !slices.Contains(keyTypes, d.KeyType) {
		p.Addf("key_type", "must be one of %v, not %q", keyTypes, d.KeyType)
	}
	if err := d.KeyIDMode.Validate(); err != nil {
		p.Addf("kid_mode", "%v", err)
	} else if d.KeyType == "ed25519" && d.KeyIDMode == keyid.ModeLibtrust {
		p.Addf("kid_mode", "ed25519 keys cannot be used with libtrust key ids: registry 2.8 does not verify EdDSA")
	}
	d.Auth.validate(&p, "auth.")
	if d.RequestTimeout < 0 || d.PropagationDelay < 0 || d.RefreshInterval < 0 {
		p.Addf("request_timeout/propagation_delay/refresh_interval", "must not be negative")
	}
	if d.RefreshInterval > 0 && d.PropagationDelay > 0 && d.RefreshInterval >= d.PropagationDelay {
		p.Addf("refresh_interval", "must be shorter than propagation_delay, or a new version could sign before this signer publishes it")
	}
	if d.Batch.MaxSize < 1 || d.Batch.MaxSize > 1000 {
		p.Addf("batch.max_size", "must be between 1 and 1000")
	}
	if d.Batch.Concurrency < 1 || d.Batch.Concurrency > 64 {
		p.Addf("batch.concurrency", "must be between 1 and 64")
	}
	if d.X5C != nil {
		if d.X5C.RootKey == "" {
			p.Addf("x5c.root_key", "is required in x5c mode")
		} else if d.X5C.RootKey == d.Key {
			p.Addf("x5c.root_key", "must differ from key: the root must not sign tokens")
		}
		if d.X5C.LeafValidity < config.Duration(2*registryLeeway) {
			p.Addf("x5c.leaf_validity", "must be at least %s (and more than 2 × (signer.max_ttl + 60s))", 2*registryLeeway)
		}
		if m := d.X5C.Store.Mount; !cleanPath(m) {
			p.Addf("x5c.store.mount", "must be a mount path without leading or trailing slashes, not %q", m)
		}
		if sp := d.X5C.Store.Path; !cleanPath(sp) {
			p.Addf("x5c.store.path", "must be a secret path without leading or trailing slashes, not %q", sp)
		}
	}
	return p.Errs()
}

// validate checks the auth method's required fields; prefix names them ("auth.").
func (a AuthConfig) validate(p *config.Problems, prefix string) {
	if a.Method == "" {
		a.Method = "token"
	}
	switch a.Method {
	case "token":
	case "approle":
		if a.RoleID == "" {
			p.Addf(prefix+"role_id", "is required for approle")
		}
		if a.SecretIDFile == "" {
			p.Addf(prefix+"secret_id_file", "is required for approle")
		}
	case "kubernetes":
		if a.Role == "" {
			p.Addf(prefix+"role", "is required for kubernetes")
		}
	default:
		p.Addf(prefix+"method", "must be token, approle or kubernetes, not %q", a.Method)
	}
}

// cleanPath accepts a/b/c: no empty, "." or ".." segment.
func cleanPath(s string) bool {
	if s == "" {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// checkLeafValidity is the rule Validate cannot check without signer.max_ttl: a leaf renewed
// at half its validity must still outlive a token signed right then.
func (c *Config) checkLeafValidity(tokenLifetime time.Duration) error {
	if c.X5C == nil {
		return nil
	}
	if need := 2 * (tokenLifetime + registryLeeway); c.X5C.LeafValidity.D() <= need {
		return fmt.Errorf("x5c.leaf_validity %s must exceed 2 × (signer.max_ttl %s + 60s) = %s: leaves are renewed at half their validity and must outlive every token",
			c.X5C.LeafValidity.D(), tokenLifetime, need)
	}
	return nil
}
