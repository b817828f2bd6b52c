package main

import (
	"testing"
	"time"
)

func TestStatCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stat string
		want time.Duration
		ok   bool
	}{
		{"plain", "4242 (portcullis) S 1 4242 4242 0 -1 4194560 2306 0 0 0 150 37 0 0 20 0 9 0 1234 0", 1870 * time.Millisecond, true},
		{"name with spaces and parentheses", "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0", 70 * time.Millisecond, true},
		{"truncated", "7 (x) R 1 7", 0, false},
		{"no name", "garbage", 0, false},
		{"not numbers", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 u s 0 0 20 0 1 0 1 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := statCPU(tt.stat)
			if got != tt.want || ok != tt.ok {
				t.Errorf("statCPU = %s, %t; want %s, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStatPPid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stat string
		want int
		ok   bool
	}{
		{"postgres backend", "5012 (postgres) S 4990 5012 5012 0 -1 4194368 300 0 0 0 12 3 0 0 20 0 1 0 99 0", 4990, true},
		{"name with parentheses", "7 (a) b) R 42 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0", 42, true},
		{"truncated", "7 (x) R 1 7", 0, false},
		{"not a number", "7 (x) R g 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := statPPid(tt.stat)
			if got != tt.want || ok != tt.ok {
				t.Errorf("statPPid = %d, %t; want %d, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStatComm(t *testing.T) {
	t.Parallel()
	tests := []struct{ stat, want string }{
		{"4242 (slapd) S 1 4242 4242 0 -1", "slapd"},
		{"7 (a b) (c)) R 1 7 7", "a b) (c)"},
		{"garbage", ""},
		{"7 ) (x", ""},
	}
	for _, tt := range tests {
		if got := statComm(tt.stat); got != tt.want {
			t.Errorf("statComm(%q) = %q, want %q", tt.stat, got, tt.want)
		}
	}
}

func TestStatusKB(t *testing.T) {
	t.Parallel()
	// The head of a real /proc/<pid>/status, tabs and padding as the kernel writes them.
	const status = "Name:\tportcullis\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\n" +
		"VmPeak:\t 1290452 kB\nVmSize:\t 1290452 kB\nVmLck:\t       0 kB\nVmPin:\t       0 kB\n" +
		"VmHWM:\t   57960 kB\nVmRSS:\t   53412 kB\nRssAnon:\t   31220 kB\nThreads:\t9\n"
	tests := []struct {
		name, status, field string
		want                int64
		ok                  bool
	}{
		{"VmRSS", status, "VmRSS", 53412 << 10, true},
		{"VmHWM", status, "VmHWM", 57960 << 10, true},
		{"zero", status, "VmLck", 0, true},
		{"a prefix is not the field", status, "Rss", 0, false},
		{"missing (a kernel thread has no Vm lines)", "Name:\tkthreadd\nState:\tS (sleeping)\n", "VmRSS", 0, false},
		{"no unit", "VmRSS:\t53412\n", "VmRSS", 0, false},
		{"not a number", "VmRSS:\t5x412 kB\n", "VmRSS", 0, false},
		{"empty", "", "VmHWM", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := statusKB(tt.status, tt.field)
			if got != tt.want || ok != tt.ok {
				t.Errorf("statusKB(%q) = %d, %t; want %d, %t", tt.field, got, ok, tt.want, tt.ok)
			}
		})
	}
}
