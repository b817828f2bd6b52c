package main

import (
	"fmt"
	"path/filepath"
)

// benchBasic measures GET /token with HTTP Basic credentials: all-in-one and split, warm (login
// cache) and cold (bcrypt each time), 1 and 5 scopes, then what the decision log costs. It
// returns the all-in-one warm 1-scope rate, what the other groups are compared with, and that
// run's CPU profile when profiling is on.
func benchBasic(bin, dir string, o options) (warmBasic float64, profiles []cpuProfile, err error) {
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
					return closedLoop(basicGrant(url, sc.scopes), o.conc, o.dur)
				})
				if err != nil {
					return 0, nil, fmt.Errorf("%s: %w", sc, err)
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
	sc := scenario{scopes: 1, noDecisionLogs: true}
	res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
		return closedLoop(basicGrant(url, sc.scopes), o.conc, o.dur)
	})
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", sc, err)
	}
	res.print(sc.String()+", decision logs off", ratio(res.rate(), warmBasic, "of the run with decision logs"))
	return warmBasic, profiles, nil
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
