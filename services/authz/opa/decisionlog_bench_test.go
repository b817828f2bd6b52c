package opa

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa/opatest"
)

// BenchmarkAuthorizeDecisionLog is one decision of the default policy, as a warm Basic
// token asks for it, with the decision log off, on (to a file: the console path without
// the test's stdout), and printed by OPA's plugin as the console log was before (to a
// file too). Its per-op instruction count under callgrind is how the decision log's cost
// is measured on a shared machine (README, "Decision logs").
func BenchmarkAuthorizeDecisionLog(b *testing.B) {
	ss, err := scope.ParseList([]string{"repository:alice/app:pull,push"})
	if err != nil {
		b.Fatal(err)
	}
	req := authz.Request{Identity: identity.Identity{Subject: "alice", Backend: "htpasswd", Groups: []string{"devs"}},
		Service: "registry.example", Requested: ss, RemoteAddr: "192.0.2.9:53211", ClientID: "docker"}
	on, off := true, false
	for _, tc := range []struct {
		name   string
		dl     DecisionLogConfig
		plugin bool
	}{
		{"off", DecisionLogConfig{Console: &off}, false},
		{"file", DecisionLogConfig{Console: &on, File: filepath.Join(b.TempDir(), "decisions.jsonl")}, false},
		{"opa-plugin", DecisionLogConfig{Console: &off}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			a, err := Config{DecisionLogs: tc.dl}.Open(context.Background(), authz.Deps{})
			if err != nil {
				b.Fatal(err)
			}
			defer a.(*engine).Close(context.Background())
			if tc.plugin {
				f, err := os.OpenFile(filepath.Join(b.TempDir(), "plugin.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				a.(*engine).dlog = pluginConsole(b, f)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authorize(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReasonsDecisionLog is a 5-scope decision (make bench's authz requests, nearly all
// of which deny something) of the policies that give reasons, the acl one at 1,000 rules and
// the teams one with its shipped data, with the decision log off, on (to a file), and on
// without the policy's reasons: what the reasons cost apart from writing the line.
func BenchmarkReasonsDecisionLog(b *testing.B) {
	on, off := true, false
	policies := []struct {
		name string
		open func(b *testing.B, dl DecisionLogConfig) *engine
	}{
		{"acl-1000", func(b *testing.B, dl DecisionLogConfig) *engine {
			e := aclEngine(b, map[string]any{"acl": opatest.OrgACL(1000)}, prepareACL)
			if dl.console() {
				l, err := openDecisionLog(context.Background(), dl, slog.New(slog.DiscardHandler), e.dropped)
				if err != nil {
					b.Fatal(err)
				}
				e.dlog = l
			}
			return e
		}},
		{"teams", func(b *testing.B, dl DecisionLogConfig) *engine {
			a, err := Config{Dir: "../../../deploy/policies/teams", DecisionLogs: dl}.Open(context.Background(), authz.Deps{})
			if err != nil {
				b.Fatal(err)
			}
			return a.(*engine)
		}},
	}
	for _, p := range policies {
		for _, mode := range []string{"off", "on", "on-without-reasons"} {
			b.Run(p.name+"/"+mode, func(b *testing.B) {
				dl := DecisionLogConfig{Console: &off}
				if mode != "off" {
					dl = DecisionLogConfig{Console: &on, File: filepath.Join(b.TempDir(), "decisions.jsonl")}
				}
				e := p.open(b, dl)
				defer e.Close(context.Background())
				if mode == "on-without-reasons" {
					e.cur.Load().hasReasons = false
				}
				reqs := opatest.OrgRequests(1000, 256)
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := e.Authorize(ctx, reqs[i%len(reqs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
