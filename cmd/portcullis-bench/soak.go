package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// benchSoak runs the split deployment with two signer replicas at half of its measured peak
// for o.soak, restarts one signer replica half-way (SIGTERM: it drains, then a new process
// takes its place), and prints the errors the load generator counted (target 0) and each
// process's resident set at the start and the end (target: flat, at most 60 MB a service).
func benchSoak(bin, dir string, o options) error {
	if o.soak <= 0 {
		return nil
	}
	fmt.Printf("\nSoak (split, 2 signer replicas, warm Basic, 1 scope): half of peak for %s, a signer replica restarted half-way\n", o.soak)
	sc := scenario{split: true, scopes: 1, signers: 2}
	_, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
		peak, err := closedLoop(basicGrant(s.url, 1), o.conc, o.dur)
		if err != nil {
			return result{}, err
		}
		rate := max(1, int(peak.rate()/2))
		before := s.rss()
		victim := -1
		for i, n := range s.names {
			if strings.HasPrefix(n, "signer-") {
				victim = i // the last signer: the second replica
			}
		}
		restarted := make(chan error, 1)
		go func() {
			time.Sleep(o.soak / 2)
			restarted <- s.restart(victim)
		}()
		res, err := fixedRate(basicGrant(s.url, 1), rate, o.soak)
		if err != nil {
			return result{}, err
		}
		if err := <-restarted; err != nil {
			return result{}, fmt.Errorf("restarting %s: %w", s.names[victim], err)
		}
		after := s.rss()
		res.print(fmt.Sprintf("soak @%d/s (half of %.0f/s peak), %s restarted", rate, peak.rate(), s.names[victim]))
		verdict := "target met"
		if res.errs > 0 {
			verdict = "TARGET MISSED"
		}
		fmt.Printf("  failed token requests: %d of %d (target 0: %s)\n", res.errs, res.n+res.errs, verdict)
		names := slices.Clone(s.names)
		fmt.Printf("  %-14s %12s %12s\n", "process", "RSS start", "RSS end")
		for i, n := range names {
			note := ""
			if i == victim {
				note = "  (restarted half-way: end is the new process)"
			}
			if after[n] > 60<<20 {
				note += "  ABOVE 60 MB"
			}
			fmt.Printf("  %-14s %10.1f MB %10.1f MB%s\n", n, float64(before[n])/(1<<20), float64(after[n])/(1<<20), note)
		}
		return res, nil
	})
	return err
}
