// Package buildinfo is the build a binary was made from, as the Go toolchain stamped it.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is what `portcullis version` prints and the portcullis_build_info metric says,
// read from what the Go toolchain stamps into the binary (module version, VCS revision).
type Info struct {
	Version, Commit, GoVersion string
	// Modified: built from a work tree with uncommitted changes.
	Modified bool
}

// Read reads the running binary's build.
func Read() Info {
	b := Info{Version: "(devel)", Commit: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		b.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

func (b Info) commit() string {
	if b.Modified {
		return b.Commit + " (modified)"
	}
	return b.Commit
}

func (b Info) String() string {
	return fmt.Sprintf("portcullis %s\ncommit: %s\ngo: %s", b.Version, b.commit(), b.GoVersion)
}

// Collector is the portcullis_build_info gauge: always 1, the build in its labels, so a
// dashboard can tell which version each process runs.
func (b Info) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "portcullis_build_info",
		Help:        "Always 1; the labels name the running build (version, commit, Go version).",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.commit(), "goversion": b.GoVersion},
	}, func() float64 { return 1 })
}
