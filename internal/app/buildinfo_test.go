package app_test

import (
	"log/slog"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/buildinfo"
)

// TestBuildInfoMetric: every process's metrics say which build runs.
func TestBuildInfoMetric(t *testing.T) {
	t.Parallel()
	a := app.New(&app.Config{}, slog.New(slog.DiscardHandler))
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	bi := buildinfo.Read()
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_build_info" {
			continue
		}
		m := mf.GetMetric()[0]
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if m.GetGauge().GetValue() != 1 || labels["version"] != bi.Version || labels["goversion"] != bi.GoVersion || labels["commit"] == "" {
			t.Errorf("portcullis_build_info = %v %v", m.GetGauge().GetValue(), labels)
		}
		return
	}
	t.Fatal("no portcullis_build_info metric")
}

var _ prometheus.Collector = buildinfo.Info{}.Collector()
