//go:build e2e

// The Vault part of the harness: Portcullis configured with a Vault transit key (plain or
// x5c chain mode) and its admin API, the `portcullis keys` command line (the x5c certifier
// `keys certify` included), registries that can be restarted on the same port and storage
// with new trust files, and token probes.

package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/internal/testenv/vaulttest"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

const (
	// maxLeafValidity bounds an x5c leaf: the default x5c.leaf_validity 24h + 10m backdating.
	maxLeafValidity = 24*time.Hour + 10*time.Minute
	// vaultSigningKey and vaultRootKey are the transit key names the Vault suites create.
	vaultSigningKey = "portcullis"
	vaultRootKey    = "portcullis-root"
	// vaultAdminSecret is the admin API's bearer secret (admin.token_file).
	vaultAdminSecret = "e2e-admin-secret-0123456789abcdef"
)

// vaultPortcullisConfig is what the Vault suites vary in a config file.
type vaultPortcullisConfig struct {
	X5C     bool       // sign with an x5c chain under the root transit key
	KIDMode keyid.Mode // thumbprint (default) or libtrust
	// Propagation is signer.key.config.propagation_delay (default 3s); Refresh its
	// refresh_interval (default 500ms).
	Propagation, Refresh time.Duration
	// Auth is signer.key.config.auth (default: a token file holding the shipped signer and
	// rotate policies).
	Auth *vault.AuthConfig
}

// vaultPortcullis is an all-in-one Portcullis whose signing key lives in Vault transit.
type vaultPortcullis struct {
	*portcullis
	Vault *vaulttest.Server
	// AdminAddr serves the admin gRPC API; AdminTokenFile holds its secret.
	AdminAddr      string
	AdminTokenFile string
	Propagation    time.Duration
	// CertifierTokenFile holds the x5c certifier's own Vault token (x5c mode).
	CertifierTokenFile string
	// SignerTokenFile holds the signer's Vault token (unless Auth was given).
	SignerTokenFile string
}

// startVaultSigningKeys creates the transit signing key (and, for x5c, the root key) in v.
func startVaultSigningKeys(t testing.TB, x5c bool) *vaulttest.Server {
	t.Helper()
	v := vaulttest.Start(t)
	v.CreateKey(t, vaultSigningKey, "ecdsa-p256")
	if x5c {
		v.CreateKey(t, vaultRootKey, "ecdsa-p256")
	}
	return v
}

// vaultSignerToken is a Vault token holding exactly the signer's policies shipped in
// deploy/vault (sign, read the key and the x5c certificates, rotate): the suites use least
// privilege, not root. It cannot sign with the x5c root key.
func vaultSignerToken(t testing.TB, v *vaulttest.Server) string {
	t.Helper()
	return v.TokenWithPolicy(t, "portcullis-signer-e2e", shippedPolicies(t, "portcullis.hcl", "portcullis-rotate.hcl"))
}

// vaultCertifierToken is the x5c certifier's own token, with the shipped certifier policy.
func vaultCertifierToken(t testing.TB, v *vaulttest.Server) string {
	t.Helper()
	return v.TokenWithPolicy(t, "portcullis-certifier-e2e", shippedPolicies(t, "portcullis-certifier.hcl"))
}

func shippedPolicies(t testing.TB, files ...string) string {
	t.Helper()
	var policy []byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "vault", f))
		if err != nil {
			t.Fatalf("shipped Vault policy: %v", err)
		}
		policy = append(append(policy, b...), '\n')
	}
	return string(policy)
}

// startVaultAllInOne writes a config file with a Vault transit key and an admin listener,
// and runs `portcullis -config FILE -target=all`.
func startVaultAllInOne(t testing.TB, v *vaulttest.Server, c vaultPortcullisConfig) *vaultPortcullis {
	t.Helper()
	if c.KIDMode == "" {
		c.KIDMode = keyid.ModeThumbprint
	}
	if c.Propagation == 0 {
		c.Propagation = 3 * time.Second
	}
	if c.Refresh == 0 {
		c.Refresh = 500 * time.Millisecond
	}
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "vault-token")
	adminFile := filepath.Join(secrets, "admin-secret")
	files := map[string]string{tokenFile: vaultSignerToken(t, v), adminFile: vaultAdminSecret + "\n"}
	certifierFile := ""
	if c.X5C {
		certifierFile = filepath.Join(secrets, "certifier-token")
		files[certifierFile] = vaultCertifierToken(t, v)
	}
	for name, data := range files {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	key := &vault.Config{
		Address: v.Addr, Key: vaultSigningKey, KeyType: "ecdsa-p256", KeyIDMode: c.KIDMode,
		Auth:             vault.AuthConfig{Method: "token", TokenFile: tokenFile},
		PropagationDelay: config.Duration(c.Propagation), RefreshInterval: config.Duration(c.Refresh),
		RequestTimeout: config.Duration(800 * time.Millisecond),
	}
	if c.Auth != nil {
		key.Auth = *c.Auth
	}
	if c.X5C {
		key.X5C = &vault.X5CConfig{RootKey: vaultRootKey}
	}
	pc, _ := writePortcullisConfig(t, portcullisConfig{
		Key:   keySpec(t, key),
		Admin: app.AdminConfig{TokenFile: adminFile, Listen: adminAddr},
	})
	vp := &vaultPortcullis{portcullis: pc, Vault: v, AdminTokenFile: adminFile, Propagation: c.Propagation, AdminAddr: adminAddr,
		CertifierTokenFile: certifierFile, SignerTokenFile: tokenFile}
	if c.X5C {
		// The signer only reads certificates: the certifier makes them first, as a deployment's
		// init step or sidecar would.
		rows := vp.certify(t)
		if len(rows) != 1 || rows[0].Action != "issued" {
			t.Fatalf("first keys certify: %+v, want version 1 issued", rows)
		}
	}
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	pc.waitReady(t)
	waitUntil(t, "admin API listening on "+vp.AdminAddr, pc.allProcs(), tcpListening(vp.AdminAddr))
	return vp
}

// runPortcullis runs a bin/portcullis subcommand (keys, registry-config) to completion.
func runPortcullis(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return runPortcullisBin(t, portcullisBin(t), args...)
}

// runPortcullisBin runs a subcommand of the portcullis binary bin (this tree's, or an
// earlier release's) to completion.
func runPortcullisBin(t testing.TB, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// The secret comes from the flag only, never from the machine's environment.
	cmd.Env = append(os.Environ(), "PORTCULLIS_ADMIN_TOKEN_FILE=")
	cmd.WaitDelay = stopTimeout
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("$ portcullis %s  [%s, %v]\n%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond),
		exitStatus(err), indent(string(out)))
	return string(out), err
}

// certifyRow is one line of the `portcullis keys certify` table.
type certifyRow struct {
	Version       int
	State, Action string
	NotAfter      string
}

// certify runs `portcullis keys certify` once with the certifier's own token and parses
// the table it prints.
func (vp *vaultPortcullis) certify(t testing.TB) []certifyRow {
	t.Helper()
	out, err := runPortcullis(t, "keys", "certify", "-config", vp.Config, "-vault-token-file", vp.CertifierTokenFile)
	if err != nil {
		t.Fatalf("portcullis keys certify: %v\n%s", err, out)
	}
	var rows []certifyRow
	header := false
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "VERSION" {
			header = true
			continue
		}
		if !header {
			continue
		}
		if len(f) != 4 {
			t.Fatalf("keys certify row %q: want VERSION STATE LEAF NOT-AFTER", l)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("keys certify row %q: %v", l, err)
		}
		rows = append(rows, certifyRow{Version: n, State: f[1], Action: f[2], NotAfter: f[3]})
	}
	if !header {
		t.Fatalf("keys certify printed no table:\n%s", out)
	}
	return rows
}

// keyRow is one line of the `portcullis keys list|rotate` table.
type keyRow struct {
	Version                        int
	State                          string
	Created, ActiveFrom, RetiresAt string // RFC 3339 or "-"
	KeyID                          string
}

// keyTable is the parsed table, in the order printed (by version).
type keyTable []keyRow

func (kt keyTable) version(n int) (keyRow, bool) {
	for _, r := range kt {
		if r.Version == n {
			return r, true
		}
	}
	return keyRow{}, false
}

func (kt keyTable) String() string {
	var b strings.Builder
	for _, r := range kt {
		fmt.Fprintf(&b, "v%d=%s(%s) ", r.Version, r.State, r.KeyID)
	}
	return strings.TrimSpace(b.String())
}

// keys runs `portcullis keys VERB` with the admin secret and parses the table it prints.
func (vp *vaultPortcullis) keys(t testing.TB, verb string) keyTable {
	t.Helper()
	out, err := runPortcullis(t, "keys", verb, "-addr", vp.AdminAddr, "-admin-token-file", vp.AdminTokenFile)
	if err != nil {
		t.Fatalf("portcullis keys %s: %v\n%s", verb, err, out)
	}
	return parseKeyTable(t, out)
}

func parseKeyTable(t testing.TB, out string) keyTable {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "VERSION") {
		t.Fatalf("keys table: want a VERSION header and at least one row, got:\n%s", out)
	}
	var kt keyTable
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 6 {
			t.Fatalf("keys table row %q: %d columns, want 6 (VERSION STATE CREATED ACTIVE FROM RETIRES AT KEY ID)", l, len(f))
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("keys table row %q: version: %v", l, err)
		}
		kt = append(kt, keyRow{Version: n, State: f[1], Created: f[2], ActiveFrom: f[3], RetiresAt: f[4], KeyID: f[5]})
	}
	return kt
}

// wantKeyStates checks the table has exactly the versions of want, in those states, each
// with a key id, timestamps where the state implies them, and distinct key ids.
func wantKeyStates(t testing.TB, kt keyTable, want map[int]string) {
	t.Helper()
	if len(kt) != len(want) {
		t.Fatalf("keys table has %d versions (%s), want %d: %v", len(kt), kt, len(want), want)
	}
	ids := map[string]int{}
	for n, state := range want {
		r, ok := kt.version(n)
		if !ok {
			t.Fatalf("keys table lacks version %d: %s", n, kt)
		}
		if r.State != state {
			t.Fatalf("keys table: version %d is %s, want %s (table: %s)", n, r.State, state, kt)
		}
		if r.KeyID == "" || r.KeyID == "-" {
			t.Fatalf("keys table: version %d has no key id", n)
		}
		if prev, dup := ids[r.KeyID]; dup {
			t.Fatalf("keys table: versions %d and %d share key id %s", prev, n, r.KeyID)
		}
		ids[r.KeyID] = n
		cols := map[string]string{"CREATED": r.Created, "ACTIVE FROM": r.ActiveFrom}
		if state == "published" && r.ActiveFrom == "-" {
			delete(cols, "ACTIVE FROM") // x5c: not certified yet, so not known when it will sign
		}
		for col, v := range cols {
			if _, err := time.Parse(time.RFC3339, v); err != nil {
				t.Fatalf("keys table: version %d %s = %q, want an RFC 3339 time", n, col, v)
			}
		}
		if state == "retiring" {
			if _, err := time.Parse(time.RFC3339, r.RetiresAt); err != nil {
				t.Fatalf("keys table: retiring version %d RETIRES AT = %q, want an RFC 3339 time", n, r.RetiresAt)
			}
		}
	}
}

// waitForKID polls tokens until one is signed with the key id kid, for at most waitTimeout
// (the propagation delay plus the signer's refresh interval, in practice). It returns how
// long that took.
func (vp *vaultPortcullis) waitForKID(t testing.TB, kid string) time.Duration {
	t.Helper()
	start := time.Now()
	waitUntil(t, "tokens signed with kid "+kid, vp.allProcs(), func() error {
		if got := vp.tokenKID(t); got != kid {
			return fmt.Errorf("token kid %s, want %s", got, kid)
		}
		return nil
	})
	return time.Since(start)
}

// tokenKID is the kid of a fresh token for alice (verified against the gateway's JWKS).
func (vp *vaultPortcullis) tokenKID(t testing.TB) string {
	t.Helper()
	return mustToken(t, vp.portcullis, "alice", "alice", "repository:alice/probe:pull").kid
}

// gatewayJWKS fetches /.well-known/jwks.json and its Cache-Control max-age in seconds.
func (vp *vaultPortcullis) gatewayJWKS(t testing.TB) (jose.JSONWebKeySet, int) {
	t.Helper()
	a := do(t, mustRequest(t, http.MethodGet, vp.URL+"/.well-known/jwks.json"))
	if a.status != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json: status %d\n%s", a.status, a.body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(a.body, &set); err != nil {
		t.Fatalf("JWKS: %v\n%s", err, a.body)
	}
	cc := a.header.Get("Cache-Control")
	m := maxAgeRE.FindStringSubmatch(cc)
	if m == nil {
		t.Fatalf("GET /.well-known/jwks.json: Cache-Control %q has no max-age", cc)
	}
	age, _ := strconv.Atoi(m[1])
	return set, age
}

var maxAgeRE = regexp.MustCompile(`max-age=(\d+)`)

// checkJWKSMaxAge checks that verifiers are told to cache the JWKS for less than the
// propagation delay: otherwise a verifier could miss a version that already signs.
func (vp *vaultPortcullis) checkJWKSMaxAge(t testing.TB, maxAge int) {
	t.Helper()
	if maxAge <= 0 || time.Duration(maxAge)*time.Second >= vp.Propagation {
		t.Fatalf("JWKS Cache-Control max-age=%d, want 0 < max-age < propagation_delay %s", maxAge, vp.Propagation)
	}
}

// jwksKIDs lists the kids of a key set, in order.
func jwksKIDs(set jose.JSONWebKeySet) []string {
	out := make([]string, len(set.Keys))
	for i, k := range set.Keys {
		out[i] = k.KeyID
	}
	return out
}

// readJWKSFile reads a jwks.json written by `portcullis registry-config`.
func readJWKSFile(t testing.TB, path string) jose.JSONWebKeySet {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return set
}

// readCertBundle parses every certificate of a PEM bundle.
func readCertBundle(t testing.TB, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			t.Fatalf("%s: PEM block %q, want only CERTIFICATE", path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		certs = append(certs, c)
	}
	return certs
}

// tokenX5C decodes the x5c chain of a token's JOSE header.
func tokenX5C(t testing.TB, raw string) []*x509.Certificate {
	t.Helper()
	seg, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct {
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("token header: %v\n%s", err, b)
	}
	var chain []*x509.Certificate
	for i, s := range h.X5C {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("token x5c[%d]: %v", i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("token x5c[%d]: %v", i, err)
		}
		chain = append(chain, c)
	}
	return chain
}

// checkX5CToken checks what a registry trusting only root does with tok: the x5c chain in
// its header verifies to root, and the leaf certifies the very key the JWKS names by kid.
func checkX5CToken(t testing.TB, vp *vaultPortcullis, tok token, root *x509.Certificate) {
	t.Helper()
	chain := tokenX5C(t, tok.raw)
	if len(chain) == 0 {
		t.Fatalf("token (kid %s) has no x5c header in x5c mode", tok.kid)
	}
	// Short-lived: x5c.leaf_validity (default 24h) plus the certifier's backdating.
	if d := chain[0].NotAfter.Sub(chain[0].NotBefore); d > maxLeafValidity {
		t.Fatalf("token (kid %s) x5c leaf is valid for %s (%s to %s), want at most %s: a stolen signer token must not be worth years",
			tok.kid, d, chain[0].NotBefore, chain[0].NotAfter, maxLeafValidity)
	}
	if time.Until(chain[0].NotAfter) < retireAfter {
		t.Fatalf("token (kid %s) x5c leaf expires at %s, before tokens signed now do", tok.kid, chain[0].NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("token (kid %s) x5c leaf %q does not verify to the root in rootcertbundle.pem: %v",
			tok.kid, chain[0].Subject.CommonName, err)
	}
	set, _ := vp.gatewayJWKS(t)
	keys := set.Key(tok.kid)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with kid %s, want 1", len(keys), tok.kid)
	}
	leafKey, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !leafKey.Equal(keys[0].Key) {
		t.Fatalf("token x5c leaf %q certifies another key than the JWKS's kid %s", chain[0].Subject.CommonName, tok.kid)
	}
}

// ---------------------------------------------------------------------------------------
// Registries that restart with new trust files

// trustedRegistry is a registry on a fixed port and storage dir whose auth section can be
// replaced by restarting it.
type trustedRegistry struct {
	*registry
	kind    registryKind
	port    int
	storage string
	starts  int
}

// startTrustedRegistry starts kind with the auth section from the trust dir written by
// `portcullis registry-config`.
func startTrustedRegistry(t testing.TB, kind registryKind, pc *portcullis, trust string) *trustedRegistry {
	t.Helper()
	port := freePort(t)
	r := &trustedRegistry{kind: kind, port: port, storage: filepath.Join(t.TempDir(), "storage"),
		registry: &registry{Host: fmt.Sprintf("localhost:%d", port), URL: fmt.Sprintf("http://127.0.0.1:%d", port)}}
	r.start(t, pc, trust)
	return r
}

func (r *trustedRegistry) start(t testing.TB, pc *portcullis, trust string) {
	t.Helper()
	auth, err := os.ReadFile(filepath.Join(trust, "auth-token.yml"))
	if err != nil {
		t.Fatal(err)
	}
	r.starts++
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:%d
  secret: portcullis-e2e-%d
%s`, r.storage, r.port, r.port, auth)
	cfgPath := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	name := r.kind.name
	if r.starts > 1 {
		name = fmt.Sprintf("%s-start%d", r.kind.name, r.starts)
	}
	r.proc = startProc(t, name, peer(t, r.kind.bin), "serve", cfgPath)
	waitUntil(t, name+" GET /v2/ answering 401", []*proc{r.proc}, func() error {
		resp, err := httpClient.Get(r.URL + "/v2/")
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("GET /v2/: status %d, want 401", resp.StatusCode)
		}
		wa := resp.Header.Get("WWW-Authenticate")
		if !strings.Contains(wa, `realm="`+pc.Realm+`"`) || !strings.Contains(wa, `service="`+service+`"`) {
			return fmt.Errorf("WWW-Authenticate %q does not name realm %s and service %s", wa, pc.Realm, service)
		}
		return nil
	})
}

// restart stops the registry (SIGTERM) and starts it again on the same port and storage
// with the auth section of a new trust dir.
func (r *trustedRegistry) restart(t testing.TB, pc *portcullis, trust string) {
	t.Helper()
	if r.proc.exited() {
		t.Fatalf("%s exited before its restart: %v", r.proc.name, r.proc.err)
	}
	if err := r.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", r.proc.name, err)
	}
	r.proc.wait()
	if !r.proc.exited() {
		r.proc.kill(t)
	}
	r.start(t, pc, trust)
}

// acceptsToken answers whether the registry takes tok: GET /v2/ with it as the bearer
// token is 200 when the registry verifies the signature, 401 when it does not.
func (r *trustedRegistry) acceptsToken(t testing.TB, tok token) bool {
	t.Helper()
	req := mustRequest(t, http.MethodGet, r.URL+"/v2/")
	req.Header.Set("Authorization", "Bearer "+tok.raw)
	a := do(t, req)
	switch a.status {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("GET %s/v2/ with a token (kid %s): status %d, want 200 or 401\n%s", r.URL, tok.kid, a.status, a.body)
	return false
}

// logContains polls p's log for s (the process writes it asynchronously).
func logContains(t testing.TB, p *proc, s string) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%s to log %q", p.name, s), nil, func() error {
		b, err := os.ReadFile(p.log)
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), s) {
			return errors.New("not logged yet")
		}
		return nil
	})
}
