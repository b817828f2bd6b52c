package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// rowFormat is a row of the table: scenario, tokens/s, p50, p99, CPU/token, allocs/token,
// bytes allocated/token, then the notes.
const rowFormat = "%-66s %10s %9s %9s %10s %11s %10s%s\n"

func printHeader() {
	fmt.Printf(rowFormat, "scenario", "tokens/s", "p50", "p99", "CPU/token", "allocs/tok", "B/tok", "")
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
	// parts is each server process's CPU time during the run.
	parts []procCPUShare
	// allocs is what the server allocated during the run (all-in-one only; nil: unknown).
	allocs *allocCounters
}

// procCPUShare is one server process's CPU time during a run.
type procCPUShare struct {
	name string // target-index
	cpu  time.Duration
}

// cpuPerToken is the server's CPU time per token issued, or 0 when unknown.
func (r result) cpuPerToken() time.Duration {
	if r.cpu <= 0 || r.n <= 0 {
		return 0
	}
	return r.cpu / time.Duration(r.n)
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
	perToken, allocs, bytes := "-", "-", "-"
	if c := r.cpuPerToken(); c > 0 {
		perToken = fmtMicros(c)
	}
	if r.allocs != nil && r.n > 0 {
		allocs = fmt.Sprintf("%.0f", r.allocs.mallocs/float64(r.n))
		bytes = fmtBytes(r.allocs.bytes / float64(r.n))
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
	fmt.Printf(rowFormat, name, fmt.Sprintf("%.0f", r.rate()),
		pct(0.50).Round(10*time.Microsecond).String(), pct(0.99).Round(10*time.Microsecond).String(),
		perToken, allocs, bytes, joinNotes(extra))
}

// joinNotes is the notes after a row's figures, the empty ones left out.
func joinNotes(notes []string) string {
	var b strings.Builder
	for _, n := range notes {
		if n != "" {
			b.WriteString("  ")
			b.WriteString(n)
		}
	}
	return b.String()
}

// fmtMicros is d in whole microseconds: "571µs".
func fmtMicros(d time.Duration) string {
	return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
}

// fmtBytes is a byte count in B, KB or MB (of 1,024).
func fmtBytes(b float64) string {
	switch {
	case b < 1<<10:
		return fmt.Sprintf("%.0fB", b)
	case b < 1<<20:
		return fmt.Sprintf("%.1fKB", b/(1<<10))
	default:
		return fmt.Sprintf("%.1fMB", b/(1<<20))
	}
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

// cpuRatio is the note "x1.52 <what>": CPU time x over base, or "" when either is unknown.
func cpuRatio(x, base time.Duration, what string) string {
	if x <= 0 || base <= 0 {
		return ""
	}
	return fmt.Sprintf("x%.2f %s", float64(x)/float64(base), what)
}

// ofUnavoidable is the note comparing a row's server CPU per token with the unavoidable work
// (issue 19's goal: x1.50 at most).
func ofUnavoidable(perToken, unavoidable time.Duration) string {
	return cpuRatio(perToken, unavoidable, "of unavoidable")
}

// decisionLogCost is the note saying how much more server CPU per token a run with decision
// logs (on) took than one without (off), or "" when either is unknown.
func decisionLogCost(on, off time.Duration) string {
	if on <= 0 || off <= 0 {
		return ""
	}
	return fmt.Sprintf("decision logs cost %+.1f%% CPU/token", (float64(on)/float64(off)-1)*100)
}

// medianRun is the index in cpus (runs' CPU per token) of the median run, or -1 for none.
// For an even count it is the lower-middle run: a run that happened, not an average of two
// that would match neither row's other figures. Ties keep the order of the runs.
func medianRun(cpus []time.Duration) int {
	if len(cpus) == 0 {
		return -1
	}
	order := make([]int, len(cpus))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(cpus[a], cpus[b]) })
	return order[(len(cpus)-1)/2]
}

// decisionLogNote is the decision-log cost note for pairs of interleaved runs with decision
// logs on and off (CPU per token of each, in the order run; as many on as off): the cost of
// the median on run over the median off run, followed, when there was more than one pair, by
// every run's figure so the spread shows. It is "" when any run's CPU is unknown (0), as
// decisionLogCost is: a median over unknowns says nothing.
func decisionLogNote(on, off []time.Duration) string {
	if len(on) == 0 || len(off) == 0 || slices.Contains(on, 0) || slices.Contains(off, 0) {
		return ""
	}
	note := decisionLogCost(on[medianRun(on)], off[medianRun(off)])
	if len(on) == 1 {
		return note
	}
	return fmt.Sprintf("%s (median of %d interleaved runs each: on %s, off %s)", note, len(on), joinMicros(on), joinMicros(off))
}

// joinMicros is CPU figures in whole microseconds, slash-separated: "301/309/315µs".
func joinMicros(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond))
	}
	return strings.Join(parts, "/") + "µs"
}

// splitSum is the note comparing the split deployment's summed CPU per token with the
// all-in-one figure, followed by each process's share per token.
func splitSum(split, allInOne result) string {
	note := cpuRatio(split.cpuPerToken(), allInOne.cpuPerToken(), "of all-in-one")
	if note == "" {
		return ""
	}
	note = "split sum " + note
	if split.n <= 0 || len(split.parts) < 2 {
		return note
	}
	shares := make([]string, len(split.parts))
	for i, p := range split.parts {
		name, _, _ := strings.Cut(p.name, "-")
		shares[i] = name + " " + fmtMicros(p.cpu/time.Duration(split.n))
	}
	return note + " (" + strings.Join(shares, " + ") + ")"
}
