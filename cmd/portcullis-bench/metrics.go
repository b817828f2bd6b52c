package main

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// allocCounters are the Go runtime's allocation counters of a Portcullis process, as its
// /metrics page shows them (the Go collector internal/app registers).
type allocCounters struct {
	mallocs float64 // go_memstats_mallocs_total: heap objects allocated so far
	bytes   float64 // go_memstats_alloc_bytes_total: bytes allocated so far
}

func (a allocCounters) sub(b allocCounters) allocCounters {
	return allocCounters{a.mallocs - b.mallocs, a.bytes - b.bytes}
}

// readAllocCounters scrapes the allocation counters from a /metrics URL.
func readAllocCounters(url string) (allocCounters, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return allocCounters{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return allocCounters{}, fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return allocCounters{}, err
	}
	return parseAllocCounters(string(b))
}

// parseAllocCounters reads the allocation counters from a Prometheus text exposition.
func parseAllocCounters(text string) (allocCounters, error) {
	var a allocCounters
	for _, m := range []struct {
		name string
		v    *float64
	}{{"go_memstats_mallocs_total", &a.mallocs}, {"go_memstats_alloc_bytes_total", &a.bytes}} {
		v, found, err := metricValue(text, m.name)
		if err != nil {
			return allocCounters{}, err
		}
		if !found {
			return allocCounters{}, fmt.Errorf("no %s in the metrics (is the Go collector registered?)", m.name)
		}
		*m.v = v
	}
	return a, nil
}

// metricValue finds the sample of the unlabelled series name in a Prometheus text
// exposition: "name value" or "name value timestamp". A series of that name with labels, or
// one whose name merely starts with name, is not it.
func metricValue(text, name string) (v float64, found bool, err error) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue // another metric, a comment, or this one with labels
		}
		f := strings.Fields(rest)
		if len(f) < 1 || len(f) > 2 {
			return 0, false, fmt.Errorf("metric %s: malformed sample %q", name, strings.TrimSpace(line))
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric %s: %w", name, err)
		}
		return v, true, nil
	}
	return 0, false, nil
}
