package main

import (
	"testing"
	"time"
)

func TestCPUNotes(t *testing.T) {
	t.Parallel()
	us := time.Microsecond
	split := result{n: 100, cpu: 100 * 700 * us, parts: []procCPUShare{
		{"authn-0", 100 * 100 * us}, {"authz-1", 100 * 300 * us}, {"signer-2", 100 * 100 * us}, {"gateway-3", 100 * 200 * us}}}
	aio := result{n: 1000, cpu: 1000 * 500 * us}
	tests := []struct{ name, got, want string }{
		{"of unavoidable", ofUnavoidable(240*us, 160*us), "x1.50 of unavoidable"},
		{"of unavoidable, rounded", ofUnavoidable(571*us, 160*us), "x3.57 of unavoidable"},
		{"unavoidable unknown", ofUnavoidable(571*us, 0), ""},
		{"server CPU unknown", ofUnavoidable(0, 160*us), ""},
		{"decision logs cost", decisionLogCost(658*us, 501*us), "decision logs cost +31.3% CPU/token"},
		{"decision logs cheaper", decisionLogCost(490*us, 500*us), "decision logs cost -2.0% CPU/token"},
		{"decision logs unknown", decisionLogCost(490*us, 0), ""},
		{"split sum", splitSum(split, aio), "split sum x1.40 of all-in-one (authn 100µs + authz 300µs + signer 100µs + gateway 200µs)"},
		{"split sum without parts", splitSum(result{n: 10, cpu: 10 * 700 * us}, aio), "split sum x1.40 of all-in-one"},
		{"split sum, all-in-one unknown", splitSum(split, result{}), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %q; want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestCPUPerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    result
		want time.Duration
	}{
		{result{n: 4, cpu: time.Millisecond}, 250 * time.Microsecond},
		{result{n: 0, cpu: time.Millisecond}, 0},
		{result{n: 4}, 0}, // /proc could not tell
	}
	for _, tt := range tests {
		if got := tt.r.cpuPerToken(); got != tt.want {
			t.Errorf("%+v: cpuPerToken = %s; want %s", tt.r, got, tt.want)
		}
	}
}

func TestFormats(t *testing.T) {
	t.Parallel()
	tests := []struct{ got, want string }{
		{fmtBytes(512), "512B"},
		{fmtBytes(1536), "1.5KB"},
		{fmtBytes(3 << 20), "3.0MB"},
		{fmtMicros(1499 * time.Nanosecond), "1µs"},
		{fmtMicros(571 * time.Microsecond), "571µs"},
		{joinNotes([]string{"a", "", "b"}), "  a  b"},
		{joinNotes(nil), ""},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%q; want %q", tt.got, tt.want)
		}
	}
}

func TestMedianRun(t *testing.T) {
	t.Parallel()
	us := time.Microsecond
	tests := []struct {
		name string
		cpus []time.Duration
		want int
	}{
		{"none", nil, -1},
		{"one", []time.Duration{300 * us}, 0},
		{"three, median first", []time.Duration{305 * us, 315 * us, 297 * us}, 0},
		{"three, median last", []time.Duration{301 * us, 315 * us, 309 * us}, 2},
		{"three, sorted", []time.Duration{301 * us, 309 * us, 315 * us}, 1},
		{"two: the lower", []time.Duration{320 * us, 300 * us}, 1},
		{"four: the lower-middle", []time.Duration{340 * us, 310 * us, 300 * us, 320 * us}, 1},
		{"ties keep the order run", []time.Duration{300 * us, 300 * us, 300 * us}, 1},
		{"unknown sorts lowest", []time.Duration{0, 310 * us, 300 * us}, 2},
	}
	for _, tt := range tests {
		if got := medianRun(tt.cpus); got != tt.want {
			t.Errorf("%s: medianRun(%v) = %d; want %d", tt.name, tt.cpus, got, tt.want)
		}
	}
}

func TestDecisionLogNote(t *testing.T) {
	t.Parallel()
	us := time.Microsecond
	ds := func(xs ...time.Duration) []time.Duration {
		for i := range xs {
			xs[i] *= us
		}
		return xs
	}
	tests := []struct {
		name    string
		on, off []time.Duration
		want    string
	}{
		{"one pair: as before", ds(658), ds(501), "decision logs cost +31.3% CPU/token"},
		{"three pairs: medians, each run in order", ds(315, 301, 309), ds(297, 311, 305),
			"decision logs cost +1.3% CPU/token (median of 3 interleaved runs each: on 315/301/309µs, off 297/311/305µs)"},
		{"three pairs, cheaper", ds(290, 300, 310), ds(320, 305, 300),
			"decision logs cost -1.6% CPU/token (median of 3 interleaved runs each: on 290/300/310µs, off 320/305/300µs)"},
		{"two pairs: the lower-middle", ds(310, 300), ds(300, 290),
			"decision logs cost +3.4% CPU/token (median of 2 interleaved runs each: on 310/300µs, off 300/290µs)"},
		{"one pair, off unknown", ds(490), ds(0), ""},
		{"one run's CPU unknown", ds(300, 0, 310), ds(290, 295, 300), ""},
		{"no runs", nil, nil, ""},
	}
	for _, tt := range tests {
		if got := decisionLogNote(tt.on, tt.off); got != tt.want {
			t.Errorf("%s: %q; want %q", tt.name, got, tt.want)
		}
	}
}

func TestPeakRSSNote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hwm, rss int64
		want     string
	}{
		{"both", 59351040, 54693888, "peak RSS 56.6 MiB (VmHWM; 52.2 MiB at the end)"},
		{"no end figure", 60 << 20, 0, "peak RSS 60.0 MiB (VmHWM)"},
		{"unknown peak", 0, 54693888, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := peakRSSNote(tt.hwm, tt.rss); got != tt.want {
				t.Errorf("peakRSSNote(%d, %d) = %q, want %q", tt.hwm, tt.rss, got, tt.want)
			}
		})
	}
}
