// Command portcullis-bench measures token throughput, latency and server CPU per token on
// loopback: it starts bin/portcullis (all-in-one, then split into four processes) and drives
// GET /token with HTTP Basic credentials, then the refresh grant a logged-in docker client
// uses, with SQLite and with PostgreSQL session stores, then a CI job's workload token (a JWT)
// as the password, then users of an OpenLDAP directory (slapd on this machine), with the login
// cache and binding each time. `make bench` runs it; figures are printed, never asserted.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
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
