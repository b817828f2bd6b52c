package main

import (
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
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

// The gateway's metrics are on their own address (gateway.metrics_listen), which is where
// the bench looks for them in all-in-one mode; the token port serves no /metrics.
func TestConfigMetricsAddresses(t *testing.T) {
	t.Parallel()
	ports := make([]string, numPorts)
	for i := range ports {
		ports[i] = "127.0.0.1:" + string(rune('1'+i)) + "000"
	}
	var cfg struct {
		Gateway struct {
			Listen        string `yaml:"listen"`
			PublicURL     string `yaml:"public_url"`
			MetricsListen string `yaml:"metrics_listen"`
		} `yaml:"gateway"`
		Signer struct {
			MetricsListen string `yaml:"metrics_listen"`
		} `yaml:"signer"`
	}
	if err := yaml.Unmarshal([]byte(config(t.TempDir(), scenario{scopes: 1}, ports)), &cfg); err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateway
	if g.Listen != ports[portGateway] || g.PublicURL != "http://"+ports[portGateway] {
		t.Errorf("gateway listen %q, public_url %q", g.Listen, g.PublicURL)
	}
	if g.MetricsListen != ports[portGatewayMetrics] || cfg.Signer.MetricsListen != ports[portSignerMetrics] {
		t.Errorf("metrics_listen: gateway %q, signer %q", g.MetricsListen, cfg.Signer.MetricsListen)
	}
}
