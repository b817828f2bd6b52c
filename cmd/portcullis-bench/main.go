// Command portcullis-bench measures token throughput, latency and server CPU per token on
// loopback: it starts bin/portcullis (all-in-one, then split into four processes) and drives
// GET /token with HTTP Basic credentials, then the refresh grant a logged-in docker client
// uses, with SQLite and with PostgreSQL session stores, then a CI job's workload token (a JWT)
// as the password and exchanged for a token (RFC 8693), then users of an OpenLDAP directory
// (slapd on this machine), robot keys, personal access tokens and device-flow polls, signer replicas, authz decisions, a soak and Vault
// signing. `make bench` runs it; figures are printed, never asserted.
//
// The warm Basic rows are set against the unavoidable work of a token, measured first in this
// process on the same machine (unavoidable.go): one ES256 signature and one prepared OPA
// evaluation of the default policy. Those rows say their server CPU per token as a multiple of
// it ("x1.50 of unavoidable" is issue 19's goal), what the decision logs cost (all-in-one, the
// median of interleaved runs on against the median off) and the split deployment's summed CPU
// per token against all-in-one. All-in-one rows also give the server's heap allocations per
// token (go_memstats_mallocs_total and go_memstats_alloc_bytes_total from
// gateway.metrics_listen, before and after the run). One
// more all-in-one warm row at -rss-conns (64) clients gives the server's peak resident set
// (VmHWM from /proc/<pid>/status as the run ends), the memory goal (at most 60 MB) being set
// at 64 connections. `-only warm` measures just those rows, for before/after comparisons of a
// change.
//
// This file has the flags and the order of the groups; each group is a file of its own
// (basic.go, refresh.go, workload.go, ldap.go, robots.go, signin.go, replicas.go, authz.go, soak.go,
// vault.go, enumeration.go). The servers' configs are app.Config values (config.go), started
// by server.go; load.go drives them, proc.go counts their CPU time, metrics.go their heap
// allocations, unavoidable.go measures the unavoidable work and report.go prints rows.
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
	profile := flag.Bool("profile", true, "CPU-profile the refresh-grant runs and one more all-in-one warm run (the warm rows compared run without the profiler) and print the top functions")
	profileOut := flag.String("profile-out", ".cache/bench-cpu.pprof", "where to keep the warm run's CPU profile (go tool pprof); the refresh runs' go beside it")
	withVault := flag.Bool("vault", true, "also compare Vault transit signing (needs the vault binary: scripts/install-tools.sh vault)")
	rssConns := flag.Int("rss-conns", 64, "clients (each its own connection) of one more all-in-one warm 1-scope run that prints the server's peak resident set (VmHWM), in the warm group; 0 skips it")
	dlPairs := flag.Int("dl-pairs", 3, "interleaved pairs of all-in-one warm runs with decision logs on and off; each row is its median run by CPU/token (1: one run each)")
	only := flag.String("only", "", "run one group of rows only: warm (the unavoidable work, all-in-one warm Basic with decision logs on and off (the median of -dl-pairs interleaved runs each), then at -rss-conns clients with the peak RSS, split warm Basic, with their ratios), signin (warm Basic, then workload tokens, token exchange, personal access tokens and device-flow polls against it), refresh (warm Basic, then the refresh grant against it), authz or soak")
	soak := flag.Duration("soak", 10*time.Minute, "length of the soak run (half of peak, a signer replica restarted half-way); 0 skips it")
	flag.Parse()
	if *dlPairs < 1 {
		fmt.Fprintln(os.Stderr, "portcullis-bench: -dl-pairs must be at least 1")
		os.Exit(2)
	}
	if *rssConns < 0 {
		fmt.Fprintln(os.Stderr, "portcullis-bench: -rss-conns must be 0 (skip the row) or more")
		os.Exit(2)
	}
	o := options{
		bin: *bin, dur: *dur, conc: *conc, rate: *rate, vaultRate: *vaultRate, refreshRate: *refreshRate,
		refreshTokens: *refreshTokens, workloadTokens: *workloadTokens, ldapUsers: *ldapUsers, ldapPool: *ldapPool,
		profile: *profile, profileOut: *profileOut, vault: *withVault, only: *only, soak: *soak,
		dlPairs: *dlPairs, rssConns: *rssConns,
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
	dlPairs                            int // interleaved decision logs on/off pairs (warmBench)
	rssConns                           int // clients of the warm group's peak-RSS row; 0: no row
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
	fmt.Printf("portcullis bench: %d clients for %s per closed-loop run; fixed-rate runs at %d tokens/s; server and load generator share this machine's %d CPUs\n",
		o.conc, o.dur, o.rate, numCPU())
	fmt.Printf("CPU/token: CPU time of the Portcullis process(es) during the run (user+system, /proc/<pid>/stat) per token issued\n")
	fmt.Printf("allocs/tok, B/tok: heap allocations of the Portcullis process during the run per token issued (all-in-one only: its /metrics)\n\n")
	printHeader()
	switch o.only {
	case "":
	case "warm":
		profiles, err := benchWarm(bin, dir, o)
		if err != nil {
			return err
		}
		for _, p := range profiles {
			printProfile(bin, p)
		}
		return nil
	case "signin":
		// What people and machines log in with besides a password, against warm Basic.
		w, err := warmAllInOne(bin, dir, o)
		if err != nil {
			return err
		}
		if _, err := benchWorkload(bin, dir, o, w.aio.rate()); err != nil {
			return fmt.Errorf("workload identity: %w", err)
		}
		return benchSignIn(bin, dir, o, w.aio.rate())
	case "refresh":
		// The refresh grant against warm Basic, for the refresh goal's before/after.
		w, err := warmAllInOne(bin, dir, o)
		if err != nil {
			return err
		}
		profiles, err := benchRefresh(bin, dir, o, w.aio.rate())
		if err != nil {
			return fmt.Errorf("refresh grant: %w", err)
		}
		for _, p := range append(w.profiles, profiles...) {
			printProfile(bin, p)
		}
		return nil
	case "authz":
		return benchAuthz(bin, dir, o)
	case "soak":
		return benchSoak(bin, dir, o)
	default:
		return fmt.Errorf("-only %q: the groups are warm, signin, refresh, authz and soak", o.only)
	}
	// warmBasic is the all-in-one warm 1-scope Basic rate, what later groups are compared with.
	warmBasic, profiles, err := benchBasic(bin, dir, o)
	if err != nil {
		return err
	}
	fmt.Println()
	if err := benchBasicFixedRate(bin, dir, o); err != nil {
		return err
	}
	ps, err := benchRefresh(bin, dir, o, warmBasic)
	if err != nil {
		return fmt.Errorf("refresh grant: %w", err)
	}
	profiles = append(profiles, ps...)
	ps, err = benchWorkload(bin, dir, o, warmBasic)
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
	if err := benchSignIn(bin, dir, o, warmBasic); err != nil {
		return fmt.Errorf("personal access tokens and device flow: %w", err)
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
		if err := benchVault(bin, dir, o.dur, o.conc, o.vaultRate); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	fmt.Println()
	if err := benchEnumeration(bin, dir); err != nil {
		return err
	}
	for _, p := range profiles {
		printProfile(bin, p)
	}
	return nil
}
