package app

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
)

// What the tests (package app_test, which shares apptest with the cli tests) reach inside.
var (
	ParsePrefixes = parsePrefixes
	DecodeStore   = decodeStore
)

func (a *App) Registry() *prometheus.Registry { return a.reg }

// OverBufconn has the gateway of -target=all reach the services through real gRPC over the
// bufconn listener rather than the in-process channel.
func (a *App) OverBufconn() *App { a.overBufconn = true; return a }

func (l LockoutConfig) Prefixes() []lockout.PrefixPolicy      { return l.prefixes() }
func (l LockoutConfig) Policies() (acct, addr lockout.Policy) { return l.policies() }

// Served is what each gRPC listener serves: listener name → sorted service names.
func (a *App) Served() map[string][]string {
	out := map[string][]string{}
	for name, s := range a.grpcByListener {
		for svc := range s.GetServiceInfo() {
			out[name] = append(out[name], svc)
		}
		slices.Sort(out[name])
	}
	return out
}
