// Command portcullis-bench measures token throughput, latency and server CPU per token on
// loopback: it starts bin/portcullis (all-in-one, then split into four processes) and drives
// GET /token with HTTP Basic credentials, then the refresh grant a logged-in docker client
// uses, with SQLite and with PostgreSQL session stores, then a CI job's workload token (a JWT)
// as the password, then users of an OpenLDAP directory (slapd on this machine), with the login
// cache and binding each time. `make bench` runs it; figures are printed, never asserted.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
	"github.com/portcullis-dev/portcullis/internal/testenv/vaulttest"
)

func main() {
	bin := flag.String("bin", "bin/portcullis", "portcullis binary")
	dur := flag.Duration("duration", 5*time.Second, "length of each closed-loop run")
	conc := flag.Int("concurrency", 16, "concurrent clients in closed-loop runs")
	rate := flag.Int("rate", 500, "request rate of the fixed-rate latency runs (tokens/s)")
	vaultRate := flag.Int("vault-rate", 750, "request rate of the Vault fixed-rate run (half the 1,500 tokens/s target)")
	refreshRate := flag.Int("refresh-rate", 1000, "request rate of the PostgreSQL refresh-grant fixed-rate run (the issue 7 target's rate)")
	refreshTokens := flag.Int("refresh-tokens", 64, "refresh tokens (offline logins) the refresh-grant runs share out, so no one session row is hot")
	workloadTokens := flag.Int("workload-tokens", 16, "distinct workload JWTs the workload identity runs share out (few enough for the login cache to hold, like a CI fleet's running jobs)")
	ldapUsers := flag.Int("ldap-users", 8, "directory users the LDAP runs share out")
	ldapPool := flag.Int("ldap-pool", 4, "the ldap backend's pool_size (connections to slapd; 4 is the default)")
	profile := flag.Bool("profile", true, "CPU-profile the all-in-one warm and refresh-grant runs and print the top functions")
	profileOut := flag.String("profile-out", ".cache/bench-cpu.pprof", "where to keep the warm run's CPU profile (go tool pprof); the refresh runs' go beside it")
	withVault := flag.Bool("vault", true, "also compare Vault transit signing (needs the vault binary: scripts/install-tools.sh vault)")
	only := flag.String("only", "", "run one group of rows only: authz or soak")
	soak := flag.Duration("soak", 10*time.Minute, "length of the soak run (half of peak, a signer replica restarted half-way); 0 skips it")
	flag.Parse()
	o := options{
		bin: *bin, dur: *dur, conc: *conc, rate: *rate, vaultRate: *vaultRate, refreshRate: *refreshRate,
		refreshTokens: *refreshTokens, workloadTokens: *workloadTokens, ldapUsers: *ldapUsers, ldapPool: *ldapPool,
		profile: *profile, profileOut: *profileOut, vault: *withVault, only: *only, soak: *soak,
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin                                string
	dur                                time.Duration
	conc, rate, vaultRate, refreshRate int
	refreshTokens, workloadTokens      int
	ldapUsers, ldapPool                int
	profile                            bool
	profileOut                         string
	vault                              bool
	only                               string
	soak                               time.Duration
}

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

// cpuProfile is a profiled run whose top functions are printed at the end.
type cpuProfile struct{ title, path, keep string }

func run(o options) error {
	bin, err := filepath.Abs(o.bin)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := writeUsers(dir); err != nil {
		return err
	}
	dur, conc, rate := o.dur, o.conc, o.rate
	fmt.Printf("portcullis bench: %d clients for %s per closed-loop run; fixed-rate runs at %d tokens/s; server and load generator share this machine's %d CPUs\n",
		conc, dur, rate, numCPU())
	fmt.Printf("CPU/token: CPU time of the Portcullis process(es) during the run (user+system, /proc/<pid>/stat) per token issued\n\n")
	printHeader()
	switch o.only {
	case "":
	case "authz":
		return benchAuthz(bin, dir, o)
	case "soak":
		return benchSoak(bin, dir, o)
	default:
		return fmt.Errorf("-only %q: the groups are authz and soak", o.only)
	}
	var profiles []cpuProfile
	var warmBasic float64 // tokens/s of the all-in-one warm 1-scope run: what the refresh grant is compared with
	for _, split := range []bool{false, true} {
		for _, cold := range []bool{false, true} {
			for _, n := range []int{1, 5} {
				sc := scenario{split: split, cold: cold, scopes: n}
				prof := ""
				if o.profile && !split && !cold && n == 1 {
					prof = filepath.Join(dir, "cpu.pprof")
					profiles = append(profiles, cpuProfile{"the all-in-one warm 1-scope run", prof, o.profileOut})
				}
				res, err := withServer(bin, dir, sc, prof, func(url string) (result, error) {
					return closedLoop(basicGrant(url, sc.scopes), conc, dur)
				})
				if err != nil {
					return fmt.Errorf("%s: %w", sc, err)
				}
				if !split && !cold && n == 1 {
					warmBasic = res.rate()
				}
				name := sc.String()
				if prof != "" {
					name += " (CPU-profiled)"
				}
				res.print(name)
			}
		}
	}
	// What the decision log (on by default: a JSON line per decision) costs a token.
	{
		sc := scenario{scopes: 1, noDecisionLogs: true}
		res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
			return closedLoop(basicGrant(url, sc.scopes), conc, dur)
		})
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		note := ""
		if warmBasic > 0 {
			note = fmt.Sprintf("x%.2f of the run with decision logs", res.rate()/warmBasic)
		}
		res.print(sc.String()+", decision logs off", note)
	}
	fmt.Println()
	for _, split := range []bool{false, true} {
		sc := scenario{split: split, scopes: 1}
		res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
			return fixedRate(basicGrant(url, sc.scopes), rate, dur)
		})
		if err != nil {
			return err
		}
		res.print(fmt.Sprintf("%s @%d/s", sc, rate))
	}
	ps, err := benchRefresh(bin, dir, o, warmBasic)
	if err != nil {
		return fmt.Errorf("refresh grant: %w", err)
	}
	profiles = append(profiles, ps...)
	ps, err = benchWorkload(bin, dir, o)
	if err != nil {
		return fmt.Errorf("workload identity: %w", err)
	}
	profiles = append(profiles, ps...)
	if err := benchLDAP(bin, dir, o); err != nil {
		return fmt.Errorf("ldap: %w", err)
	}
	if err := benchRobots(bin, dir, o); err != nil {
		return fmt.Errorf("robot keys: %w", err)
	}
	if err := benchSignerReplicas(bin, dir, o); err != nil {
		return fmt.Errorf("signer replicas: %w", err)
	}
	if err := benchAuthz(bin, dir, o); err != nil {
		return fmt.Errorf("authz: %w", err)
	}
	if err := benchSoak(bin, dir, o); err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	if o.vault {
		if err := benchVault(bin, dir, dur, conc, o.vaultRate); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	fmt.Println()
	// The lockout would answer the enumeration's wrong passwords with 429 before long, without
	// checking them: what is compared is the password check.
	if _, err := withServer(bin, dir, scenario{scopes: 1, noLockout: true}, "", func(url string) (result, error) {
		return result{}, enumeration(url)
	}); err != nil {
		return err
	}
	for _, p := range profiles {
		printProfile(bin, p)
	}
	return nil
}

func printHeader() {
	fmt.Printf("%-62s %10s %9s %9s %10s\n", "scenario", "tokens/s", "p50", "p99", "CPU/token")
}

// printProfile prints the top functions of a server CPU profile and keeps a copy of it.
func printProfile(bin string, p cpuProfile) {
	fmt.Printf("\nCPU profile of %s (server process, top by cumulative time):\n", p.title)
	cmd := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=35", bin, p.path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		fmt.Printf("pprof failed: %v\n", err)
	}
	fmt.Println(string(out))
	if data, err := os.ReadFile(p.path); err == nil && p.keep != "" && os.WriteFile(p.keep, data, 0o644) == nil {
		fmt.Printf("profile kept in %s: go tool pprof -top %s %s\n", p.keep, bin, p.keep)
	}
}

func numCPU() int { return runtime.NumCPU() }

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

// server is a running Portcullis: its gateway URL, where the signer's metrics are, and the CPU
// time its processes have used so far.
type server struct {
	url, signerMetrics string
	adminAddr          string // admin.listen, when the scenario has one
	authzAddr          string // the authz service's gRPC address (split)
	cpu                func() time.Duration
	// rss is each process's resident set (VmRSS), by process name (target-index).
	rss func() map[string]int64
	// restart stops the i-th process (SIGTERM, so it drains) and starts it again.
	restart func(i int) error
	names   []string
}

// measure runs load and sets the result's CPU time to what the server used meanwhile.
func (s server) measure(load func() (result, error)) (result, error) {
	cpu0 := s.cpu()
	res, err := load()
	res.cpu = s.cpu() - cpu0
	return res, err
}

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

func withServer(bin, dir string, sc scenario, cpuprofile string, f func(url string) (result, error)) (result, error) {
	return withServerAt(bin, dir, sc, cpuprofile, func(s server) (result, error) {
		return s.measure(func() (result, error) { return f(s.url) })
	})
}

func withServerAt(bin, dir string, sc scenario, cpuprofile string, f func(s server) (result, error)) (result, error) {
	ports := make([]string, numPorts)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return result{}, err
		}
		ports[i] = p
	}
	if sc.pgDSN == "" { // every server starts with no sessions
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(sessionsDB(dir) + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return result{}, err
			}
		}
	}
	type proc struct{ target, config string }
	var extra []proc
	for i := 1; i < sc.signers; i++ {
		// Each further replica has a config of its own: another signer listen and metrics address.
		addr, err := freePort()
		if err != nil {
			return result{}, err
		}
		metrics, err := freePort()
		if err != nil {
			return result{}, err
		}
		sc.extraSigners = append(sc.extraSigners, addr)
		own := slices.Clone(ports)
		own[portSigner], own[portSignerMetrics] = addr, metrics
		path := filepath.Join(dir, fmt.Sprintf("config-signer%d.yaml", i+1))
		extra = append(extra, proc{"signer", path})
		if err := os.WriteFile(path, []byte(config(dir, sc, own)), 0o600); err != nil {
			return result{}, err
		}
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config(dir, sc, ports)), 0o600); err != nil {
		return result{}, err
	}
	targets := []proc{{"all", cfgPath}}
	if sc.split {
		targets = append([]proc{{"authn", cfgPath}, {"authz", cfgPath}, {"signer", cfgPath}}, extra...)
		targets = append(targets, proc{"gateway", cfgPath})
	}
	var procs []*exec.Cmd
	var exited []chan struct{} // closed when procs[i] has exited
	defer func() {
		for i, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
			<-exited[i]
		}
	}()
	startProc := func(i int, t proc) (*exec.Cmd, chan struct{}, error) {
		args := []string{"-target=" + t.target, "-config=" + t.config}
		if cpuprofile != "" {
			args = append(args, "-cpuprofile="+cpuprofile)
		}
		cmd := exec.Command(bin, args...)
		logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", t.target, i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, nil, err
		}
		cmd.Stdout, cmd.Stderr = io.Discard, logf
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, nil, err
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		return cmd, done, nil
	}
	var names []string
	for i, t := range targets {
		cmd, done, err := startProc(i, t)
		if err != nil {
			return result{}, err
		}
		procs = append(procs, cmd)
		exited = append(exited, done)
		names = append(names, fmt.Sprintf("%s-%d", t.target, i))
	}
	url := "http://" + ports[portGateway]
	if err := waitReady(url, 15*time.Second); err != nil {
		last := len(targets) - 1
		log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", targets[last].target, last)))
		return result{}, fmt.Errorf("%w\n%s", err, log)
	}
	metrics := "http://" + ports[portGatewayMetrics] + "/metrics"
	if sc.split {
		metrics = "http://" + ports[portSignerMetrics] + "/metrics"
	}
	restart := func(i int) error {
		_ = procs[i].Process.Signal(os.Interrupt)
		<-exited[i]
		cmd, done, err := startProc(i, targets[i])
		if err != nil {
			return err
		}
		procs[i], exited[i] = cmd, done
		return nil
	}
	rss := func() map[string]int64 {
		out := map[string]int64{}
		for i, p := range procs {
			out[names[i]] = vmRSS(p.Process.Pid)
		}
		return out
	}
	return f(server{url: url, signerMetrics: metrics, adminAddr: ports[portAdmin], authzAddr: ports[portAuthz],
		cpu: func() time.Duration { return cpuTime(procs) }, rss: rss, restart: restart, names: names})
}

// vmRSS is a process's resident set in bytes (0 when /proc cannot tell).
func vmRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb << 10
		}
	}
	return 0
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux port Go
// supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the user+system CPU time the processes have used so far, or 0 when /proc
// cannot tell (not Linux).
func cpuTime(procs []*exec.Cmd) time.Duration {
	var total time.Duration
	for _, p := range procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Process.Pid))
		if err != nil {
			return 0
		}
		t, ok := statCPU(string(b))
		if !ok {
			return 0
		}
		total += t
	}
	return total
}

// statFields splits a /proc/<pid>/stat line into its fields from field 3 (state) on.
func statFields(stat string) ([]string, bool) {
	// The command name (field 2) may hold spaces and parentheses; the fields after its
	// closing parenthesis are numbers, starting with field 3.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return nil, false
	}
	return f, true
}

// statCPU reads utime+stime (fields 14 and 15) from a /proc/<pid>/stat line.
func statCPU(stat string) (time.Duration, bool) {
	f, ok := statFields(stat)
	if !ok {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * clockTick, true
}

// statPPid reads the parent's process id (field 4) from a /proc/<pid>/stat line.
func statPPid(stat string) (int, bool) {
	f, ok := statFields(stat)
	if !ok {
		return 0, false
	}
	p, err := strconv.Atoi(f[4-3])
	return p, err == nil
}

// serverCPU is the CPU time a PostgreSQL server has used so far: its postmaster and live
// children, among them the backends serving the session store's pool. (Backends call setsid,
// so the postmaster's process group does not hold them.)
func serverCPU(postmaster int) time.Duration {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total time.Duration
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited since the glob
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if ppid, ok := statPPid(string(b)); pid != postmaster && (!ok || ppid != postmaster) {
			continue
		}
		if t, ok := statCPU(string(b)); ok {
			total += t
		}
	}
	return total
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("server not ready")
}

func tokenURL(base string, scopes int) string {
	q := []string{"service=registry.local"}
	for i := 0; i < scopes; i++ {
		q = append(q, fmt.Sprintf("scope=repository:bench/app%d:pull,push", i))
	}
	return base + "/token?" + strings.Join(q, "&")
}

type result struct {
	n, errs int
	late    int // fixed-rate requests that left more than lateBy after their scheduled time
	elapsed time.Duration
	lat     []time.Duration
	cpu     time.Duration // the server's CPU time during the run
	// peerCPU is the CPU time of the peer named peer during the run: the PostgreSQL server
	// keeping the sessions, the directory checking the passwords.
	peer    string
	peerCPU time.Duration
}

// lateBy is when a fixed-rate request counts as having missed its schedule: the load
// generator (on the same 2 CPUs) could not send it on time.
const lateBy = time.Millisecond

func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

// print prints the row; notes follow the figures.
func (r result) print(name string, notes ...string) {
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
	}
	perToken := "-"
	if r.cpu > 0 && r.n > 0 {
		perToken = fmt.Sprintf("%.0fµs", float64(r.cpu.Microseconds())/float64(r.n))
	}
	var extra []string
	if r.peer != "" && r.n > 0 {
		extra = append(extra, fmt.Sprintf("+ %s %.0fµs/token", r.peer, float64(r.peerCPU.Microseconds())/float64(r.n)))
	}
	extra = append(extra, notes...)
	if r.errs > 0 {
		extra = append(extra, fmt.Sprintf("(%d errors)", r.errs))
	}
	if r.late > 0 {
		extra = append(extra, fmt.Sprintf("(%d sent >%s late)", r.late, lateBy))
	}
	tail := ""
	if len(extra) > 0 {
		tail = "  " + strings.Join(extra, "  ")
	}
	fmt.Printf("%-62s %10.0f %9s %9s %10s%s\n", name, r.rate(),
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), perToken, tail)
}

func newClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 10 * time.Second}
}

var auth = "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench-password"))

// grant sends the i-th token request of a run and says how long the answer took.
type grant func(c *http.Client, i int) (time.Duration, error)

// basicGrant is GET /token with the password (docker without a stored identity token,
// and most other clients).
func basicGrant(base string, scopes int) grant {
	url := tokenURL(base, scopes)
	return func(c *http.Client, _ int) (time.Duration, error) { return one(c, url) }
}

func one(c *http.Client, url string) (time.Duration, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", auth)
	return timed(c, req, nil)
}

// timed sends req and returns how long the whole answer took; a 200 body must hold want
// when it is given.
func timed(c *http.Client, req *http.Request, want []byte) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	var body []byte
	if want != nil {
		body, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	if want != nil && !bytes.Contains(body, want) {
		return 0, fmt.Errorf("answer without %s", want)
	}
	return d, nil
}

// refreshGrant is what a docker client sends once logged in: POST /token with the identity
// token (a refresh token) and no password. Request i uses tokens[i%len(tokens)], each token
// its own repository.
func refreshGrant(base string, tokens []string) grant {
	forms := make([]string, len(tokens))
	for i, tok := range tokens {
		forms[i] = refreshForm(tok, fmt.Sprintf("repository:bench/app%d:pull", i))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(forms[i%len(forms)]))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return timed(c, req, []byte(`"access_token"`))
	}
}

// refreshForm is the docker daemon's refresh request (distribution's registry/client/auth).
func refreshForm(token, scope string) string {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"docker"},
		"service": {"registry.local"}, "scope": {scope}}.Encode()
}

// offlineLogins is `docker login` n times over: GET /token?offline_token=true with the
// password, each answered with a refresh token of its own (a session row of its own).
func offlineLogins(base string, n int) ([]string, error) {
	c := newClient(1)
	tokens := make([]string, 0, n)
	for range n {
		req, _ := http.NewRequest("GET", base+"/token?service=registry.local&offline_token=true&client_id=bench", nil)
		req.Header.Set("Authorization", auth)
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != 200:
			return nil, fmt.Errorf("offline login: status %d", resp.StatusCode)
		case err != nil:
			return nil, fmt.Errorf("offline login: %w", err)
		case body.RefreshToken == "":
			return nil, errors.New("offline login: no refresh_token in the answer (sessions disabled?)")
		}
		tokens = append(tokens, body.RefreshToken)
	}
	return tokens, nil
}

// closedLoop: conc clients, each sending its next request when the previous one returns.
// Client k sends requests k, k+conc, k+2·conc…, so a grant that cycles through several
// credentials spreads every client over all of them.
func closedLoop(send grant, conc int, dur time.Duration) (result, error) {
	c := newClient(conc)
	if _, err := send(c, 0); err != nil { // warm the cache and the connection
		return result{}, err
	}
	var mu sync.Mutex
	var res result
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for k := 0; k < conc; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for i := k; !stop.Load(); i += conc {
				d, err := send(c, i)
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, d)
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.errs += errs
			mu.Unlock()
		}()
	}
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	return res, nil
}

// fixedRate: an open-loop load at rate requests/s, so latency is measured without the
// coordinated omission of a closed loop.
func fixedRate(send grant, rate int, dur time.Duration) (result, error) {
	c := newClient(256)
	if _, err := send(c, 0); err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var mu sync.Mutex
	var res result
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; ; i++ {
		next := start.Add(time.Duration(i) * interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int, sched time.Time) {
			defer wg.Done()
			late := time.Since(sched) > lateBy
			_, err := send(c, i)
			d := time.Since(sched) // from when it should have been sent
			mu.Lock()
			if late {
				res.late++
			}
			if err != nil {
				res.errs++
			} else {
				res.lat = append(res.lat, d)
			}
			mu.Unlock()
		}(i, next)
	}
	wg.Wait()
	res.elapsed = dur
	res.n = len(res.lat)
	return res, nil
}

// enumeration compares how long a wrong password takes for a known and for an unknown user:
// they should match, so response time does not reveal who has an account.
func enumeration(base string) error {
	c := newClient(1)
	url := tokenURL(base, 1)
	median := func(user string) (time.Duration, error) {
		var lat []time.Duration
		for i := 0; i < 25; i++ {
			req, _ := http.NewRequest("GET", url, nil)
			req.SetBasicAuth(user, fmt.Sprintf("wrong-%d", i))
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				return 0, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				return 0, fmt.Errorf("status %d for a wrong password", resp.StatusCode)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		return lat[len(lat)/2], nil
	}
	known, err := median("bench")
	if err != nil {
		return err
	}
	unknown, err := median("no-such-user")
	if err != nil {
		return err
	}
	fmt.Printf("wrong password, median of 25: known user %s, unknown user %s (should match: no user enumeration)\n",
		known.Round(100*time.Microsecond), unknown.Round(100*time.Microsecond))
	return nil
}

// benchVault compares signing keys in the split deployment: the local key file, and Vault
// transit with and without batching, with a real Vault server on this machine.
func benchVault(bin, dir string, dur time.Duration, conc, rate int) error {
	return withBenchT(dir, func(vt *benchT) error { return benchVaultWith(vt, bin, dir, dur, conc, rate) })
}

func benchVaultWith(vt *benchT, bin, dir string, dur time.Duration, conc, rate int) error {
	v := vaulttest.Start(vt)
	v.CreateKey(vt, "portcullis", "ecdsa-p256")
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(v.RootToken), 0o600); err != nil {
		return err
	}
	vk := &vaultKey{addr: v.Addr, tokenFile: tokenFile}
	fmt.Printf("\nSigning key: local file vs Vault transit (%s, on this machine), warm credentials, 1 scope:\n", vaultVersion(vaulttest.Binary(vt)))
	for _, sc := range []scenario{
		{split: true, scopes: 1},
		{split: true, scopes: 1, vault: vk},
		{split: true, scopes: 1, vault: vk, noBatch: true},
		{split: false, scopes: 1, vault: vk},
	} {
		var perTrip float64
		res, err := withServerMetrics(bin, dir, sc, func(url string) (result, error) {
			return closedLoop(basicGrant(url, sc.scopes), conc, dur)
		}, &perTrip)
		if err != nil {
			return fmt.Errorf("%s: %w", sc, err)
		}
		name := sc.String()
		if sc.vault != nil {
			name += fmt.Sprintf(" [%.1f signs/trip]", perTrip)
		}
		res.print(name)
	}
	sc := scenario{split: true, scopes: 1, vault: vk}
	var perTrip float64
	res, err := withServerMetrics(bin, dir, sc, func(url string) (result, error) {
		return fixedRate(basicGrant(url, sc.scopes), rate, dur)
	}, &perTrip)
	if err != nil {
		return err
	}
	res.print(fmt.Sprintf("%s @%d/s [%.1f signs/trip]", sc, rate, perTrip))
	return nil
}

// withServerMetrics runs f and reads the signer's signs per Vault round trip afterwards.
func withServerMetrics(bin, dir string, sc scenario, f func(url string) (result, error), perTrip *float64) (result, error) {
	return withServerAt(bin, dir, sc, "", func(s server) (result, error) {
		r, err := s.measure(func() (result, error) { return f(s.url) })
		if err == nil {
			*perTrip = signsPerTrip(s.signerMetrics)
		}
		return r, err
	})
}

func signsPerTrip(url string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sigs, trips float64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "portcullis_signer_vault_signatures_total "); ok {
			fmt.Sscan(v, &sigs)
		}
		if v, ok := strings.CutPrefix(line, "portcullis_signer_vault_round_trips_total "); ok {
			fmt.Sscan(v, &trips)
		}
	}
	if trips == 0 {
		return 0
	}
	return sigs / trips
}

func vaultVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "vault"
	}
	return strings.TrimSpace(string(out))
}

// benchRefresh measures the refresh grant, all-in-one, with the session store in SQLite and
// in a PostgreSQL server started on this machine: closed-loop throughput compared with the
// warm Basic run (basic tokens/s), and latency at a fixed rate on PostgreSQL. The runs
// compared with the Basic one are CPU-profiled like it when profiling is on.
func benchRefresh(bin, dir string, o options, basic float64) ([]cpuProfile, error) {
	var profiles []cpuProfile
	err := withBenchT(dir, func(bt *benchT) error {
		pg := pgtest.StartServer(bt)
		version, err := pgVersion(pg.NewDatabase(bt))
		if err != nil {
			return err
		}
		fmt.Printf("\nRefresh grant (docker's path after docker login: refresh token, no bcrypt), all-in-one, %d refresh tokens shared out, 1 pull scope;\n", o.refreshTokens)
		fmt.Printf("PostgreSQL %s on this machine (pgtest: fsync off); refresh/basic is tokens/s against the all-in-one warm 1-scope Basic run (%.0f/s)\n", version, basic)
		for _, st := range []struct{ name, dsn string }{{"SQLite", ""}, {"PostgreSQL", pg.NewDatabase(bt)}} {
			sc := scenario{scopes: 1, pgDSN: st.dsn}
			name := fmt.Sprintf("all-in-one refresh, %s sessions", st.name)
			prof := ""
			if o.profile {
				prof = filepath.Join(dir, "cpu-refresh-"+strings.ToLower(st.name)+".pprof")
				name += " (CPU-profiled)"
				keep := ""
				if o.profileOut != "" {
					keep = strings.TrimSuffix(o.profileOut, ".pprof") + "-refresh-" + strings.ToLower(st.name) + ".pprof"
				}
				profiles = append(profiles, cpuProfile{"the all-in-one refresh-grant run, " + st.name + " sessions", prof, keep})
			}
			res, err := withServerAt(bin, dir, sc, prof, func(s server) (result, error) {
				return refreshRun(s, o.refreshTokens, st.dsn != "", pg, func(send grant) (result, error) {
					return closedLoop(send, o.conc, o.dur)
				})
			})
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ratio := "refresh/basic = -"
			if basic > 0 {
				ratio = fmt.Sprintf("refresh/basic = %.0f%%", 100*res.rate()/basic)
			}
			res.print(name, ratio)
		}
		sc := scenario{scopes: 1, pgDSN: pg.NewDatabase(bt)}
		res, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
			return refreshRun(s, o.refreshTokens, true, pg, func(send grant) (result, error) {
				return fixedRate(send, o.refreshRate, o.dur)
			})
		})
		if err != nil {
			return fmt.Errorf("refresh @%d/s: %w", o.refreshRate, err)
		}
		res.print(fmt.Sprintf("all-in-one refresh, PostgreSQL sessions @%d/s", o.refreshRate))
		return nil
	})
	return profiles, err
}

// refreshRun logs in n times for refresh tokens, then runs load over them; CPU time is
// counted during the load only (the first login pays bcrypt), and with onPG the PostgreSQL
// server's too.
func refreshRun(s server, n int, onPG bool, pg *pgtest.Server, load func(grant) (result, error)) (result, error) {
	tokens, err := offlineLogins(s.url, n)
	if err != nil {
		return result{}, err
	}
	var db0 time.Duration
	if onPG {
		db0 = serverCPU(pg.PID())
	}
	res, err := s.measure(func() (result, error) { return load(refreshGrant(s.url, tokens)) })
	if onPG {
		res.peer, res.peerCPU = "PostgreSQL", serverCPU(pg.PID())-db0
	}
	return res, err
}

// benchWorkload measures workload identity logins all-in-one: GET /token with a CI job's JWT
// as the password, verified by an oidc backend (after htpasswd in the chain, which never sees
// a JWT) trusting an issuer this process runs (internal/testenv/oidctest, RS256). With the login cache on,
// each of the n tokens is verified once and then answered from the cache; with it off, every
// request checks a signature and the claims: the raw cost of a workload login. The issuer's
// keys are fetched by the first request and cached, as in production. The cache-off run is
// CPU-profiled when profiling is on.
func benchWorkload(bin, dir string, o options) ([]cpuProfile, error) {
	idp, err := oidctest.New()
	if err != nil {
		return nil, err
	}
	defer idp.Close()
	tokens, err := signWorkloadTokens(idp, o.workloadTokens, time.Now())
	if err != nil {
		return nil, err
	}
	fmt.Printf("\nWorkload identity (a CI job's JWT as the password: oidc backend after htpasswd in the chain, RS256, issuer keys cached),\n")
	fmt.Printf("all-in-one, %d tokens shared out, 1 scope; target >= 3,000 tokens/s\n", len(tokens))
	var profiles []cpuProfile
	for _, cold := range []bool{false, true} {
		sc := scenario{scopes: 1, cold: cold, oidcIssuer: idp.URL}
		name := "all-in-one workload JWT, login cache"
		prof := ""
		if cold {
			name = "all-in-one workload JWT, no cache: verify each"
			if o.profile {
				prof = filepath.Join(dir, "cpu-workload.pprof")
				name += " (CPU-profiled)"
				keep := ""
				if o.profileOut != "" {
					keep = strings.TrimSuffix(o.profileOut, ".pprof") + "-workload.pprof"
				}
				profiles = append(profiles, cpuProfile{"the all-in-one workload JWT run, login cache off", prof, keep})
			}
		}
		res, err := withServer(bin, dir, sc, prof, func(url string) (result, error) {
			return closedLoop(jwtGrant(url, tokens), o.conc, o.dur)
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		res.print(name)
	}
	return profiles, nil
}

// Workload tokens are GitHub Actions job tokens in shape: the registered claims for the
// bench's service, the repository they come from, and sub "bench" so the default policy
// grants bench/... as it does the Basic user.
const (
	workloadRepo   = "myorg/app"
	workloadMaxAge = 2 * time.Hour
)

// workloadBackend is the authn backend entry trusting issuer, or "" without one.
func workloadBackend(issuer string) string {
	if issuer == "" {
		return ""
	}
	return fmt.Sprintf(`
    - name: ci
      type: oidc
      config:
        issuers:
          - {issuer: %q, audiences: [registry.local], algorithms: [RS256], max_token_age: %s,
             claims: {repository: "myorg/*"}, subject: sub, groups: [repository_owner],
             labels: {project: repository, ref: ref}}`, issuer, workloadMaxAge)
}

// signWorkloadTokens signs n distinct tokens issued at now, valid for an hour (far longer than
// a run). Each has its own jti: equal claims would sign to equal tokens (RS256 is
// deterministic), one entry for the login cache.
func signWorkloadTokens(idp *oidctest.Issuer, n int, now time.Time) ([]string, error) {
	if n < 1 {
		return nil, errors.New("at least one workload token is needed")
	}
	tokens := make([]string, n)
	for i := range tokens {
		c := idp.Claims("registry.local", now, time.Hour)
		c["sub"] = "bench"
		c["repository"] = workloadRepo
		c["repository_owner"] = "myorg"
		c["ref"] = "refs/heads/main"
		c["jti"] = fmt.Sprintf("bench-%d-%d", now.UnixNano(), i)
		tok, err := idp.Sign(c)
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	return tokens, nil
}

// jwtGrant is `docker login -u ci -p "$JWT"` followed by a pull or push: GET /token with the
// job's token as the Basic password. Request i uses tokens[i%len(tokens)].
func jwtGrant(base string, tokens []string) grant {
	url := tokenURL(base, 1)
	headers := make([]string, len(tokens))
	for i, tok := range tokens {
		headers[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte("ci:"+tok))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", headers[i%len(headers)])
		return timed(c, req, []byte(`"token"`))
	}
}

// benchLDAP measures logins of directory users all-in-one: GET /token with Basic for users of
// an OpenLDAP directory on this machine (internal/testenv/ldaptest: Debian's slapd, StartTLS, a test CA),
// found by an ldap backend after htpasswd in the chain (htpasswd does not know them and says so
// without bcrypt; a directory's success pays none either). With the login cache on, each user's
// password is checked once and then answered from the cache; with it off, every request
// searches the user as the service account, binds as the user, binds back and searches the
// user's groups, over the backend's pooled StartTLS connections: the raw cost of a directory
// login. slapd's own CPU time is counted beside Portcullis's.
func benchLDAP(bin, dir string, o options) error {
	users, err := ldapUsers(o.ldapUsers)
	if err != nil {
		return err
	}
	return withBenchT(dir, func(bt *benchT) error {
		s := ldaptest.Start(bt, ldapSeed(users))
		pwFile := filepath.Join(dir, "ldap-bind")
		if err := os.WriteFile(pwFile, []byte(ldapServicePassword+"\n"), 0o600); err != nil {
			return err
		}
		d := &ldapDir{url: s.URL, caFile: s.CAFile, bindPasswordFile: pwFile, poolSize: o.ldapPool}
		// ldaptest runs slapd in the foreground as a child of this process.
		slapd, found := childProcess(os.Getpid(), "slapd")
		fmt.Printf("\nLDAP (%s on this machine, StartTLS, SSHA passwords; ldap backend after htpasswd in the chain, pool_size %d,\n",
			slapdVersion(slapd, found), o.ldapPool)
		fmt.Printf("search + user bind + service re-bind + group search per password check), all-in-one, %d users shared out, 1 scope\n", len(users))
		for _, cold := range []bool{false, true} {
			sc := scenario{scopes: 1, cold: cold, ldap: d}
			name := "LDAP warm (login cache)"
			if cold {
				name = "LDAP cold (bind each time)"
			}
			res, err := withServerAt(bin, dir, sc, "", func(srv server) (result, error) {
				var cpu0 time.Duration
				if found {
					cpu0 = procCPU(slapd)
				}
				res, err := srv.measure(func() (result, error) { return closedLoop(ldapGrant(srv.url, users), o.conc, o.dur) })
				if found {
					res.peer, res.peerCPU = "slapd", procCPU(slapd)-cpu0
				}
				return res, err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			res.print(name)
		}
		return nil
	})
}

// The bench directory: users under ldapPeople, all members of the group admins (whom the
// default policy grants everything, as it does the htpasswd user), and the service account
// the backend searches as.
const (
	ldapPeople          = "ou=people," + ldaptest.Suffix
	ldapGroups          = "ou=groups," + ldaptest.Suffix
	ldapServiceDN       = "cn=portcullis,ou=services," + ldaptest.Suffix
	ldapServicePassword = "bench-service-password"
	ldapUserPassword    = "bench-password"
)

// ldapDir is the directory an ldap backend in the config authenticates against.
type ldapDir struct {
	url, caFile, bindPasswordFile string
	poolSize                      int
}

// ldapUsers names n directory users; none is the htpasswd user, who would end the chain there.
func ldapUsers(n int) ([]string, error) {
	if n < 1 {
		return nil, errors.New("at least one LDAP user is needed")
	}
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("ldap-bench%d", i)
	}
	return users, nil
}

// ldapSeed is the LDIF of the bench directory's entries, parents first.
func ldapSeed(users []string) string {
	var b strings.Builder
	entry := func(dn string, attrs ...string) {
		b.WriteString(ldaptest.Line("dn", dn))
		for i := 0; i+1 < len(attrs); i += 2 {
			b.WriteString(ldaptest.Line(attrs[i], attrs[i+1]))
		}
		b.WriteString("\n")
	}
	for _, ou := range []string{"people", "groups", "services"} {
		entry("ou="+ou+","+ldaptest.Suffix, "objectClass", "organizationalUnit", "ou", ou)
	}
	entry(ldapServiceDN, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject",
		"cn", "portcullis", "userPassword", ldaptest.SSHA(ldapServicePassword))
	group := []string{"objectClass", "groupOfNames", "cn", "admins"}
	for _, u := range users {
		entry(ldapUserDN(u), "objectClass", "inetOrgPerson", "uid", u, "sn", u, "cn", u,
			"userPassword", ldaptest.SSHA(ldapUserPassword))
		group = append(group, "member", ldapUserDN(u))
	}
	entry("cn=admins,"+ldapGroups, group...)
	return b.String()
}

func ldapUserDN(uid string) string { return "uid=" + uid + "," + ldapPeople }

// ldapBackend is the authn backend entry for d, or "" without one.
func ldapBackend(d *ldapDir) string {
	if d == nil {
		return ""
	}
	return fmt.Sprintf(`
    - name: corp
      type: ldap
      config:
        url: %q
        start_tls: true
        ca_file: %q
        bind_dn: %q
        bind_password_file: %q
        user_search: {base_dn: %q, filter: "(objectClass=inetOrgPerson)", username_attr: uid}
        group_search: {base_dn: %q, filter: "(objectClass=groupOfNames)", user_attr: DN, group_attr: member, name_attr: cn}
        pool_size: %d`, d.url, d.caFile, ldapServiceDN, d.bindPasswordFile, ldapPeople, ldapGroups, d.poolSize)
}

// ldapGrant is `docker login` as a directory user followed by a pull or push: GET /token with
// Basic. Request i logs in as users[i%len(users)].
func ldapGrant(base string, users []string) grant {
	url := tokenURL(base, 1)
	headers := make([]string, len(users))
	for i, u := range users {
		headers[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+ldapUserPassword))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", headers[i%len(headers)])
		return timed(c, req, []byte(`"token"`))
	}
}

// childProcess finds the child of parent whose command name is name, from /proc; found is
// false when there is not exactly one.
func childProcess(parent int, name string) (pid int, found bool) {
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	n := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited since the glob
		}
		stat := string(b)
		ppid, ok := statPPid(stat)
		if !ok || ppid != parent || statComm(stat) != name {
			continue
		}
		pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
		n++
	}
	return pid, n == 1
}

// statComm reads the command name (field 2, in parentheses) from a /proc/<pid>/stat line.
func statComm(stat string) string {
	i, j := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if i < 0 || j < i {
		return ""
	}
	return stat[i+1 : j]
}

// procCPU is the CPU time process pid (all its threads) has used so far, or 0 when /proc
// cannot tell.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	t, _ := statCPU(string(b))
	return t
}

// slapdVersion is "slapd 2.5.13+dfsg-5" from `slapd -VV` of the running slapd's program.
func slapdVersion(pid int, found bool) string {
	if !found {
		return "slapd"
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "slapd"
	}
	out, _ := exec.Command(exe, "-VV").CombinedOutput()
	if _, rest, ok := strings.Cut(string(out), "slapd "); ok {
		if v, _, _ := strings.Cut(rest, " "); v != "" {
			return "slapd " + v
		}
	}
	return "slapd"
}

func pgVersion(dsn string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var v string
	err = c.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// benchT lets the test harnesses that start Vault, PostgreSQL and slapd run outside go test.
type benchT struct {
	dir      string
	n        int
	failed   bool
	cleanups []func()
}

// benchFatal is what a harness's Fatal panics with; withBenchT turns it into an error.
type benchFatal struct{ msg string }

// withBenchT runs f with a benchT and runs its cleanups afterwards (stopping the servers it
// started), also when a harness gave up on f.
func withBenchT(dir string, f func(*benchT) error) (err error) {
	bt := &benchT{dir: dir}
	defer func() {
		if r := recover(); r != nil {
			bf, ok := r.(benchFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(bf.msg)
		}
		bt.cleanup()
	}()
	return f(bt)
}

func (b *benchT) Helper()                           {}
func (b *benchT) Fatal(args ...any)                 { b.fatal(fmt.Sprint(args...)) }
func (b *benchT) Fatalf(format string, args ...any) { b.fatal(fmt.Sprintf(format, args...)) }
func (b *benchT) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (b *benchT) Failed() bool                      { return b.failed }
func (b *benchT) Cleanup(f func())                  { b.cleanups = append(b.cleanups, f) }
func (b *benchT) TempDir() string {
	b.n++
	d := filepath.Join(b.dir, fmt.Sprintf("harness-%d", b.n))
	_ = os.MkdirAll(d, 0o700)
	return d
}

func (b *benchT) fatal(msg string) {
	b.failed = true // so the harness's cleanups show the server's log
	panic(benchFatal{msg})
}

func (b *benchT) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}

// robotBackend is the robot backend's entry when on.
func robotBackend(on bool) string {
	if !on {
		return ""
	}
	return "\n    - {name: robots, type: robot}"
}

// robotAdmin is the admin section the robots are created through, when on.
func robotAdmin(on bool, dir, addr string) string {
	if !on {
		return ""
	}
	return fmt.Sprintf("admin: {listen: %s, token_file: %s}\n", addr, filepath.Join(dir, "admin-token"))
}

// benchRobots measures robot-key logins all-in-one: GET /token with Basic <robot>:<pcp_ key>
// for robots created through the admin API (portcullis robots create). A robot key is routed to
// the robot backend by its prefix (no bcrypt); the backend hashes it and reads the robot from
// the state store (SQLite here), and the login cache keeps a robot at most a second, so that a
// revoke is seen within one. With the cache off, every request reads the store.
func benchRobots(bin, dir string, o options) error {
	if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte("bench-admin-secret-0123456789abcdef\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("\nRobot keys (pcp_ API keys; robot backend after htpasswd in the chain, SQLite state store), all-in-one, %d robots shared out, 1 scope; target >= 3,000 tokens/s\n", o.ldapUsers)
	for _, cold := range []bool{false, true} {
		sc := scenario{scopes: 1, robots: true, cold: cold}
		name := "all-in-one robot key, login cache (<= 1 s)"
		if cold {
			name = "all-in-one robot key, no cache: store read each"
		}
		var adminAddr string
		res, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
			adminAddr = strings.TrimPrefix(s.adminAddr, "http://")
			creds, err := createRobots(bin, dir, adminAddr, o.ldapUsers)
			if err != nil {
				return result{}, err
			}
			return s.measure(func() (result, error) { return closedLoop(robotGrant(s.url, creds), o.conc, o.dur) })
		})
		if err != nil {
			return err
		}
		res.print(name)
	}
	return nil
}

// createRobots creates n robots in group admins (what the bench user's scopes need) through
// the admin API and returns their Basic credentials.
func createRobots(bin, dir, adminAddr string, n int) ([]string, error) {
	var creds []string
	for i := range n {
		name := fmt.Sprintf("bench-robot%d", i)
		out, err := exec.Command(bin, "robots", "create", "-addr", adminAddr, "-admin-token-file", filepath.Join(dir, "admin-token"),
			"-name", name, "-group", "admins", "-o", "json").Output()
		if err != nil {
			return nil, fmt.Errorf("robots create %s: %w", name, err)
		}
		var resp struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || !strings.HasPrefix(resp.Key, "pcp_") {
			return nil, fmt.Errorf("robots create %s: no key in %q (%v)", name, out, err)
		}
		creds = append(creds, name+":"+resp.Key)
	}
	return creds, nil
}

func robotGrant(base string, creds []string) grant {
	url := tokenURL(base, 1)
	headers := make([]string, len(creds))
	for i, c := range creds {
		headers[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", headers[i%len(headers)])
		return timed(c, req, []byte(`"token"`))
	}
}

// benchSignerReplicas measures the split deployment with 1, 2 and 3 signer replicas behind one
// gateway (gateway.backends.signer lists them; round robin over the healthy ones). On one
// 2-core machine the replicas share the CPUs with everything else, so the ratio shows the
// balancing's overhead more than any gain; on separate machines it is the signing tier's scaling.
func benchSignerReplicas(bin, dir string, o options) error {
	fmt.Printf("\nSigner replicas (split, warm creds, 1 scope; all processes and the load generator on this machine's %d CPUs)\n", numCPU())
	var base float64
	for n := 1; n <= 3; n++ {
		sc := scenario{split: true, scopes: 1, signers: n}
		res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
			return closedLoop(basicGrant(url, sc.scopes), o.conc, o.dur)
		})
		if err != nil {
			return err
		}
		if n == 1 {
			base = res.rate()
		}
		note := ""
		if base > 0 {
			note = fmt.Sprintf("x%.2f of 1 replica", res.rate()/base)
		}
		res.print(fmt.Sprintf("split, %d signer replica(s)", n), note)
	}
	return nil
}
