package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
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
	h, err := bcrypt.GenerateFromPassword([]byte("bench-password"), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "htpasswd"), []byte("bench:"+string(h)+"\n"), 0o600)
}

func config(dir string, sc scenario, ports []string) string {
	key := fmt.Sprintf("{type: local, config: {path: %s}}", filepath.Join(dir, "key.pem"))
	if sc.vault != nil {
		key = fmt.Sprintf("{type: vault, config: {address: %q, key: portcullis, auth: {token_file: %q}, batch: {disabled: %t}}}",
			sc.vault.addr, sc.vault.tokenFile, sc.noBatch)
	}
	// Named explicitly: the default store is a file under -data-dir, in the working directory.
	store := fmt.Sprintf("{type: sqlite, config: {path: %s}}", sessionsDB(dir))
	if sc.pgDSN != "" {
		store = fmt.Sprintf("{type: postgres, config: {dsn: %q}}", sc.pgDSN)
	}
	return fmt.Sprintf(`log: {level: info}
gateway:
  listen: %s
  public_url: http://%[1]s
  metrics_listen: %s
  services: [registry.local]
  backends: {authn: %s, authz: %s, signer: "%s"}
authn:
  listen: %s
  cache: {disabled: %t}
  lockout: {enabled: %t}
  backends:
    - {name: users, type: htpasswd, config: {path: %s, groups: {admins: [bench]}}}%s
authz:
  listen: %s%s
signer:
  listen: %s
  metrics_listen: %s
  key: %s
sessions:
  store: %s
%s`, ports[portGateway], ports[portGatewayMetrics], ports[portAuthn], ports[portAuthz], strings.Join(append([]string{ports[portSigner]}, sc.extraSigners...), ","),
		ports[portAuthn], sc.cold, !sc.noLockout, filepath.Join(dir, "htpasswd"), workloadBackend(sc.oidcIssuer)+ldapBackend(sc.ldap)+robotBackend(sc.robots),
		ports[portAuthz], opaDir(sc.opaDir, sc.noDecisionLogs), ports[portSigner], ports[portSignerMetrics], key, store, robotAdmin(sc.robots, dir, ports[portAdmin]))
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
