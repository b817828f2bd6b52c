package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/pkg/config"
	"github.com/portcullis-dev/portcullis/pkg/grpctls"
	"github.com/portcullis-dev/portcullis/pkg/keyid"
	"github.com/portcullis-dev/portcullis/services/authn/backends"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
	"github.com/portcullis-dev/portcullis/services/signer/keys"
	yaml "go.yaml.in/yaml/v3"
)

// Config is the whole file; every target reads the sections it runs.
type Config struct {
	Log     LogConfig     `yaml:"log"`
	Gateway GatewayConfig `yaml:"gateway"`
	Authn   AuthnConfig   `yaml:"authn"`
	Authz   AuthzConfig   `yaml:"authz"`
	Signer  SignerConfig  `yaml:"signer"`
	Admin   AdminConfig   `yaml:"admin"`
	// InternalTLS secures the gRPC links of the split deployment with mutual TLS. In
	// -target=all the services talk in-process and it is not used.
	InternalTLS grpctls.Config `yaml:"internal_tls"`
}

// AdminConfig guards the admin gRPC API (portcullis keys list|rotate).
type AdminConfig struct {
	// TokenFile holds the bearer secret admin calls must present; without it the admin API
	// refuses every call.
	TokenFile string `yaml:"token_file"`
	// Listen, in -target=all, is a TCP address serving the admin API (the services otherwise
	// talk in-process only). In the split deployment the signer's listen address serves it.
	Listen string `yaml:"listen"`
}

type LogConfig struct {
	Level string `yaml:"level"`
}

type GatewayConfig struct {
	Listen         string          `yaml:"listen"`
	PublicURL      string          `yaml:"public_url"`
	Realm          string          `yaml:"realm"`
	Services       []string        `yaml:"services"`
	TokenTTL       config.Duration `yaml:"token_ttl"`
	MaxQueryBytes  int             `yaml:"max_query_bytes"`
	BackendTimeout config.Duration `yaml:"backend_timeout"`
	// Backends are the gRPC addresses of the services in the split deployment.
	Backends struct {
		Authn  string `yaml:"authn"`
		Authz  string `yaml:"authz"`
		Signer string `yaml:"signer"`
	} `yaml:"backends"`
}

// GRPCConfig is shared by the three gRPC services in the split deployment.
type GRPCConfig struct {
	Listen string `yaml:"listen"`
	// MetricsListen serves /metrics for this service when it runs alone.
	MetricsListen string `yaml:"metrics_listen"`
}

type AuthnConfig struct {
	GRPCConfig `yaml:",inline"`
	Cache      struct {
		TTL        config.Duration `yaml:"ttl"`
		MaxEntries int             `yaml:"max_entries"`
		Disabled   bool            `yaml:"disabled"`
	} `yaml:"cache"`
	Backends []backends.Spec `yaml:"backends"`
}

type AuthzConfig struct {
	GRPCConfig `yaml:",inline"`
	OPA        opa.Config `yaml:"opa"`
}

type SignerConfig struct {
	GRPCConfig    `yaml:",inline"`
	Issuer        string          `yaml:"issuer"`
	MaxTTL        config.Duration `yaml:"max_ttl"`
	NotBeforeSkew config.Duration `yaml:"not_before_skew"`
	Key           keys.Spec       `yaml:"key"`
}

// Defaults fills in what a file may leave out. It never adds users.
func (c *Config) Defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Log.Level, "info")
	def(&c.Gateway.Listen, "127.0.0.1:5001")
	def(&c.Gateway.Realm, "Portcullis")
	def(&c.Authn.Listen, "127.0.0.1:7001")
	def(&c.Authz.Listen, "127.0.0.1:7002")
	def(&c.Signer.Listen, "127.0.0.1:7003")
	def(&c.Gateway.Backends.Authn, c.Authn.Listen)
	def(&c.Gateway.Backends.Authz, c.Authz.Listen)
	def(&c.Gateway.Backends.Signer, c.Signer.Listen)
	def(&c.Signer.Issuer, "portcullis")
	if c.Gateway.TokenTTL == 0 {
		c.Gateway.TokenTTL = config.Duration(5 * time.Minute)
	}
	if c.Gateway.MaxQueryBytes == 0 {
		c.Gateway.MaxQueryBytes = 8192
	}
	if c.Gateway.BackendTimeout == 0 {
		c.Gateway.BackendTimeout = config.Duration(2 * time.Second)
	}
	if c.Authn.Cache.TTL == 0 {
		c.Authn.Cache.TTL = config.Duration(30 * time.Second)
	}
	if c.Signer.MaxTTL == 0 {
		c.Signer.MaxTTL = config.Duration(time.Hour)
	}
	if c.Signer.NotBeforeSkew == 0 {
		c.Signer.NotBeforeSkew = config.Duration(10 * time.Second)
	}
}

// Validate reports every problem in the file at once; it has no side effects.
func (c *Config) Validate() error {
	var p config.Problems
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.Addf("log.level", "must be debug, info, warn or error, not %q", c.Log.Level)
	}
	if len(c.Gateway.Services) == 0 {
		p.Addf("gateway.services", "list at least one registry service name tokens are issued for")
	}
	for i, s := range c.Gateway.Services {
		if s == "" {
			p.Addf(fmt.Sprintf("gateway.services[%d]", i), "must not be empty")
		}
	}
	if ttl := c.Gateway.TokenTTL.D(); ttl < time.Minute {
		p.Addf("gateway.token_ttl", "must be at least 1m (clients need time to use the token), got %s", ttl)
	} else if ttl > c.Signer.MaxTTL.D() {
		p.Addf("gateway.token_ttl", "%s exceeds signer.max_ttl %s", ttl, c.Signer.MaxTTL.D())
	}
	if c.Gateway.MaxQueryBytes < 1024 {
		p.Addf("gateway.max_query_bytes", "must be at least 1024")
	}
	if c.Gateway.BackendTimeout <= 0 {
		p.Addf("gateway.backend_timeout", "must be positive")
	}
	if c.Gateway.PublicURL != "" {
		if u, err := url.Parse(c.Gateway.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.Addf("gateway.public_url", "must be an absolute http(s) URL")
		}
	}
	if c.Authn.Cache.TTL < 0 {
		p.Addf("authn.cache.ttl", "must not be negative")
	}
	if len(c.Authn.Backends) == 0 {
		p.Addf("authn.backends", "configure at least one backend (anonymous requests work without one, but nobody could log in)")
	}
	names := map[string]bool{}
	for i, b := range c.Authn.Backends {
		path := fmt.Sprintf("authn.backends[%d]", i)
		if b.Name == "" {
			p.Addf(path+".name", "is required")
		} else if names[b.Name] {
			p.Addf(path+".name", "%q is used twice", b.Name)
		}
		names[b.Name] = true
		bc, err := backends.Decode(b)
		if err != nil {
			p.Addf(path, "%v", err)
			continue
		}
		p.AddErrs(path+".config", bc.Validate())
	}
	p.AddErrs("authz.opa", c.Authz.OPA.Validate())
	if c.Signer.Issuer == "" {
		p.Addf("signer.issuer", "is required")
	}
	if c.Signer.NotBeforeSkew < 0 {
		p.Addf("signer.not_before_skew", "must not be negative")
	}
	if c.Admin.Listen != "" && c.Admin.TokenFile == "" {
		p.Addf("admin.listen", "set admin.token_file too: an admin API without a credential refuses every call")
	}
	p.AddErrs("internal_tls", c.InternalTLS.Validate())
	kc, err := keys.Decode(c.Signer.Key)
	if err != nil {
		p.Addf("signer.key", "%v", err)
	} else {
		p.AddErrs("signer.key.config", kc.Validate())
	}
	return p.Err()
}

// Load reads a config file strictly, expanding ${VAR} only when asked to.
func Load(path string, expandEnv bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if expandEnv {
		data = []byte(os.ExpandEnv(string(data)))
	}
	var c Config
	if err := config.Strict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Defaults()
	return &c, nil
}

// DevConfig is the embedded default `portcullis` runs with when no -config is given: sample
// users alice/alice (developers) and admin/admin (admins), the shipped policy, and a local
// key generated under dataDir. For trying Portcullis out only.
func DevConfig(dataDir string) (*Config, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	htpasswd := filepath.Join(dataDir, "htpasswd")
	if _, err := os.Stat(htpasswd); errors.Is(err, os.ErrNotExist) {
		var lines []byte
		for _, u := range []string{"alice", "admin"} {
			h, err := bcrypt.GenerateFromPassword([]byte(u), bcrypt.DefaultCost)
			if err != nil {
				return nil, err
			}
			lines = append(lines, u+":"+string(h)+"\n"...)
		}
		if err := os.WriteFile(htpasswd, lines, 0o600); err != nil {
			return nil, err
		}
	}
	src := fmt.Sprintf(`
gateway:
  services: [registry.local]
authn:
  backends:
    - name: sample-users
      type: htpasswd
      config:
        path: %q
        groups:
          developers: [alice]
          admins: [admin]
signer:
  key:
    type: local
    config:
      path: %q
      kid_mode: %s
`, htpasswd, filepath.Join(dataDir, "signing-key.pem"), keyid.ModeThumbprint)
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		return nil, err
	}
	c.Defaults()
	return &c, nil
}
