// Command portcullis-bench measures token throughput, latency and server CPU per token on
// loopback: it starts bin/portcullis (all-in-one, then split into four processes) and drives
// GET /token with HTTP Basic credentials. `make bench` runs it; figures are printed, never
// asserted.
package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/pkg/vaulttest"
)

func main() {
	bin := flag.String("bin", "bin/portcullis", "portcullis binary")
	dur := flag.Duration("duration", 5*time.Second, "length of each closed-loop run")
	conc := flag.Int("concurrency", 16, "concurrent clients in closed-loop runs")
	rate := flag.Int("rate", 500, "request rate of the fixed-rate latency runs (tokens/s)")
	vaultRate := flag.Int("vault-rate", 750, "request rate of the Vault fixed-rate run (half the 1,500 tokens/s target)")
	profile := flag.Bool("profile", true, "CPU-profile the all-in-one warm run and print the top functions")
	profileOut := flag.String("profile-out", ".cache/bench-cpu.pprof", "where to keep that CPU profile (go tool pprof)")
	withVault := flag.Bool("vault", true, "also compare Vault transit signing (needs the vault binary: scripts/install-tools.sh vault)")
	flag.Parse()
	if err := run(*bin, *dur, *conc, *rate, *vaultRate, *profile, *profileOut, *withVault); err != nil {
		fmt.Fprintln(os.Stderr, "portcullis-bench:", err)
		os.Exit(1)
	}
}

type scenario struct {
	split  bool
	cold   bool // authn cache off: every request pays bcrypt
	scopes int
	// vault signs through this Vault's transit engine instead of the local key file.
	vault   *vaultKey
	noBatch bool
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

func run(bin string, dur time.Duration, conc, rate, vaultRate int, profile bool, profileOut string, withVault bool) error {
	bin, err := filepath.Abs(bin)
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
	fmt.Printf("portcullis bench: %d clients for %s per closed-loop run; fixed-rate runs at %d tokens/s; server and load generator share this machine's %d CPUs\n",
		conc, dur, rate, numCPU())
	fmt.Printf("CPU/token: CPU time of the server process(es) during the run (user+system, /proc/<pid>/stat) per token issued\n\n")
	fmt.Printf("%-62s %10s %9s %9s %10s\n", "scenario", "tokens/s", "p50", "p99", "CPU/token")
	var profPath string
	for _, split := range []bool{false, true} {
		for _, cold := range []bool{false, true} {
			for _, n := range []int{1, 5} {
				sc := scenario{split: split, cold: cold, scopes: n}
				prof := ""
				if profile && !split && !cold && n == 1 {
					prof = filepath.Join(dir, "cpu.pprof")
					profPath = prof
				}
				res, err := withServer(bin, dir, sc, prof, func(url string) (result, error) {
					return closedLoop(url, sc.scopes, conc, dur)
				})
				if err != nil {
					return fmt.Errorf("%s: %w", sc, err)
				}
				name := sc.String()
				if prof != "" {
					name += " (CPU-profiled)"
				}
				res.print(name)
			}
		}
	}
	fmt.Println()
	for _, split := range []bool{false, true} {
		sc := scenario{split: split, scopes: 1}
		res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
			return fixedRate(url, sc.scopes, rate, dur)
		})
		if err != nil {
			return err
		}
		res.print(fmt.Sprintf("%s @%d/s", sc, rate))
	}
	if withVault {
		if err := benchVault(bin, dir, dur, conc, vaultRate); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	fmt.Println()
	if _, err := withServer(bin, dir, scenario{scopes: 1}, "", func(url string) (result, error) {
		return result{}, enumeration(url)
	}); err != nil {
		return err
	}
	if profPath != "" {
		fmt.Printf("\nCPU profile of the all-in-one warm 1-scope run (server process, top by cumulative time):\n")
		cmd := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=35", bin, profPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Printf("pprof failed: %v\n", err)
		}
		fmt.Println(string(out))
		if data, err := os.ReadFile(profPath); err == nil && profileOut != "" && os.WriteFile(profileOut, data, 0o644) == nil {
			fmt.Printf("profile kept in %s: go tool pprof -top %s %s\n", profileOut, bin, profileOut)
		}
	}
	return nil
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
	return fmt.Sprintf(`log: {level: info}
gateway:
  listen: %s
  public_url: http://%[1]s
  metrics_listen: %s
  services: [registry.local]
  backends: {authn: %s, authz: %s, signer: %s}
authn:
  listen: %s
  cache: {disabled: %t}
  backends:
    - {name: users, type: htpasswd, config: {path: %s, groups: {admins: [bench]}}}
authz:
  listen: %s
signer:
  listen: %s
  metrics_listen: %s
  key: %s
`, ports[portGateway], ports[portGatewayMetrics], ports[portAuthn], ports[portAuthz], ports[portSigner],
		ports[portAuthn], sc.cold, filepath.Join(dir, "htpasswd"), ports[portAuthz], ports[portSigner], ports[portSignerMetrics], key)
}

// server is a running Portcullis: its gateway URL and where the signer's metrics are.
type server struct{ url, signerMetrics string }

// Ports in the generated config, by index.
const (
	portGateway = iota
	portAuthn
	portAuthz
	portSigner
	portSignerMetrics
	portGatewayMetrics // the gateway's, and in all-in-one mode every service's, /metrics
	numPorts
)

func withServer(bin, dir string, sc scenario, cpuprofile string, f func(url string) (result, error)) (result, error) {
	return withServerAt(bin, dir, sc, cpuprofile, func(s server) (result, error) { return f(s.url) })
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
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(config(dir, sc, ports)), 0o600); err != nil {
		return result{}, err
	}
	targets := []string{"all"}
	if sc.split {
		targets = []string{"authn", "authz", "signer", "gateway"}
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
			_ = p.Wait()
		}
	}()
	for _, t := range targets {
		args := []string{"-target=" + t, "-config=" + cfgPath}
		if cpuprofile != "" {
			args = append(args, "-cpuprofile="+cpuprofile)
		}
		cmd := exec.Command(bin, args...)
		logf, err := os.Create(filepath.Join(dir, t+".log"))
		if err != nil {
			return result{}, err
		}
		defer logf.Close()
		cmd.Stdout, cmd.Stderr = io.Discard, logf
		if err := cmd.Start(); err != nil {
			return result{}, err
		}
		procs = append(procs, cmd)
	}
	url := "http://" + ports[portGateway]
	if err := waitReady(url, 15*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, targets[len(targets)-1]+".log"))
		return result{}, fmt.Errorf("%w\n%s", err, log)
	}
	metrics := "http://" + ports[portGatewayMetrics] + "/metrics"
	if sc.split {
		metrics = "http://" + ports[portSignerMetrics] + "/metrics"
	}
	cpu0 := cpuTime(procs)
	res, err := f(server{url: url, signerMetrics: metrics})
	res.cpu = cpuTime(procs) - cpu0
	return res, err
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

// statCPU reads utime+stime (fields 14 and 15) from a /proc/<pid>/stat line.
func statCPU(stat string) (time.Duration, bool) {
	// The command name (field 2) may hold spaces and parentheses; the fields after its
	// closing parenthesis are numbers, starting with field 3.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * clockTick, true
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
	elapsed time.Duration
	lat     []time.Duration
	cpu     time.Duration // the server's CPU time during the run
}

func (r result) print(name string) {
	slices.Sort(r.lat)
	pct := func(p float64) time.Duration {
		if len(r.lat) == 0 {
			return 0
		}
		return r.lat[min(len(r.lat)-1, int(float64(len(r.lat))*p))]
	}
	errs := ""
	if r.errs > 0 {
		errs = fmt.Sprintf("  (%d errors)", r.errs)
	}
	perToken := "-"
	if r.cpu > 0 && r.n > 0 {
		perToken = fmt.Sprintf("%.0fµs", float64(r.cpu.Microseconds())/float64(r.n))
	}
	fmt.Printf("%-62s %10.0f %9s %9s %10s%s\n", name, float64(r.n)/r.elapsed.Seconds(),
		pct(0.50).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), perToken, errs)
}

func newClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}, Timeout: 10 * time.Second}
}

var auth = "Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench-password"))

func one(c *http.Client, url string) (time.Duration, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", auth)
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return time.Since(start), nil
}

// closedLoop: conc clients, each sending its next request when the previous one returns.
func closedLoop(base string, scopes, conc int, dur time.Duration) (result, error) {
	url, c := tokenURL(base, scopes), newClient(conc)
	if _, err := one(c, url); err != nil { // warm the cache and the connection
		return result{}, err
	}
	var mu sync.Mutex
	var res result
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			for !stop.Load() {
				d, err := one(c, url)
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
func fixedRate(base string, scopes, rate int, dur time.Duration) (result, error) {
	url, c := tokenURL(base, scopes), newClient(256)
	if _, err := one(c, url); err != nil {
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
		go func(sched time.Time) {
			defer wg.Done()
			_, err := one(c, url)
			d := time.Since(sched) // from when it should have been sent
			mu.Lock()
			if err != nil {
				res.errs++
			} else {
				res.lat = append(res.lat, d)
			}
			mu.Unlock()
		}(next)
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
	vt := &benchT{dir: dir}
	defer vt.cleanup()
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
			return closedLoop(url, sc.scopes, conc, dur)
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
		return fixedRate(url, sc.scopes, rate, dur)
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
		r, err := f(s.url)
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

// benchT lets the test harness that starts Vault run outside go test.
type benchT struct {
	dir      string
	n        int
	cleanups []func()
}

func (b *benchT) Helper()                           {}
func (b *benchT) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (b *benchT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (b *benchT) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (b *benchT) Failed() bool                      { return false }
func (b *benchT) Cleanup(f func())                  { b.cleanups = append(b.cleanups, f) }
func (b *benchT) TempDir() string {
	b.n++
	d := filepath.Join(b.dir, fmt.Sprintf("vault-%d", b.n))
	_ = os.MkdirAll(d, 0o700)
	return d
}
func (b *benchT) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}
