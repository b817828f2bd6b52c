// Package vault keeps the signing key in Vault's transit engine: the private key never leaves
// Vault. Versions rotate without any verifier noticing (publish, then activate; see Schedule),
// and concurrent signatures are coalesced into one batch_input call.
package vault

import (
	"net/url"
	"slices"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/config"
	"github.com/portcullis-dev/portcullis/pkg/keyid"
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

// X5CConfig configures the certificate chain mode.
type X5CConfig struct {
	// RootKey is the transit key (same mount) that signs the root and leaf certificates.
	RootKey string `yaml:"root_key"`
	// CommonName of the root certificate (default "Portcullis token root").
	CommonName string `yaml:"common_name"`
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
	if d.X5C != nil && d.X5C.CommonName == "" {
		x := *d.X5C
		x.CommonName = "Portcullis token root"
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
	switch d.Auth.Method {
	case "token":
	case "approle":
		if d.Auth.RoleID == "" {
			p.Addf("auth.role_id", "is required for approle")
		}
		if d.Auth.SecretIDFile == "" {
			p.Addf("auth.secret_id_file", "is required for approle")
		}
	case "kubernetes":
		if d.Auth.Role == "" {
			p.Addf("auth.role", "is required for kubernetes")
		}
	default:
		p.Addf("auth.method", "must be token, approle or kubernetes, not %q", d.Auth.Method)
	}
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
	}
	return p.Errs()
}
