package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

func printHeader() {
	fmt.Printf("%-62s %10s %9s %9s %10s\n", "scenario", "tokens/s", "p50", "p99", "CPU/token")
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

// ratio is the note "x0.93 <what>" comparing rate with base, or "" without a base.
func ratio(rate, base float64, what string) string {
	if base <= 0 {
		return ""
	}
	return fmt.Sprintf("x%.2f %s", rate/base, what)
}
