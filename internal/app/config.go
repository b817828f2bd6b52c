package app

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/loopback"

	"github.com/portcullis-dev/portcullis/internal/grpcdial"

	"golang.org/x/crypto/bcrypt"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
)

// Config is the whole file; every target reads the sections it runs.
type Config struct {
	Log     LogConfig     `yaml:"log"`
	Gateway GatewayConfig `yaml:"gateway"`
	Authn   AuthnConfig   `yaml:"authn"`
	Authz   AuthzConfig   `yaml:"authz"`
	Signer  SignerConfig  `yaml:"signer"`
	Admin   AdminConfig   `yaml:"admin"`
	// Sessions are the refresh tokens authn issues (docker login's identity token).
	Sessions SessionsConfig `yaml:"sessions"`
	// InternalTLS secures the gRPC links of the split deployment and the admin listener with
	// mutual TLS, and names who may call what (see serviceRules). In -target=all the services
	// talk in-process and it is used for the admin listener only.
	InternalTLS grpctls.Config `yaml:"internal_tls"`
	// InsecurePlaintextGRPC allows gRPC on non-loopback addresses without internal_tls:
	// anyone who reaches such a port may send passwords to authn or mint tokens.
	InsecurePlaintextGRPC bool `yaml:"insecure_plaintext_grpc"`
	// Tracing exports OpenTelemetry spans over OTLP (off by default).
	Tracing telemetry.TracingConfig `yaml:"tracing"`
	// SSO is how people sign in with the company's identity provider.
	SSO SSOConfig `yaml:"sso"`

	// dataDir is -data-dir: where the default session store lives. A file cannot set it.
	dataDir string
}

// SessionsConfig is the refresh tokens authn issues to clients that ask for offline access
// (docker login), and the store that keeps them. The store is read by the process running
// authn only.
type SessionsConfig struct {
	// Enabled issues refresh tokens (default true). Off, offline logins get none and every
	// refresh is refused.
	Enabled *bool `yaml:"enabled"`
	// IdleTTL ends a session not used for this long (default 720h, 30 days).
	IdleTTL config.Duration `yaml:"idle_ttl"`
	// MaxTTL ends a session this long after login however often it is used (default 2160h).
	MaxTTL config.Duration `yaml:"max_ttl"`
	// Store is the old name of authn.store, still read (with a warning at start); setting
	// both is an error.
	Store StoreSpec `yaml:"store"`
}

// On says whether sessions are enabled.
func (s SessionsConfig) On() bool { return s.Enabled == nil || *s.Enabled }

// SSOConfig is the `sso:` section: how people sign in with the company's identity provider
// (the inline sso.Config: issuer, client, claim mapping, revalidation; off while issuer is
// empty) and what they hold instead of a registry password (personal access tokens, pat).
type SSOConfig struct {
	sso.Config `yaml:",inline"`
	PAT        PATConfig `yaml:"pat"`
}

// On says whether people sign in with an identity provider (sso.issuer is set).
func (s SSOConfig) On() bool { return s.Issuer != "" }

// PATConfig is sso.pat: personal access tokens, secrets a person's tool (a CI server, an
// imagePullSecret) logs in with as the person (`docker login -u alice -p pat_…`). They live in
// the authn store and are managed through the admin API (portcullis pats).
type PATConfig struct {
	// Enabled turns them on (default false): the pat backend joins the chain (as "pat"
	// unless authn.backends lists one) and the admin API gains PersonalAccessTokenAdminService.
	Enabled bool `yaml:"enabled"`
	// MaxTTL caps a token's lifetime; every token has one (default 2160h, 90 days).
	MaxTTL config.Duration `yaml:"max_ttl"`
}

// DefaultDataDir is -data-dir's default.
const DefaultDataDir = ".portcullis"

// storeSpec is the store as configured: authn.store, or its old name sessions.store; the
// zero Spec when neither is set. Both set is a validation error (validateSessions).
func (c *Config) storeSpec() StoreSpec {
	if c.Authn.Store.Type != "" || c.Sessions.Store.Type == "" {
		return c.Authn.Store
	}
	return c.Sessions.Store
}

// storeKey is the key the store came from, for problems and warnings.
func (c *Config) storeKey() string {
	if c.Authn.Store.Type == "" && c.Sessions.Store.Type != "" {
		return "sessions.store"
	}
	return "authn.store"
}

// Deprecations are the old key names the config uses, each a sentence for a WARN at start.
func (c *Config) Deprecations() []string {
	var out []string
	if c.Authn.Store.Type == "" && c.Sessions.Store.Type != "" {
		out = append(out, "sessions.store is the old name of authn.store (it also keeps robots and lockout state): rename the key")
	}
	return out
}

// AuthnStore is authn.store (or sessions.store), or the default: SQLite in the data dir.
func (c *Config) AuthnStore() (StoreSpec, error) {
	if spec := c.storeSpec(); spec.Type != "" {
		return spec, nil
	}
	dir := c.dataDir
	if dir == "" {
		dir = DefaultDataDir
	}
	spec := StoreSpec{Type: "sqlite"}
	err := spec.Config.Encode(map[string]string{"path": filepath.Join(dir, "sessions.db")})
	return spec, err
}

// AdminConfig is the admin gRPC API (portcullis keys list|rotate): a listener of its own in
// the process that runs the signer, serving nothing but the admin service and health.
type AdminConfig struct {
	// TokenFile holds the bearer secret every admin call must present; without it the admin
	// API refuses every call.
	TokenFile string `yaml:"token_file"`
	// Listen is the admin API's TCP address; empty: no admin API.
	Listen string `yaml:"listen"`
	// HTTPListen is the admin REST API's address (grpc-gateway in front of the admin gRPC
	// services, same credential); empty: none. With internal_tls it is HTTPS and wants an
	// admin client certificate as well, so it may listen on the network; without, it is plain
	// HTTP, so loopback only unless insecure_plaintext_grpc says otherwise.
	HTTPListen string `yaml:"http_listen"`
}

type LogConfig struct {
	Level string `yaml:"level"`
	// Format is auto (the default: text on a terminal, JSON otherwise), text or json.
	Format string `yaml:"format"`
}

type GatewayConfig struct {
	Listen string `yaml:"listen"`
	// PublicURL is the gateway's base URL as clients see it; discovery answers with it.
	PublicURL string `yaml:"public_url"`
	// MetricsListen serves /metrics for this process (gateway or all-in-one); empty: off.
	MetricsListen string `yaml:"metrics_listen"`
	// TLS serves HTTPS on Listen; the files are re-read when they change.
	TLS struct {
		CertFile string `yaml:"cert_file"`
		KeyFile  string `yaml:"key_file"`
	} `yaml:"tls"`
	// TrustedProxies (IPs or CIDRs) may name the real client in X-Forwarded-For / Forwarded.
	TrustedProxies []string        `yaml:"trusted_proxies"`
	Realm          string          `yaml:"realm"`
	Services       []string        `yaml:"services"`
	TokenTTL       config.Duration `yaml:"token_ttl"`
	MaxQueryBytes  int             `yaml:"max_query_bytes"`
	BackendTimeout config.Duration `yaml:"backend_timeout"`
	// Backends are the gRPC addresses of the services in the split deployment: host:port,
	// a comma-separated list of replicas, or dns:///name:port (every address DNS returns).
	// Calls are balanced over the replicas that report healthy (balance.go).
	Backends struct {
		Authn  string `yaml:"authn"`
		Authz  string `yaml:"authz"`
		Signer string `yaml:"signer"`
	} `yaml:"backends"`

	// derivePublicURL: the development defaults take the public URL from the address the
	// gateway is listening on (http://localhost:<port>). A file cannot set it.
	derivePublicURL bool
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
	// Bcrypt bounds password hashing, the one CPU sink unauthenticated callers can reach.
	Bcrypt struct {
		// MaxConcurrent comparisons at once (default: the CPUs Go uses).
		MaxConcurrent int `yaml:"max_concurrent"`
		// MaxQueue callers waiting for a slot before the rest are turned away (default 64).
		MaxQueue int `yaml:"max_queue"`
	} `yaml:"bcrypt"`
	// Lockout slows password guessing: failed logins are counted per (account, client
	// address) and per client address, in authn.store, so replicas sharing it agree.
	Lockout LockoutConfig `yaml:"lockout"`
	// Store is authn's state store, {type: sqlite|postgres, config: {...}}: sessions, robot
	// accounts (type: robot) and the lockout's counts; opened when any of them is on.
	// Default: sqlite, <-data-dir>/sessions.db. Old name: sessions.store.
	Store    StoreSpec      `yaml:"store"`
	Backends []backend.Spec `yaml:"backends"`
	// AllowAnonymous lets callers without credentials ask for tokens (default true); the
	// policy decides what they get (the shipped policies: nothing, or public pulls). False:
	// such a request gets 401 with the Basic challenge before any policy runs, as docker_auth
	// answers when its users lack "". The gateway enforces it, so in the split deployment the
	// gateway's config must say it.
	AllowAnonymous *bool `yaml:"allow_anonymous"`
}

// AnonymousAllowed is authn.allow_anonymous with its default.
func (c *AuthnConfig) AnonymousAllowed() bool { return c.AllowAnonymous == nil || *c.AllowAnonymous }

// LockoutConfig is authn.lockout. After a key's max failures it is locked for base_delay, each
// further failure doubling the lock up to max_delay; its failures are forgotten once window
// has passed since the first of them and since its last lock ended.
type LockoutConfig struct {
	// Enabled (default true).
	Enabled *bool `yaml:"enabled"`
	// MaxFailuresPerAccountAddress locks one account from one client address (default 20).
	// The account is never locked from everywhere: that would lock its real user out.
	MaxFailuresPerAccountAddress int `yaml:"max_failures_per_account_address"`
	// MaxFailuresPerAddress locks a client address (an IPv6 client's /64) whatever account
	// it tries (default 100); many users behind one NAT share it.
	MaxFailuresPerAddress int `yaml:"max_failures_per_address"`
	// IPv6Prefixes count IPv6 clients by wider networks too, each locked after its own max
	// failures (default /56 after 400, /48 after 1600): an attacker given a /56 or a /48 has
	// 256 or 65,536 /64s to rotate through. [] counts the /64 only.
	IPv6Prefixes []IPv6PrefixConfig `yaml:"ipv6_prefixes"`
	BaseDelay    config.Duration    `yaml:"base_delay"` // default 1s
	MaxDelay     config.Duration    `yaml:"max_delay"`  // default 15m
	Window       config.Duration    `yaml:"window"`     // default 15m
}

// MarshalYAML leaves ipv6_prefixes out while it is nil, which means the defaults: yaml
// writes a nil slice as [], and an explicit [] reads back as "the /64 only". Programs that
// build a Config (the e2e suite, the bench) write it with yaml.Marshal.
func (l LockoutConfig) MarshalYAML() (any, error) {
	type plain LockoutConfig // the same fields without this method
	var n yaml.Node
	if err := n.Encode(plain(l)); err != nil {
		return nil, err
	}
	if l.IPv6Prefixes == nil {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "ipv6_prefixes" {
				n.Content = slices.Delete(n.Content, i, i+2)
				break
			}
		}
	}
	return &n, nil
}

// IPv6PrefixConfig is one entry of authn.lockout.ipv6_prefixes.
type IPv6PrefixConfig struct {
	Bits        int `yaml:"bits"`
	MaxFailures int `yaml:"max_failures"`
}

// On says whether the lockout is enabled.
func (l LockoutConfig) On() bool { return l.Enabled == nil || *l.Enabled }

// policies are the lockout's policies for (account, address) and address keys.
func (l LockoutConfig) policies() (acct, addr lockout.Policy) {
	p := lockout.Policy{BaseDelay: l.BaseDelay.D(), MaxDelay: l.MaxDelay.D(), Window: l.Window.D()}
	acct, addr = p, p
	acct.MaxFailures, addr.MaxFailures = l.MaxFailuresPerAccountAddress, l.MaxFailuresPerAddress
	return acct, addr
}

// prefixes are the lockout's policies for wider IPv6 networks.
func (l LockoutConfig) prefixes() []lockout.PrefixPolicy {
	p := lockout.Policy{BaseDelay: l.BaseDelay.D(), MaxDelay: l.MaxDelay.D(), Window: l.Window.D()}
	out := make([]lockout.PrefixPolicy, 0, len(l.IPv6Prefixes))
	for _, c := range l.IPv6Prefixes {
		pp := lockout.PrefixPolicy{Bits: c.Bits, Policy: p}
		pp.Policy.MaxFailures = c.MaxFailures
		out = append(out, pp)
	}
	return out
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
	// Audiences are the only aud values the signer signs for (default: gateway.services).
	Audiences []string        `yaml:"audiences"`
	Key       keymanager.Spec `yaml:"key"`
}

// Defaults fills in what a file may leave out. It never adds users.
func (c *Config) Defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "auto")
	def(&c.Gateway.Listen, "127.0.0.1:5001")
	def(&c.Gateway.Realm, "Portcullis")
	def(&c.Authn.Listen, "127.0.0.1:7001")
	def(&c.Authz.Listen, "127.0.0.1:7002")
	def(&c.Signer.Listen, "127.0.0.1:7003")
	def(&c.Gateway.Backends.Authn, c.Authn.Listen)
	def(&c.Gateway.Backends.Authz, c.Authz.Listen)
	def(&c.Gateway.Backends.Signer, c.Signer.Listen)
	def(&c.Signer.Issuer, "portcullis")
	if c.Authz.OPA.DecisionLogs.Console == nil {
		// Every decision is logged unless the file says otherwise: the jti of a token in
		// a registry's log leads to the decision that granted it.
		on := true
		c.Authz.OPA.DecisionLogs.Console = &on
	}
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
	if len(c.Signer.Audiences) == 0 {
		c.Signer.Audiences = slices.Clone(c.Gateway.Services)
	}
	if c.Authn.Bcrypt.MaxConcurrent == 0 {
		c.Authn.Bcrypt.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if c.Authn.Bcrypt.MaxQueue == 0 {
		c.Authn.Bcrypt.MaxQueue = 64
	}
	if l := &c.Authn.Lockout; l.On() {
		if l.MaxFailuresPerAccountAddress == 0 {
			l.MaxFailuresPerAccountAddress = 20
		}
		if l.MaxFailuresPerAddress == 0 {
			l.MaxFailuresPerAddress = 100
		}
		if l.BaseDelay == 0 {
			l.BaseDelay = config.Duration(time.Second)
		}
		if l.MaxDelay == 0 {
			l.MaxDelay = config.Duration(15 * time.Minute)
		}
		if l.Window == 0 {
			l.Window = config.Duration(15 * time.Minute)
		}
		if l.IPv6Prefixes == nil { // an explicit [] keeps the /64 only
			l.IPv6Prefixes = []IPv6PrefixConfig{{Bits: 56, MaxFailures: 400}, {Bits: 48, MaxFailures: 1600}}
		}
	}
	if c.Sessions.IdleTTL == 0 {
		c.Sessions.IdleTTL = config.Duration(30 * 24 * time.Hour)
	}
	if c.SSO.PAT.MaxTTL == 0 {
		c.SSO.PAT.MaxTTL = config.Duration(pats.DefaultMaxTTL)
	}
	if c.SSO.On() {
		c.SSO.Config.Defaults()
	}
	if c.Sessions.MaxTTL == 0 {
		c.Sessions.MaxTTL = config.Duration(90 * 24 * time.Hour)
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
	switch c.Log.Format {
	case "", "auto", "text", "json": // "": a Config built without Defaults
	default:
		p.Addf("log.format", "must be auto, text or json, not %q", c.Log.Format)
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
	switch {
	case c.Gateway.PublicURL != "":
		if u, err := url.Parse(c.Gateway.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			p.Addf("gateway.public_url", "must be an absolute http(s) URL without query, fragment or user")
		}
	case !c.Gateway.derivePublicURL:
		p.Addf("gateway.public_url", "is required: the URL clients reach the gateway at (discovery answers with it, never with a request's Host header)")
	}
	if (c.Gateway.TLS.CertFile == "") != (c.Gateway.TLS.KeyFile == "") {
		p.Addf("gateway.tls", "set both cert_file and key_file, or neither")
	}
	if _, errs := parsePrefixes(c.Gateway.TrustedProxies); len(errs) > 0 {
		p.AddErrs("gateway", errs)
	}
	for _, l := range []struct{ path, addr string }{{"gateway.listen", c.Gateway.Listen}, {"gateway.metrics_listen", c.Gateway.MetricsListen},
		{"authn.metrics_listen", c.Authn.MetricsListen}, {"authz.metrics_listen", c.Authz.MetricsListen}, {"signer.metrics_listen", c.Signer.MetricsListen}} {
		if _, _, err := net.SplitHostPort(l.addr); l.addr != "" && err != nil {
			p.Addf(l.path, "%q is not host:port", l.addr)
		}
	}
	c.validateGRPCAddrs(&p)
	if c.Authn.Cache.TTL < 0 {
		p.Addf("authn.cache.ttl", "must not be negative")
	}
	if c.Authn.Bcrypt.MaxConcurrent < 1 {
		p.Addf("authn.bcrypt.max_concurrent", "must be at least 1")
	}
	if c.Authn.Bcrypt.MaxQueue < 0 {
		p.Addf("authn.bcrypt.max_queue", "must not be negative")
	}
	c.validateLockout(&p)
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
		if b.Type == "pat" && !c.SSO.PAT.Enabled {
			p.Addf(path+".type", "the pat backend needs sso.pat.enabled: true")
		}
		if b.Type != "pat" && b.Name == "pat" && c.SSO.PAT.Enabled && !c.patListed() {
			p.Addf(path+".name", `"pat" is the name of the personal access token backend sso.pat.enabled adds; rename this one or list {name: pat, type: pat}`)
		}
		if b.Type == "sso" && !c.SSO.On() {
			p.Addf(path+".type", "the sso backend needs sso.issuer (the identity provider people sign in with)")
		}
		if b.Type != "sso" && b.Name == "sso" && c.SSO.On() && !c.ssoListed() {
			p.Addf(path+".name", `"sso" is the name of the backend sso.issuer adds for the identity provider's people; rename this one or list {name: sso, type: sso}`)
		}
		if b.SubjectPrefix != "" {
			switch {
			case b.Type == "robot":
				p.Addf(path+".subject_prefix", "the robot backend's subjects are robot:<name> already; it takes no prefix")
			case b.Type == "pat":
				p.Addf(path+".subject_prefix", "the pat backend's subjects are the tokens' owners'; it takes no prefix")
			default:
				if err := identity.CheckSubjectPrefix(b.SubjectPrefix); err != nil {
					p.Addf(path+".subject_prefix", "%v", err)
				}
			}
		}
		bc, err := backend.Decode(b)
		if err != nil {
			p.Addf(path, "%v", err)
			continue
		}
		p.AddErrs(path+".config", bc.Validate())
	}
	p.AddErrs("authz.opa", c.Authz.OPA.Validate())
	p.AddErrs("tracing", c.Tracing.Validate())
	if c.Signer.Issuer == "" {
		p.Addf("signer.issuer", "is required")
	}
	if c.Signer.NotBeforeSkew < 0 {
		p.Addf("signer.not_before_skew", "must not be negative")
	}
	for i, a := range c.Signer.Audiences {
		if a == "" {
			p.Addf(fmt.Sprintf("signer.audiences[%d]", i), "must not be empty")
		}
	}
	for i, s := range c.Gateway.Services {
		if s != "" && len(c.Signer.Audiences) > 0 && !slices.Contains(c.Signer.Audiences, s) {
			p.Addf(fmt.Sprintf("gateway.services[%d]", i), "%q is not in signer.audiences: the signer would refuse to sign its tokens", s)
		}
	}
	if c.Admin.Listen != "" && c.Admin.TokenFile == "" {
		p.Addf("admin.listen", "set admin.token_file too: an admin API without a credential refuses every call")
	}
	// Where it may listen is validateGRPCAddrs' rule: off loopback only with internal_tls
	// (HTTPS, admin client certificate) or insecure_plaintext_grpc.
	if c.Admin.HTTPListen != "" && c.Admin.TokenFile == "" {
		p.Addf("admin.http_listen", "set admin.token_file too: an admin API without a credential refuses every call")
	}
	c.validateSessions(&p)
	c.validateSSO(&p)
	p.AddErrs("internal_tls", c.InternalTLS.Validate())
	kc, err := keymanager.Decode(c.Signer.Key)
	if err != nil {
		p.Addf("signer.key", "%v", err)
	} else {
		p.AddErrs("signer.key.config", kc.Validate())
	}
	return p.Err()
}

func (c *Config) validateLockout(p *config.Problems) {
	l := c.Authn.Lockout
	if !l.On() {
		return
	}
	if l.MaxFailuresPerAccountAddress < 1 {
		p.Addf("authn.lockout.max_failures_per_account_address", "must be at least 1")
	}
	if l.MaxFailuresPerAddress < 1 {
		p.Addf("authn.lockout.max_failures_per_address", "must be at least 1")
	}
	if l.BaseDelay <= 0 {
		p.Addf("authn.lockout.base_delay", "must be positive")
	}
	if l.MaxDelay < l.BaseDelay {
		p.Addf("authn.lockout.max_delay", "%s is below authn.lockout.base_delay %s", l.MaxDelay.D(), l.BaseDelay.D())
	}
	if l.Window <= 0 {
		p.Addf("authn.lockout.window", "must be positive")
	}
	for i, c := range l.IPv6Prefixes {
		if c.Bits < 1 || c.Bits >= 64 {
			p.Addf(fmt.Sprintf("authn.lockout.ipv6_prefixes[%d].bits", i), "%d: must be 1 to 63 (the /64 is max_failures_per_address)", c.Bits)
		}
		if c.MaxFailures < 1 {
			p.Addf(fmt.Sprintf("authn.lockout.ipv6_prefixes[%d].max_failures", i), "must be at least 1")
		}
	}
}

// storeUsed says whether authn opens the session store: for sessions, for the lockout's
// counts, for the robot accounts or for personal access tokens.
func (c *Config) StoreUsed() bool {
	return c.Sessions.On() || c.Authn.Lockout.On() || c.robotsUsed() || c.SSO.PAT.Enabled
}

// patListed says whether authn.backends lists the pat backend itself (where in the chain it
// goes then is the file's choice; otherwise it is added at the end).
func (c *Config) patListed() bool {
	return slices.ContainsFunc(c.Authn.Backends, func(b backend.Spec) bool { return b.Type == "pat" })
}

func (c *Config) validateSSO(p *config.Problems) {
	if c.SSO.On() {
		p.AddErrs("sso", c.SSO.Config.Validate())
		if !c.Sessions.On() {
			p.Addf("sso.issuer", "signing in with an identity provider hands out sessions: it needs sessions.enabled")
		}
		if c.Gateway.PublicURL == "" {
			p.Addf("gateway.public_url", "is required with sso.issuer: the identity provider redirects people back to it")
		}
	} else if !reflect.DeepEqual(c.SSO.Config, sso.Config{}) { // the keys are omitempty: a written Config reads back zero
		p.Addf("sso.issuer", "is required when other sso keys (the identity provider's) are set")
	}
	if t := c.SSO.PAT.MaxTTL.D(); t != 0 && t < time.Minute { // 0: a Config built without Defaults
		p.Addf("sso.pat.max_ttl", "must be at least 1m, got %s", t)
	} else if t > 10*366*24*time.Hour {
		p.Addf("sso.pat.max_ttl", "must be at most ten years (87840h), got %s", t)
	}
}

// robotsUsed says whether a robot backend is configured, whose robots live in the session
// store and are managed through the admin API.
func (c *Config) robotsUsed() bool {
	return slices.ContainsFunc(c.Authn.Backends, func(b backend.Spec) bool { return b.Type == "robot" })
}

func (c *Config) validateSessions(p *config.Problems) {
	s := c.Sessions
	if s.On() {
		if s.IdleTTL <= 0 {
			p.Addf("sessions.idle_ttl", "must be positive")
		}
		if s.MaxTTL <= 0 {
			p.Addf("sessions.max_ttl", "must be positive")
		} else if s.IdleTTL > s.MaxTTL {
			p.Addf("sessions.idle_ttl", "%s exceeds sessions.max_ttl %s", s.IdleTTL.D(), s.MaxTTL.D())
		}
	}
	if c.Authn.Store.Type != "" && c.Sessions.Store.Type != "" {
		p.Addf("sessions.store", "is the old name of authn.store, which is set too: keep authn.store only")
		return
	}
	if !c.StoreUsed() {
		return
	}
	key := c.storeKey()
	spec, err := c.AuthnStore()
	if err != nil {
		p.Addf(key, "%v", err)
		return
	}
	sc, err := decodeStore(spec)
	if err != nil {
		p.Addf(key, "%v", err)
		return
	}
	p.AddErrs(key+".config", sc.Validate())
}

// validateGRPCAddrs refuses plaintext gRPC where a network could reach it: passwords travel to
// authn and the signer mints tokens for whoever asks. Every address a target of this file
// may listen on or dial is checked, so one file is safe for all of them.
func (c *Config) validateGRPCAddrs(p *config.Problems) {
	addrs := []struct{ path, addr string }{
		{"authn.listen", c.Authn.Listen}, {"authz.listen", c.Authz.Listen}, {"signer.listen", c.Signer.Listen},
		{"admin.listen", c.Admin.Listen}, {"admin.http_listen", c.Admin.HTTPListen}, {"gateway.backends.authn", c.Gateway.Backends.Authn},
		{"gateway.backends.authz", c.Gateway.Backends.Authz}, {"gateway.backends.signer", c.Gateway.Backends.Signer},
	}
	for _, a := range addrs {
		if a.addr == "" {
			continue
		}
		each := []string{a.addr}
		if strings.HasPrefix(a.path, "gateway.backends.") { // several replicas: a list or dns:///
			each = grpcdial.Addrs(a.addr)
		}
		for _, addr := range each {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				p.Addf(a.path, "%q is not host:port", addr)
				continue
			}
			if !loopback.Host(host) && !c.InternalTLS.Enabled() && !c.InsecurePlaintextGRPC {
				p.Addf(a.path, "%s is not a loopback address: configure internal_tls (mutual TLS), or set insecure_plaintext_grpc: true to accept unauthenticated plaintext gRPC", addr)
			}
		}
	}
}

// parsePrefixes reads trusted_proxies: each entry an IP (one address) or a CIDR. Every bad
// entry is reported.
func parsePrefixes(entries []string) ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var errs []error
	for i, e := range entries {
		if strings.Contains(e, "/") {
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is not an IP or CIDR", i, e))
				continue
			}
			if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
				pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
			}
			out = append(out, pfx.Masked())
			continue
		}
		ip, err := netip.ParseAddr(e)
		if err != nil || ip.Zone() != "" {
			errs = append(errs, fmt.Errorf("trusted_proxies[%d]: %q is not an IP or CIDR", i, e))
			continue
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, errs
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
	c.Gateway.derivePublicURL = true
	c.dataDir = dataDir
	c.Defaults()
	return &c, nil
}

// LoadConfig reads the config file at path, or without one the development defaults kept in
// dataDir; dev says which. dataDir is also where the default authn store lives.
func LoadConfig(path string, expandEnv bool, dataDir string) (*Config, bool, error) {
	if path == "" {
		c, err := DevConfig(dataDir)
		return c, true, err
	}
	c, err := Load(path, expandEnv)
	if c != nil {
		c.dataDir = dataDir
	}
	return c, false, err
}
