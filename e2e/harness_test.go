//go:build e2e

// The harness: locating binaries, free ports, starting and stopping processes, waiting
// for readiness, client commands, OCI image layouts, and token requests.

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/bcrypt"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
)

const (
	// service and issuer are what Portcullis and the registries agree on.
	service = "registry.local"
	issuer  = "portcullis"

	// waitTimeout bounds every readiness poll.
	waitTimeout = 30 * time.Second
	// clientTimeout bounds every client command (skopeo, crane, oras, docker).
	clientTimeout = 90 * time.Second
	// stopTimeout is how long a process gets after SIGTERM before it is killed.
	stopTimeout = 5 * time.Second
)

// refusedRE matches how the clients report a refused token or a registry 401/403.
var refusedRE = regexp.MustCompile(`(?i)denied|unauthorized|authentication required|forbidden|insufficient_scope|invalid username`)

// notFoundRE matches a registry's answer for a repository or tag that does not exist.
var notFoundRE = regexp.MustCompile(`(?i)manifest unknown|name unknown|not found`)

// ---------------------------------------------------------------------------------------
// Binaries

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error

	binOnce sync.Once
	binPath string
	binErr  error
)

// repoRoot is the directory holding Portcullis's go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(data, []byte("module github.com/portcullis-dev/portcullis\n")) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.mod of github.com/portcullis-dev/portcullis above the working directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatalf("repo root: %v", rootErr)
	}
	return rootDir
}

// portcullisBin is bin/portcullis (or $PORTCULLIS_BIN), built once per run.
func portcullisBin(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	binOnce.Do(func() {
		if p := os.Getenv("PORTCULLIS_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			if binErr == nil {
				_, binErr = os.Stat(binPath)
			}
			return
		}
		// Always (re)build: a stale binary would test yesterday's code. Cached, this is quick.
		binPath = filepath.Join(root, "bin", "portcullis")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/portcullis")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/portcullis: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("portcullis binary: %v", binErr)
	}
	return binPath
}

// peer finds a peer binary: first in .cache/bin (scripts/install-tools.sh), then on PATH.
// A missing peer fails the test: the suite must not pass by skipping what it exists to test.
func peer(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), ".cache", "bin", name)
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return p
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("peer binary %q not found in .cache/bin or on PATH (run scripts/install-tools.sh all, "+
		"or apt-get install skopeo docker-registry docker.io)", name)
	return ""
}

// ---------------------------------------------------------------------------------------
// Ports

var (
	portMu    sync.Mutex
	usedPorts = map[int]bool{}
)

// freePort returns a loopback TCP port that is free and that this test binary has not
// handed out before, so parallel tests never pick the same one. It picks below the
// kernel's ephemeral range: a port from there could be taken as the source port of some
// outgoing connection between our check and the server's bind.
func freePort(t testing.TB) int {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	lo, hi := portRange()
	for range 500 {
		p := lo + rand.IntN(hi-lo)
		if usedPorts[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		_ = l.Close()
		usedPorts[p] = true
		return p
	}
	t.Fatalf("free port: none free in [%d, %d) after 500 tries", lo, hi)
	return 0
}

// portRange is [lo, hi) below the ephemeral port range (Linux default 32768–60999).
func portRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	if hi < 12000 { // an unusual range: stay above the well-known and common ports
		return 61000, 65000
	}
	return hi - 10000, hi
}

// ---------------------------------------------------------------------------------------
// Processes

// proc is a started server process whose output goes to a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set before done is closed
}

// startProc starts a long-running server. Its stdout and stderr go to NAME.log in a temp
// dir; the process gets SIGTERM (then SIGKILL) in t.Cleanup, and when the test failed the
// tail of the log is printed.
func startProc(t testing.TB, name string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "$ %s %s\n", bin, strings.Join(args, " "))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopTimeout
	if err := cmd.Start(); err != nil {
		cancel()
		_ = f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		p.wait()
		if data, err := os.ReadFile(p.log); err == nil && crashRE.Match(data) {
			t.Errorf("%s logged a panic or data race (see the log tail below)", p.name)
		}
		if t.Failed() {
			p.dumpTail(t, 60)
		}
	})
	return p
}

// crashRE finds a panic, a recovered handler panic, or a race report in a server log.
var crashRE = regexp.MustCompile(`(?m)^panic: |panic in HTTP handler|WARNING: DATA RACE`)

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) wait() {
	select {
	case <-p.done:
	case <-time.After(2 * stopTimeout):
	}
}

// kill ends the process at once with SIGKILL (a crash, not a shutdown).
func (p *proc) kill(t testing.TB) {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s already exited: %v", p.name, p.err)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	p.wait()
	if !p.exited() {
		t.Fatalf("%s did not exit after SIGKILL", p.name)
	}
}

func (p *proc) dumpTail(t testing.TB, lines int) {
	data, err := os.ReadFile(p.log)
	if err != nil {
		t.Logf("%s: read log: %v", p.name, err)
		return
	}
	ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	status := "running"
	if p.exited() {
		status = fmt.Sprintf("exited: %v", p.err)
	}
	t.Logf("---- last %d lines of %s (%s) ----\n%s\n---- end of %s ----",
		len(ls), p.name, status, strings.Join(ls, "\n"), p.name)
}

// waitUntil polls cond every 100ms for at most waitTimeout. It fails at once when one of
// procs exits: a crashed server never becomes ready.
func waitUntil(t testing.TB, what string, procs []*proc, cond func() error) {
	t.Helper()
	testutil.WaitFor(t, waitTimeout, 100*time.Millisecond, what, func() error {
		last := cond()
		if last == nil {
			return nil
		}
		for _, p := range procs {
			if p.exited() { // its log tail is printed by its cleanup
				return testutil.Abort(fmt.Errorf("%s exited (%v); last check: %v", p.name, p.err, last))
			}
		}
		return last
	})
}

// httpClient is for the suite's own requests; every request is bounded.
var httpClient = &http.Client{Timeout: 5 * time.Second}

// httpStatus answers whether GET url returned want.
func httpStatus(url string, want int) func() error {
	return func() error {
		resp, err := httpClient.Get(url)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
		}
		return nil
	}
}

// ---------------------------------------------------------------------------------------
// Portcullis

// portcullis is a running Portcullis deployment: one all-in-one process or four split ones.
type portcullis struct {
	// URL is the gateway's base URL with host name localhost (clients refuse IP realms).
	URL   string
	Realm string
	// Dir holds the config or data dir, the signing key and the registry trust files.
	Dir string
	// Config is the config file; empty for the development defaults (-data-dir Dir).
	Config string
	// Procs are the processes by target (all, or gateway, authn, authz, signer).
	Procs map[string]*proc
	// GRPC are the split services' gRPC addresses by target.
	GRPC map[string]string
	// MetricsURL is the gateway's Prometheus endpoint (gateway.metrics_listen), when the
	// config file sets one.
	MetricsURL string
	// PKI is the split deployment's internal CA and per-role certificates.
	PKI *internalPKI
}

func (pc *portcullis) allProcs() []*proc {
	ps := make([]*proc, 0, len(pc.Procs))
	for _, p := range pc.Procs {
		ps = append(ps, p)
	}
	return ps
}

// startAllInOneDev runs `portcullis -data-dir DIR -gateway.listen=…`: the embedded development
// defaults (alice/alice in developers, admin/admin in admins, thumbprint key ids).
func startAllInOneDev(t testing.TB) *portcullis {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	pc := &portcullis{
		URL: fmt.Sprintf("http://localhost:%d", port), Dir: dir,
		Procs: map[string]*proc{},
	}
	pc.Realm = pc.URL + "/token"
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t),
		"-data-dir", filepath.Join(dir, "data"), fmt.Sprintf("-gateway.listen=127.0.0.1:%d", port))
	pc.waitReady(t)
	return pc
}

// portcullisConfig is what the suite varies in a config file.
type portcullisConfig struct {
	KIDMode keyid.Mode // of the local key: thumbprint (default) or libtrust
	Split   bool       // give each gRPC service its own TCP port
	// Key replaces the local signing key (signer.key; see keySpec).
	Key keymanager.Spec
	// Store is authn.store (see storeSpec); zero: SQLite in the test's directory.
	Store app.StoreSpec
	// OPA is authz.opa; zero: the shipped policy.
	OPA opa.Config
	// Admin is the admin section; zero: no admin API.
	Admin app.AdminConfig
	// Edit, when set, changes the config last (further backends, the lockout).
	Edit func(*app.Config)
}

// startAllInOneConfig runs `portcullis -config FILE` as one process.
func startAllInOneConfig(t testing.TB, c portcullisConfig) *portcullis {
	t.Helper()
	pc, _ := writePortcullisConfig(t, c)
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	pc.waitReady(t)
	return pc
}

// startSplit runs four processes from one config file: authn, authz and signer, each
// serving gRPC on its own port, and the gateway dialing them.
func startSplit(t testing.TB, c portcullisConfig) *portcullis {
	t.Helper()
	c.Split = true
	pc, ports := writePortcullisConfig(t, c)
	pc.GRPC = map[string]string{}
	for _, target := range []string{"authn", "authz", "signer"} {
		p := pc.startTarget(t, target, "portcullis-"+target)
		addr := fmt.Sprintf("127.0.0.1:%d", ports[target])
		pc.GRPC[target] = addr
		waitUntil(t, target+" gRPC listening on "+addr, []*proc{p}, tcpListening(addr))
	}
	pc.startTarget(t, "gateway", "portcullis-gateway")
	pc.waitReady(t)
	return pc
}

// startTarget starts (or restarts) one process of the split deployment from the shared
// config file, with the certificate of its own role, and records it in pc.Procs.
func (pc *portcullis) startTarget(t testing.TB, target, name string) *proc {
	t.Helper()
	args := []string{"-config", pc.Config, "-target=" + target}
	if pc.PKI != nil {
		args = append(args, pc.PKI.flags(target)...)
	}
	p := startProc(t, name, portcullisBin(t), args...)
	pc.Procs[target] = p
	return p
}

func tcpListening(addr string) func() error {
	return func() error {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

func (pc *portcullis) waitReady(t testing.TB) {
	t.Helper()
	waitUntil(t, "Portcullis "+pc.URL+"/readyz", pc.allProcs(), httpStatus(pc.URL+"/readyz", http.StatusOK))
}

// writePortcullisConfig writes the suite's config file (newPortcullisConfig) with writeConfig.
func writePortcullisConfig(t testing.TB, c portcullisConfig) (*portcullis, map[string]int) {
	t.Helper()
	pc, cfg, ports := newPortcullisConfig(t, c)
	pc.Config = writeConfig(t, pc.Dir, cfg)
	return pc, ports
}

// newPortcullisConfig builds the suite's config in a new directory: the htpasswd users
// (writeHtpasswd), the shipped policy, a local key and the SQLite store, unless c says
// otherwise. It writes the htpasswd file and, for the split deployment, the internal PKI;
// the config file is for the caller to write (writeConfig). pc.Config is empty until then.
func newPortcullisConfig(t testing.TB, c portcullisConfig) (*portcullis, *app.Config, map[string]int) {
	t.Helper()
	dir := t.TempDir()
	ports := map[string]int{"gateway": freePort(t), "metrics": freePort(t)}
	base := fmt.Sprintf("http://localhost:%d", ports["gateway"])
	cfg := &app.Config{}
	cfg.Log.Level = "info"
	cfg.Gateway.Listen = fmt.Sprintf("127.0.0.1:%d", ports["gateway"])
	cfg.Gateway.PublicURL = base
	cfg.Gateway.MetricsListen = fmt.Sprintf("127.0.0.1:%d", ports["metrics"])
	cfg.Gateway.Services = []string{service}
	cfg.Authn.Backends = []backend.Spec{backendSpec(t, "users", &htpasswd.Config{
		Path:   writeHtpasswd(t, dir),
		Groups: map[string][]string{"developers": {"alice"}, "admins": {"admin"}},
	})}
	cfg.Authn.Store = c.Store
	if cfg.Authn.Store.Type == "" {
		cfg.Authn.Store = storeSpec(t, &sqlite.Config{Path: filepath.Join(dir, "sessions.db")})
	}
	cfg.Authz.OPA = c.OPA
	cfg.Signer.Issuer = issuer
	cfg.Signer.Key = c.Key
	if cfg.Signer.Key.Type == "" {
		kid := c.KIDMode
		if kid == "" {
			kid = keyid.ModeThumbprint
		}
		cfg.Signer.Key = keySpec(t, &local.Config{Path: filepath.Join(dir, "signing-key.pem"), KeyIDMode: kid})
	}
	cfg.Admin = c.Admin
	var pki *internalPKI
	if c.Split {
		for _, s := range []string{"authn", "authz", "signer"} {
			ports[s] = freePort(t)
		}
		cfg.Authn.Listen = fmt.Sprintf("127.0.0.1:%d", ports["authn"])
		cfg.Authz.Listen = fmt.Sprintf("127.0.0.1:%d", ports["authz"])
		cfg.Signer.Listen = fmt.Sprintf("127.0.0.1:%d", ports["signer"])
		cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen
		// The split deployment runs as in production: mutual TLS between the services,
		// each process presenting the certificate of its own role.
		pki = newInternalPKI(t, filepath.Join(dir, "pki"))
		cfg.InternalTLS = pki.config()
	}
	if c.Edit != nil {
		c.Edit(cfg)
	}
	return &portcullis{URL: base, Realm: base + "/token", Dir: dir, Procs: map[string]*proc{},
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports["metrics"]), PKI: pki}, cfg, ports
}

// writeHtpasswd writes dir/htpasswd: alice/alice and admin/admin (the suite's config puts
// them in developers and admins).
func writeHtpasswd(t testing.TB, dir string) string {
	t.Helper()
	var lines []byte
	for _, u := range []string{"alice", "admin"} {
		h, err := bcrypt.GenerateFromPassword([]byte(u), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(h)+"\n"...)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeConfig writes c to dir/portcullis.yml with yaml.Marshal, as an operator's file
// holds it, and reads it back as the binary will (app.Load, then Validate): a config the
// suite gets wrong fails here, naming its problems, rather than as a process that exits at
// start. A field that does not survive the file fails here too: what is read back must be
// c with its defaults. This is the one place the suite writes a Portcullis config; the file
// format itself is covered by the upgrade test's fixture (testdata/upgrade-from.yml).
func writeConfig(t testing.TB, dir string, c *app.Config) string {
	t.Helper()
	path, err := encodeConfig(t, dir, c)
	if err != nil {
		t.Fatalf("the suite's config %s is invalid: %v", path, err)
	}
	return path
}

// writeInvalidConfig is writeConfig for a config meant to be refused: its problems must
// include want.
func writeInvalidConfig(t testing.TB, dir string, c *app.Config, want string) string {
	t.Helper()
	path, err := encodeConfig(t, dir, c)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("the config %s: problems %v, want one saying %q", path, err, want)
	}
	return path
}

// encodeConfig writes c and reads it back; the error is Validate's.
func encodeConfig(t testing.TB, dir string, c *app.Config) (string, error) {
	t.Helper()
	data, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("marshal the config: %v", err)
	}
	path := filepath.Join(dir, "portcullis.yml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := app.Load(path, false)
	if err != nil {
		t.Fatalf("the config the suite wrote does not load: %v\n%s", err, data)
	}
	want := *c
	want.Defaults()
	if a, b := mustMarshal(t, got), mustMarshal(t, &want); !bytes.Equal(a, b) {
		t.Fatalf("the config %s reads back as\n%s\nwant (what was marshalled, with its defaults)\n%s", path, a, b)
	}
	return path, got.Validate()
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// backendSpec is authn backend c, named name, as the config holds it.
func backendSpec(t testing.TB, name string, c authn.BackendConfig) backend.Spec {
	t.Helper()
	s, err := backend.NewSpec(name, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keySpec is key manager c as signer.key holds it.
func keySpec(t testing.TB, c signer.KeyManagerConfig) keymanager.Spec {
	t.Helper()
	s, err := keymanager.NewSpec(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeSpec is authn store c as authn.store holds it.
func storeSpec(t testing.TB, c storage.Config) app.StoreSpec {
	t.Helper()
	s, err := app.NewStoreSpec(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// registryTrust runs `portcullis registry-config` and returns the directory holding
// auth-token.yml, rootcertbundle.pem and jwks.json.
func (pc *portcullis) registryTrust(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "registry-trust")
	args := []string{"registry-config", "-service", service, "-realm", pc.Realm, "-out", out}
	if pc.Config != "" {
		args = append(args, "-config", pc.Config)
	} else {
		args = append(args, "-data-dir", filepath.Join(pc.Dir, "data"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	if b, err := exec.CommandContext(ctx, portcullisBin(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("portcullis %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// ---------------------------------------------------------------------------------------
// Registries

type registryKind struct {
	name string // process name in logs
	bin  string // peer binary
}

// Both registries get the auth section exactly as `portcullis registry-config` wrote it:
// 3.x trusts the jwks (and the rootcertbundle), 2.8 ignores jwks and trusts the bundle.
var (
	registry3  = registryKind{name: "registry3", bin: "registry3"}
	registry28 = registryKind{name: "registry2.8", bin: "docker-registry"}
)

// registry is a running distribution registry behind Portcullis's tokens.
type registry struct {
	// Host is what clients put in references: localhost:PORT.
	Host string
	URL  string
	proc *proc
}

// startRegistry writes a registry config whose auth section is the one `portcullis
// registry-config` generated, and starts the registry on a free port with filesystem
// storage in a temp dir. It waits until GET /v2/ answers 401 with Portcullis's realm.
func startRegistry(t testing.TB, kind registryKind, pc *portcullis) *registry {
	t.Helper()
	return startTrustedRegistry(t, kind, pc, pc.registryTrust(t)).registry
}

// ---------------------------------------------------------------------------------------
// Clients

// clients runs client commands with their own docker/containers config, so a test never
// reads or writes the machine's ~/.docker/config.json or auth.json.
type clients struct {
	env []string
	// cwd is the working directory of the commands (oras wants relative file names).
	cwd string
}

func newClients(t testing.TB) *clients {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"docker", "home", "xdg"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return &clients{env: []string{
		"DOCKER_CONFIG=" + filepath.Join(dir, "docker"),
		"REGISTRY_AUTH_FILE=" + filepath.Join(dir, "auth.json"),
		"HOME=" + filepath.Join(dir, "home"),
		"XDG_RUNTIME_DIR=" + filepath.Join(dir, "xdg"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "home", ".config"),
		"DOCKER_BUILDKIT=0", // engine 20.10 without buildx: the classic builder
	}}
}

// run runs a peer client with a timeout and returns its combined output.
func (c *clients) run(t testing.TB, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	bin := peer(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Dir = c.cwd
	cmd.WaitDelay = stopTimeout
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %s)", err, clientTimeout)
	}
	t.Logf("$ %s %s  [%s, %v]\n%s", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond),
		exitStatus(err), indent(string(out)))
	return string(out), err
}

// ok runs a client command that must succeed.
func (c *clients) ok(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := c.run(t, "", name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// refused runs a client command that must fail because Portcullis or the registry
// refused it: the output has to say so (denied, unauthorized, …); any other failure
// (a crash, a timeout, a typo in the test) does not count.
func (c *clients) refused(t testing.TB, name string, args ...string) string {
	t.Helper()
	return c.failsWith(t, refusedRE, name, args...)
}

// failsWith runs a client command that must fail with output matching re.
func (c *clients) failsWith(t testing.TB, re *regexp.Regexp, name string, args ...string) string {
	t.Helper()
	out, err := c.run(t, "", name, args...)
	if err == nil {
		t.Fatalf("%s %s succeeded, want it to fail with %s\n%s", name, strings.Join(args, " "), re, out)
	}
	if !re.MatchString(out) {
		t.Fatalf("%s %s failed (%v), but its output does not match %s:\n%s", name, strings.Join(args, " "), err, re, out)
	}
	return out
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (no output)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// ---------------------------------------------------------------------------------------
// OCI image layouts

// ociImage is an image written as an OCI image layout.
type ociImage struct {
	Dir            string
	Tag            string
	ManifestDigest string
	ConfigDigest   string
	LayerDigest    string
}

// writeOCILayout writes a one-layer image (a gzipped tar with hello.txt holding content)
// as an OCI image layout in dir, tagged tag in index.json.
func writeOCILayout(t testing.TB, dir, tag, content string) ociImage {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)),
		ModTime: mtime, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte(content)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gzBuf bytes.Buffer
	gw := gzip.NewWriter(&gzBuf)
	if _, err := gw.Write(tarBuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}

	blob := func(data []byte) (string, int) {
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256", h)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h, len(data)
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}

	diffID := sha256.Sum256(tarBuf.Bytes())
	layerDigest, layerSize := blob(gzBuf.Bytes())
	configDigest, configSize := blob(mustJSON(map[string]any{
		"created":      mtime.Format(time.RFC3339),
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}},
	}))
	manifestDigest, manifestSize := blob(mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: configDigest, Size: configSize},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: layerDigest, Size: layerSize}},
	}))
	index := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: manifestDigest,
			Size: manifestSize, Annotations: map[string]string{"org.opencontainers.image.ref.name": tag}}},
	})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return ociImage{Dir: dir, Tag: tag, ManifestDigest: manifestDigest, ConfigDigest: configDigest, LayerDigest: layerDigest}
}

// layoutManifestDigest reads the digest tagged tag from an OCI layout's index.json.
func layoutManifestDigest(t testing.TB, dir, tag string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatalf("%s/index.json: %v", dir, err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			return m.Digest
		}
	}
	t.Fatalf("%s/index.json has no manifest tagged %q:\n%s", dir, tag, data)
	return ""
}

// ---------------------------------------------------------------------------------------
// skopeo

// skopeo builds skopeo arguments for a plain-HTTP registry; --insecure-policy keeps the
// machine's /etc/containers/policy.json out of the test.
func skopeoCopyTo(src, dst, creds string) []string {
	return []string{"--insecure-policy", "copy", "--retry-times=0", "--dest-tls-verify=false", "--dest-creds", creds, src, dst}
}

func skopeoCopyFrom(src, dst, creds string) []string {
	return []string{"--insecure-policy", "copy", "--retry-times=0", "--src-tls-verify=false", "--src-creds", creds, src, dst}
}

// skopeoDigest is the manifest digest `skopeo inspect` reports for ref.
func (c *clients) skopeoDigest(t testing.TB, ref, creds string) string {
	t.Helper()
	out := c.ok(t, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false", "--creds", creds, "docker://"+ref)
	var v struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("skopeo inspect output: %v\n%s", err, out)
	}
	return v.Digest
}

// skopeoPushPull is the round trip every registry test does: push a fresh OCI layout as
// alice to alice/NAME, check the digest, pull it back, and see alice refused on bob/NAME.
func skopeoPushPull(t *testing.T, c *clients, reg *registry, name string) {
	img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "hello from "+name+"\n")
	ref := reg.Host + "/alice/" + name + ":v1"

	c.ok(t, "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest", "docker://"+ref, "alice:alice")...)
	if got := c.skopeoDigest(t, ref, "alice:alice"); got != img.ManifestDigest {
		t.Fatalf("skopeo inspect %s: digest %s, want the pushed %s", ref, got, img.ManifestDigest)
	}
	out := filepath.Join(t.TempDir(), "pulled")
	c.ok(t, "skopeo", skopeoCopyFrom("docker://"+ref, "oci:"+out+":v1", "alice:alice")...)
	if got := layoutManifestDigest(t, out, "v1"); got != img.ManifestDigest {
		t.Fatalf("pulled %s: digest %s, want %s", ref, got, img.ManifestDigest)
	}
	if _, err := os.Stat(filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(img.LayerDigest, "sha256:"))); err != nil {
		t.Fatalf("pulled layout lacks the layer blob: %v", err)
	}

	c.refused(t, "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest", "docker://"+reg.Host+"/bob/"+name+":v1", "alice:alice")...)
	c.refused(t, "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest", "docker://"+reg.Host+"/alice/"+name+":wrong-pw", "alice:wrong")...)
	// The refused push left nothing behind: even an admin finds no bob/NAME.
	c.failsWith(t, notFoundRE, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false", "--creds", "admin:admin", "docker://"+reg.Host+"/bob/"+name+":v1")
}

// ---------------------------------------------------------------------------------------
// The token endpoint, spoken to directly

// httpAnswer is a raw HTTP answer of the gateway.
type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

// errorBody decodes an OAuth2-style error answer.
func (a httpAnswer) errorBody(t testing.TB) (code, description string) {
	t.Helper()
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil {
		t.Fatalf("error answer is not JSON: %v\n%s", err, a.body)
	}
	return e.Error, e.ErrorDescription
}

// getToken sends GET /token?query, with HTTP Basic credentials unless user is empty.
func getToken(t testing.TB, pc *portcullis, user, pass string, query url.Values) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, pc.URL+"/token?"+query.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	return do(t, req)
}

func do(t testing.TB, req *http.Request) httpAnswer {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL, err)
	}
	return httpAnswer{status: resp.StatusCode, header: resp.Header, body: body}
}

// accessEntry is one entry of the distribution token's access claim.
type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// token is a token answer whose signature verified against the gateway's JWKS.
type token struct {
	raw       string
	kid, alg  string
	expiresIn int64
	issuedAt  string
	claims    struct {
		Issuer    string         `json:"iss"`
		Subject   string         `json:"sub"`
		Audience  string         `json:"aud"`
		Expiry    int64          `json:"exp"`
		NotBefore int64          `json:"nbf"`
		IssuedAt  int64          `json:"iat"`
		ID        string         `json:"jti"`
		Access    *[]accessEntry `json:"access"`
	}
}

// mustToken gets a token for scopes (as anonymous when user is empty), and checks that it
// verifies against GET /.well-known/jwks.json.
func mustToken(t testing.TB, pc *portcullis, user, pass string, scopes ...string) token {
	t.Helper()
	q := url.Values{"service": {service}}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	a := getToken(t, pc, user, pass, q)
	if a.status != http.StatusOK {
		t.Fatalf("GET /token?%s as %q: status %d, want 200\n%s", q.Encode(), user, a.status, a.body)
	}
	var resp struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.Unmarshal(a.body, &resp); err != nil {
		t.Fatalf("token answer is not JSON: %v\n%s", err, a.body)
	}
	if resp.Token == "" || resp.AccessToken != resp.Token {
		t.Fatalf("token answer: token %q, access_token %q: want both, equal", resp.Token, resp.AccessToken)
	}
	tok := token{raw: resp.Token, expiresIn: resp.ExpiresIn, issuedAt: resp.IssuedAt}
	payload, kid, alg := verifyWithJWKS(t, pc, resp.Token)
	tok.kid, tok.alg = kid, alg
	if err := json.Unmarshal(payload, &tok.claims); err != nil {
		t.Fatalf("token claims: %v\n%s", err, payload)
	}
	return tok
}

// verifyWithJWKS checks raw's signature with the key its kid names in the gateway's JWKS.
func verifyWithJWKS(t testing.TB, pc *portcullis, raw string) (payload []byte, kid, alg string) {
	t.Helper()
	a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/.well-known/jwks.json"))
	if a.status != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json: status %d\n%s", a.status, a.body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(a.body, &set); err != nil {
		t.Fatalf("JWKS: %v\n%s", err, a.body)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512,
		jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.EdDSA})
	if err != nil {
		t.Fatalf("token is not a compact JWS: %v", err)
	}
	if len(jws.Signatures) != 1 {
		t.Fatalf("token has %d signatures, want 1", len(jws.Signatures))
	}
	h := jws.Signatures[0].Header
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys with the token's kid %q, want 1\n%s", len(keys), h.KeyID, a.body)
	}
	if keys[0].Algorithm != "" && keys[0].Algorithm != h.Algorithm {
		t.Fatalf("token alg %s, JWKS key alg %s", h.Algorithm, keys[0].Algorithm)
	}
	payload, err = jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatalf("token does not verify with JWKS key %q: %v", h.KeyID, err)
	}
	return payload, h.KeyID, h.Algorithm
}

func mustRequest(t testing.TB, method, target string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
