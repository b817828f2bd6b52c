package main

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestMetricValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       float64
		found      bool
		wantErr    bool
	}{
		{"plain", "go_memstats_mallocs_total 12345\n", 12345, true, false},
		{"exponent", "go_memstats_mallocs_total 1.2345e+06\n", 1234500, true, false},
		{"with timestamp", "go_memstats_mallocs_total 42 1700000000000\n", 42, true, false},
		{"after help and type", "# HELP go_memstats_mallocs_total Total number of heap objects allocated.\n# TYPE go_memstats_mallocs_total counter\ngo_memstats_mallocs_total 7\n", 7, true, false},
		{"longer name first", "go_memstats_mallocs_total_other 1\ngo_memstats_mallocs_total 2\n", 2, true, false},
		{"labelled series is another", "go_memstats_mallocs_total{x=\"y\"} 1\n", 0, false, false},
		{"missing", "go_goroutines 9\n", 0, false, false},
		{"no final newline", "go_memstats_mallocs_total 3", 3, true, false},
		{"crlf", "go_memstats_mallocs_total 4\r\n", 4, true, false},
		{"not a number", "go_memstats_mallocs_total many\n", 0, false, true},
		{"too many fields", "go_memstats_mallocs_total 1 2 3\n", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, found, err := metricValue(tt.text, "go_memstats_mallocs_total")
			if (err != nil) != tt.wantErr || found != tt.found || got != tt.want {
				t.Errorf("metricValue = %v, %t, %v; want %v, %t, error %t", got, found, err, tt.want, tt.found, tt.wantErr)
			}
		})
	}
}

func TestParseAllocCounters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, text string
		want       allocCounters
		wantErr    bool
	}{
		{"both", "go_memstats_alloc_bytes_total 2.5e+07\ngo_memstats_mallocs_total 1000\n", allocCounters{1000, 2.5e7}, false},
		{"no bytes", "go_memstats_mallocs_total 1000\n", allocCounters{}, true},
		{"no mallocs", "go_memstats_alloc_bytes_total 1000\n", allocCounters{}, true},
		{"empty", "", allocCounters{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAllocCounters(tt.text)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseAllocCounters = %+v, %v; want %+v, error %t", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// The Go collector internal/app registers still exports the counters the bench reads.
func TestReadAllocCountersFromGoCollector(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	a0, err := readAllocCounters(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	sink := make([][]byte, 0, 1000)
	for range 1000 {
		sink = append(sink, make([]byte, 64))
	}
	_, _ = io.Discard.Write(sink[len(sink)-1])
	a1, err := readAllocCounters(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if d := a1.sub(a0); d.mallocs < 1000 || d.bytes < 64000 {
		t.Errorf("counters grew by %+v over 1,000 allocations of 64 bytes", d)
	}
}
