package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

// testPorts are distinct loopback addresses, one per port index.
func testPorts() []string {
	ports := make([]string, numPorts)
	for i := range ports {
		ports[i] = fmt.Sprintf("127.0.0.1:%d", 10001+i)
	}
	return ports
}

// loadScenario builds sc's config, writes it as the bench does and reads it back as the server
// does (app.Load, then Validate); the file must say everything that was built.
func loadScenario(t *testing.T, dir string, sc scenario) *app.Config {
	t.Helper()
	built, err := serverConfig(dir, sc, testPorts())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := writeConfig(path, built); err != nil {
		t.Fatal(err)
	}
	c, err := app.Load(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want, err := yaml.Marshal(built)
	if err != nil {
		t.Fatal(err)
	}
	got, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the file loads as\n%s\nwant what was built:\n%s", got, want)
	}
	return c
}

// Every scenario the bench runs has a config the server loads and accepts, saying what the
// scenario asks for: its own addresses, the login cache and lockout, the backend chain, the
// store under authn.store (not the old sessions.store), the policy and decision log, the key.
func TestScenarioConfigsLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	teams, err := writePolicy(dir, "teams", 0)
	if err != nil {
		t.Fatal(err)
	}
	acl, err := writePolicy(dir, "acl", 10)
	if err != nil {
		t.Fatal(err)
	}
	ldapD := &ldapDir{url: "ldap://127.0.0.1:3389", caFile: filepath.Join(dir, "ca.pem"), bindPasswordFile: filepath.Join(dir, "ldap-bind"), poolSize: 4}
	vk := &vaultKey{addr: "http://127.0.0.1:8200", tokenFile: filepath.Join(dir, "vault-token")}
	const dsn = "postgres://postgres@127.0.0.1:5432/test_1?sslmode=disable"

	type tc struct {
		name string
		sc   scenario
	}
	var tests []tc
	for _, split := range []bool{false, true} { // benchBasic, benchBasicFixedRate
		for _, cold := range []bool{false, true} {
			for _, n := range []int{1, 5} {
				sc := scenario{split: split, cold: cold, scopes: n}
				tests = append(tests, tc{"basic " + sc.String(), sc})
			}
		}
	}
	tests = append(tests,
		tc{"basic, decision logs off", scenario{scopes: 1, noDecisionLogs: true}},
		tc{"refresh, SQLite", scenario{scopes: 1}},
		tc{"refresh, PostgreSQL", scenario{scopes: 1, pgDSN: dsn}},
		tc{"workload JWT and token exchange, cache", scenario{scopes: 1, oidcIssuer: "http://127.0.0.1:9999"}},
		tc{"workload JWT, no cache", scenario{scopes: 1, cold: true, oidcIssuer: "http://127.0.0.1:9999"}},
		tc{"LDAP warm", scenario{scopes: 1, ldap: ldapD}},
		tc{"LDAP cold", scenario{scopes: 1, cold: true, ldap: ldapD}},
		tc{"robots, cache", scenario{scopes: 1, robots: true}},
		tc{"robots, no cache", scenario{scopes: 1, robots: true, cold: true}},
		tc{"pats, cache", scenario{scopes: 1, pats: true}},
		tc{"pats, no cache", scenario{scopes: 1, pats: true, cold: true}},
		tc{"3 signer replicas", scenario{split: true, scopes: 1, signers: 3, extraSigners: []string{"127.0.0.1:20001", "127.0.0.1:20002"}}},
		tc{"authz default policy", scenario{split: true, scopes: 5}},
		tc{"authz teams policy", scenario{split: true, scopes: 5, opaDir: teams}},
		tc{"authz acl policy", scenario{split: true, scopes: 5, opaDir: acl}},
		tc{"authz acl policy, decision logs off", scenario{split: true, scopes: 5, opaDir: acl, noDecisionLogs: true}},
		tc{"soak", scenario{split: true, scopes: 1, signers: 2, extraSigners: []string{"127.0.0.1:20001"}}},
		tc{"vault batched", scenario{split: true, scopes: 1, vault: vk}},
		tc{"vault unbatched", scenario{split: true, scopes: 1, vault: vk, noBatch: true}},
		tc{"vault all-in-one", scenario{scopes: 1, vault: vk}},
		tc{"enumeration", scenario{scopes: 1, noLockout: true}},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkConfig(t, dir, tt.sc, loadScenario(t, dir, tt.sc))
		})
	}
}

func checkConfig(t *testing.T, dir string, sc scenario, c *app.Config) {
	t.Helper()
	ports := testPorts()
	g := c.Gateway
	// The gateway's metrics are on their own address, where the bench looks for them in
	// all-in-one mode; the token port serves no /metrics.
	if g.Listen != ports[portGateway] || g.PublicURL != "http://"+ports[portGateway] || g.MetricsListen != ports[portGatewayMetrics] {
		t.Errorf("gateway listen %q, public_url %q, metrics_listen %q", g.Listen, g.PublicURL, g.MetricsListen)
	}
	if c.Signer.Listen != ports[portSigner] || c.Signer.MetricsListen != ports[portSignerMetrics] {
		t.Errorf("signer listen %q, metrics_listen %q", c.Signer.Listen, c.Signer.MetricsListen)
	}
	signers := strings.Join(append([]string{ports[portSigner]}, sc.extraSigners...), ",")
	if g.Backends.Authn != ports[portAuthn] || g.Backends.Authz != ports[portAuthz] || g.Backends.Signer != signers {
		t.Errorf("gateway.backends %+v, want signer %q", g.Backends, signers)
	}
	if c.Authn.Cache.Disabled != sc.cold {
		t.Errorf("authn.cache.disabled = %t, want %t", c.Authn.Cache.Disabled, sc.cold)
	}
	// The lockout stays on (the default) in the measured runs; only the enumeration run, made
	// of wrong passwords, turns it off.
	if c.Authn.Lockout.On() == sc.noLockout {
		t.Errorf("authn.lockout on %t with noLockout %t", c.Authn.Lockout.On(), sc.noLockout)
	}

	wantTypes := []string{"htpasswd"}
	if sc.oidcIssuer != "" {
		wantTypes = append(wantTypes, "oidc")
	}
	if sc.ldap != nil {
		wantTypes = append(wantTypes, "ldap")
	}
	if sc.robots {
		wantTypes = append(wantTypes, "robot")
	}
	var types []string
	for _, b := range c.Authn.Backends {
		types = append(types, b.Type)
	}
	if !slices.Equal(types, wantTypes) {
		t.Errorf("backends %v, want %v", types, wantTypes)
	}

	// Every server names its store under authn.store: SQLite in the bench's directory (not
	// the default under -data-dir in the working directory), or the PostgreSQL database given.
	if c.Sessions.Store.Type != "" || len(c.Deprecations()) > 0 {
		t.Errorf("sessions.store %q, deprecations %q: want authn.store only", c.Sessions.Store.Type, c.Deprecations())
	}
	switch st := c.Authn.Store; st.Type {
	case "sqlite":
		var sq sqlite.Config
		if err := st.Config.Decode(&sq); err != nil || sc.pgDSN != "" || sq.Path != sessionsDB(dir) {
			t.Errorf("authn.store sqlite %+v (%v), want path %s and pgDSN %q empty", sq, err, sessionsDB(dir), sc.pgDSN)
		}
	case "postgres":
		var pg postgres.Config
		if err := st.Config.Decode(&pg); err != nil || pg.DSN != sc.pgDSN {
			t.Errorf("authn.store postgres %+v (%v), want dsn %q", pg, err, sc.pgDSN)
		}
	default:
		t.Errorf("authn.store type %q", st.Type)
	}

	if c.Authz.OPA.Dir != sc.opaDir || *c.Authz.OPA.DecisionLogs.Console == sc.noDecisionLogs {
		t.Errorf("authz.opa dir %q, decision log console %t; want %q, %t", c.Authz.OPA.Dir, *c.Authz.OPA.DecisionLogs.Console, sc.opaDir, !sc.noDecisionLogs)
	}
	admin := sc.robots || sc.pats
	if (c.Admin.Listen != "") != admin || (admin && (c.Admin.Listen != ports[portAdmin] || c.Admin.TokenFile != adminTokenFile(dir))) {
		t.Errorf("admin %+v with robots %t, pats %t", c.Admin, sc.robots, sc.pats)
	}
	if c.SSO.PAT.Enabled != sc.pats {
		t.Errorf("sso.pat.enabled %t with pats %t", c.SSO.PAT.Enabled, sc.pats)
	}

	key, err := keymanager.Decode(c.Signer.Key)
	if err != nil {
		t.Fatal(err)
	}
	switch k := key.(type) {
	case *local.Config:
		if sc.vault != nil || k.Path != filepath.Join(dir, "key.pem") {
			t.Errorf("local key %+v with vault %v", k, sc.vault)
		}
	case *vault.Config:
		if sc.vault == nil || k.Address != sc.vault.addr || k.Key != "portcullis" || k.Auth.TokenFile != sc.vault.tokenFile || k.Batch.Disabled != sc.noBatch {
			t.Errorf("vault key %+v, want %+v, batch disabled %t", k, sc.vault, sc.noBatch)
		}
	default:
		t.Errorf("signer.key %T", k)
	}
}

// backendSpec is the loaded config's backend of type typ.
func backendSpec(t *testing.T, c *app.Config, typ string) backend.Spec {
	t.Helper()
	i := slices.IndexFunc(c.Authn.Backends, func(b backend.Spec) bool { return b.Type == typ })
	if i < 0 {
		t.Fatalf("no %s backend in %+v", typ, c.Authn.Backends)
	}
	return c.Authn.Backends[i]
}
