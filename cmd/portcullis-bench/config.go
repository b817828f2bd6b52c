package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
	"github.com/portcullis-dev/portcullis/services/authn/backend/robot"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

type scenario struct {
	split  bool
	cold   bool // authn cache off: every request pays bcrypt
	scopes int
	// vault signs through this Vault's transit engine instead of the local key file.
	vault   *vaultKey
	noBatch bool
	// pgDSN keeps sessions in this PostgreSQL database; empty: a fresh SQLite file.
	pgDSN string
	// oidcIssuer adds a workload identity backend trusting this issuer (workloadBackend).
	oidcIssuer string
	// noLockout turns the brute-force lockout off, for runs made of failed logins.
	noLockout bool
	// ldap adds an ldap backend on this directory (ldapBackend).
	ldap *ldapDir
	// robots adds a robot backend and an admin listener to create robots through.
	robots bool
	// pats turns personal access tokens on (sso.pat.enabled) with an admin listener to create
	// them through.
	pats bool
	// signers is how many signer replicas the split deployment runs (0: one); the gateway
	// balances over them (gateway.backends.signer lists them all).
	signers int
	// extraSigners are the listen addresses of the replicas beyond the first (set by withServerAt).
	extraSigners []string
	// opaDir is the authz policy directory; empty: the shipped default.
	opaDir string
	// noDecisionLogs turns the authz decision log off (it is on by default).
	noDecisionLogs bool
}

// The bench user, its group and backend, and the service its tokens are for: the request of
// every Basic row, and the one the unavoidable work (unavoidable.go) decides.
const (
	benchUser     = "bench"
	benchPassword = "bench-password"
	benchGroup    = "admins"
	benchBackend  = "users"
	benchService  = "registry.local"
)

type vaultKey struct{ addr, tokenFile string }

func (s scenario) String() string {
	mode, creds, key := "all-in-one", "warm", ""
	if s.split {
		mode = "split"
	}
	if s.cold {
		creds = "cold"
	}
	if s.vault != nil {
		key = ", vault batched"
		if s.noBatch {
			key = ", vault unbatched"
		}
	}
	return fmt.Sprintf("%-10s %-4s creds, %d scope(s)%s", mode, creds, s.scopes, key)
}

// writeUsers creates the bench user at bcrypt's default cost (what htpasswd users get from us).
func writeUsers(dir string) error {
	h, err := bcrypt.GenerateFromPassword([]byte(benchPassword), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "htpasswd"), []byte(benchUser+":"+string(h)+"\n"), 0o600)
}

// serverConfig is the Portcullis configuration of scenario sc, listening on ports (indexed by the
// port constants). Every target of a deployment reads the same one; a further signer replica
// gets its own with another signer address.
func serverConfig(dir string, sc scenario, ports []string) (*app.Config, error) {
	var c app.Config
	c.Log.Level = "info"

	g := &c.Gateway
	g.Listen = ports[portGateway]
	g.PublicURL = "http://" + ports[portGateway]
	g.MetricsListen = ports[portGatewayMetrics]
	g.Services = []string{benchService}
	g.Backends.Authn, g.Backends.Authz = ports[portAuthn], ports[portAuthz]
	g.Backends.Signer = strings.Join(append([]string{ports[portSigner]}, sc.extraSigners...), ",")

	c.Authn.Listen = ports[portAuthn]
	c.Authn.Cache.Disabled = sc.cold
	lockout := !sc.noLockout
	c.Authn.Lockout.Enabled = &lockout
	// The chain: htpasswd first, then the backends the scenario adds.
	chain := []namedBackend{{benchBackend, &htpasswd.Config{Path: filepath.Join(dir, "htpasswd"), Groups: map[string][]string{benchGroup: {benchUser}}}}}
	if sc.oidcIssuer != "" {
		chain = append(chain, namedBackend{"ci", workloadBackend(sc.oidcIssuer)})
	}
	if sc.ldap != nil {
		chain = append(chain, namedBackend{"corp", ldapBackend(sc.ldap)})
	}
	if sc.robots {
		chain = append(chain, namedBackend{"robots", &robot.Config{}})
	}
	for _, b := range chain {
		spec, err := backend.NewSpec(b.name, b.c)
		if err != nil {
			return nil, err
		}
		c.Authn.Backends = append(c.Authn.Backends, spec)
	}
	// Named explicitly: the default store is a file under -data-dir, in the working directory.
	var store storage.Config = &sqlite.Config{Path: sessionsDB(dir)}
	if sc.pgDSN != "" {
		store = &postgres.Config{DSN: sc.pgDSN}
	}
	var err error
	if c.Authn.Store, err = app.NewStoreSpec(store); err != nil {
		return nil, err
	}

	c.Authz.Listen = ports[portAuthz]
	c.Authz.OPA.Dir = sc.opaDir
	if sc.noDecisionLogs {
		off := false
		c.Authz.OPA.DecisionLogs.Console = &off
	}

	c.Signer.Listen = ports[portSigner]
	c.Signer.MetricsListen = ports[portSignerMetrics]
	var key signer.KeyManagerConfig = &local.Config{Path: filepath.Join(dir, "key.pem")}
	if sc.vault != nil {
		v := &vault.Config{Address: sc.vault.addr, Key: "portcullis"}
		v.Auth.TokenFile = sc.vault.tokenFile
		v.Batch.Disabled = sc.noBatch
		key = v
	}
	if c.Signer.Key, err = keymanager.NewSpec(key); err != nil {
		return nil, err
	}

	c.SSO.PAT.Enabled = sc.pats
	if sc.robots || sc.pats { // robots and tokens are created through the admin API
		c.Admin.Listen = ports[portAdmin]
		c.Admin.TokenFile = adminTokenFile(dir)
	}
	// The file then says every setting the server runs with, defaults included: a field left
	// zero would be written out as a zero (an empty authn.lockout.ipv6_prefixes means "the /64
	// only", not the default prefixes).
	c.Defaults()
	return &c, nil
}

// namedBackend is an entry of authn.backends before it is encoded.
type namedBackend struct {
	name string
	c    authn.BackendConfig
}

// writeConfig writes c to path as the YAML file the server reads.
func writeConfig(path string, c *app.Config) error {
	b, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

func sessionsDB(dir string) string { return filepath.Join(dir, "sessions.db") }

// Ports in the generated config, by index.
const (
	portGateway = iota
	portAuthn
	portAuthz
	portSigner
	portSignerMetrics
	portGatewayMetrics // the gateway's, and in all-in-one mode every service's, /metrics
	portAdmin          // admin.listen, with scenario.robots
	numPorts
)
