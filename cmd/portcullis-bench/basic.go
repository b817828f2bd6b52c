package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// benchBasic measures GET /token with HTTP Basic credentials: the unavoidable work first,
// then all-in-one and split, warm (login cache) and cold (bcrypt each time), 1 and 5 scopes,
// the all-in-one warm 1-scope row also with decision logs off, each the median of interleaved
// runs (warmBench), and after the other all-in-one rows the warm 1-scope one at -rss-conns
// clients with the server's peak resident set. It returns the all-in-one warm 1-scope rate
// (of the median run with decision logs), what the other groups are compared with, and a CPU
// profile of that scenario when profiling is on.
func benchBasic(bin, dir string, o options) (warmBasic float64, profiles []cpuProfile, err error) {
	w, err := newWarmBench(bin, dir, o)
	if err != nil {
		return 0, nil, err
	}
	for _, split := range []bool{false, true} {
		for _, cold := range []bool{false, true} {
			for _, n := range []int{1, 5} {
				sc := scenario{split: split, cold: cold, scopes: n}
				switch {
				case !cold && n == 1 && !split:
					err = w.allInOne()
				case !cold && n == 1 && split:
					// The resident-set row closes the all-in-one rows.
					if err = w.rssRow(); err == nil {
						err = w.split()
					}
				default:
					var res result
					res, err = withServer(bin, dir, sc, "", func(url string) (result, error) {
						return closedLoop(basicGrant(url, sc.scopes), o.conc, o.dur)
					})
					if err != nil {
						err = fmt.Errorf("%s: %w", sc, err)
					} else {
						res.print(sc.String())
					}
				}
				if err != nil {
					return 0, nil, err
				}
			}
		}
	}
	return w.aio.rate(), w.profiles, nil
}

// benchWarm is -only warm: the rows issue 19's goals are measured on, for quick before/after
// comparisons.
func benchWarm(bin, dir string, o options) ([]cpuProfile, error) {
	w, err := newWarmBench(bin, dir, o)
	if err != nil {
		return nil, err
	}
	if err := w.allInOne(); err != nil {
		return nil, err
	}
	if err := w.rssRow(); err != nil {
		return nil, err
	}
	if err := w.split(); err != nil {
		return nil, err
	}
	return w.profiles, nil
}

// warmBench measures the warm 1-scope Basic rows against the unavoidable work, measured first
// in this process on the same machine: all-in-one with decision logs on (the default) and
// off, and split, each with its CPU per token as a multiple of the unavoidable work's.
type warmBench struct {
	bin, dir    string
	o           options
	unavoidable unavoidableCost
	aio         result // all-in-one, decision logs on: the median run
	profiles    []cpuProfile
}

// warmAllInOne measures the unavoidable work and prints the all-in-one warm rows, what the
// -only groups other than warm compare theirs with.
func warmAllInOne(bin, dir string, o options) (*warmBench, error) {
	w, err := newWarmBench(bin, dir, o)
	if err != nil {
		return nil, err
	}
	return w, w.allInOne()
}

func newWarmBench(bin, dir string, o options) (*warmBench, error) {
	u, err := benchUnavoidable(dir)
	if err != nil {
		return nil, fmt.Errorf("unavoidable work: %w", err)
	}
	u.print()
	return &warmBench{bin: bin, dir: dir, o: o, unavoidable: u}, nil
}

func (w *warmBench) run(sc scenario, cpuprofile string) (result, error) {
	res, err := withServer(w.bin, w.dir, sc, cpuprofile, func(url string) (result, error) {
		return closedLoop(basicGrant(url, sc.scopes), w.o.conc, w.o.dur)
	})
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", sc, err)
	}
	return res, nil
}

// allInOne prints the all-in-one rows: decision logs on, then off, each the median by CPU per
// token of -dl-pairs runs interleaved on, off, on, off… (one pair is too noisy on a shared
// 2-core machine to tell a few per cent), then (with -profile) one more run under the CPU
// profiler, kept apart so the profiler's own cost is in neither figure compared.
func (w *warmBench) allInOne() error {
	sc := scenario{scopes: 1}
	off := scenario{scopes: 1, noDecisionLogs: true}
	pairs := max(w.o.dlPairs, 1)
	ons, offs := make([]result, 0, pairs), make([]result, 0, pairs)
	for range pairs {
		res, err := w.run(sc, "")
		if err != nil {
			return err
		}
		ons = append(ons, res)
		if res, err = w.run(off, ""); err != nil {
			return err
		}
		offs = append(offs, res)
	}
	onCPU, offCPU := cpusPerToken(ons), cpusPerToken(offs)
	w.aio = ons[medianRun(onCPU)]
	w.aio.print(sc.String(), ofUnavoidable(w.aio.cpuPerToken(), w.unavoidable.perToken))
	res := offs[medianRun(offCPU)]
	res.print(off.String()+", decision logs off", ofUnavoidable(res.cpuPerToken(), w.unavoidable.perToken),
		decisionLogNote(onCPU, offCPU), ratio(res.rate(), w.aio.rate(), "tokens/s of the run with decision logs"))
	if !w.o.profile {
		return nil
	}
	prof := filepath.Join(w.dir, "cpu.pprof")
	res, err := w.run(sc, prof)
	if err != nil {
		return err
	}
	w.profiles = append(w.profiles, cpuProfile{"the all-in-one warm 1-scope run", prof, w.o.profileOut})
	res.print(sc.String() + " (CPU-profiled)")
	return nil
}

// rssRow prints the all-in-one warm 1-scope row at -rss-conns clients (each its own
// connection), decision logs on as by default, with the server's peak resident set (VmHWM,
// read as the run ends, before the server stops: the peak of its whole life, start-up
// included) and its resident set at the end, because the memory goal (at most 60 MB) is set
// at 64 connections. -rss-conns 0 skips it.
func (w *warmBench) rssRow() error {
	if w.o.rssConns <= 0 {
		return nil
	}
	sc := scenario{scopes: 1}
	var hwm, rss int64
	res, err := withServerAt(w.bin, w.dir, sc, "", func(s server) (result, error) {
		res, err := s.measure(func() (result, error) {
			return closedLoop(basicGrant(s.url, sc.scopes), w.o.rssConns, w.o.dur)
		})
		name := s.names[0] // all-in-one: the one process
		hwm, rss = s.hwm()[name], s.rss()[name]
		return res, err
	})
	if err != nil {
		return fmt.Errorf("%s, %d connections: %w", sc, w.o.rssConns, err)
	}
	res.print(fmt.Sprintf("%s, %d connections", sc, w.o.rssConns),
		ofUnavoidable(res.cpuPerToken(), w.unavoidable.perToken), peakRSSNote(hwm, rss))
	return nil
}

// peakRSSNote is the note "peak RSS 56.6 MiB (VmHWM; 52.1 MiB at the end)" for a process's
// peak and final resident set in bytes, or "" when /proc could not tell the peak; the end
// figure is left out when unknown (0).
func peakRSSNote(hwm, rss int64) string {
	if hwm <= 0 {
		return ""
	}
	const mib = 1 << 20
	if rss <= 0 {
		return fmt.Sprintf("peak RSS %.1f MiB (VmHWM)", float64(hwm)/mib)
	}
	return fmt.Sprintf("peak RSS %.1f MiB (VmHWM; %.1f MiB at the end)", float64(hwm)/mib, float64(rss)/mib)
}

// cpusPerToken is each run's CPU per token, in the order run.
func cpusPerToken(runs []result) []time.Duration {
	cpus := make([]time.Duration, len(runs))
	for i, r := range runs {
		cpus[i] = r.cpuPerToken()
	}
	return cpus
}

// split prints the split warm row: the four processes' CPU per token summed, as a multiple
// of the unavoidable work's and of the all-in-one figure, and each process's share.
func (w *warmBench) split() error {
	sc := scenario{split: true, scopes: 1}
	res, err := w.run(sc, "")
	if err != nil {
		return err
	}
	res.print(sc.String(), ofUnavoidable(res.cpuPerToken(), w.unavoidable.perToken), splitSum(res, w.aio))
	return nil
}

// benchBasicFixedRate measures warm Basic latency at o.rate tokens/s, all-in-one and split:
// an open loop, so the percentiles are free of a closed loop's coordinated omission.
func benchBasicFixedRate(bin, dir string, o options) error {
	for _, split := range []bool{false, true} {
		sc := scenario{split: split, scopes: 1}
		res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
			return fixedRate(basicGrant(url, sc.scopes), o.rate, o.dur)
		})
		if err != nil {
			return err
		}
		res.print(fmt.Sprintf("%s @%d/s", sc, o.rate))
	}
	return nil
}
