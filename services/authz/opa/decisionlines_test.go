package opa

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// pluginConsoleLogger is the console logger the decision log used before it wrote its own
// lines: OPA's plugin handed it the entry's fields and it marshalled them. The golden test
// compares the line sink with what OPA's plugin printed through it.
type pluginConsoleLogger struct {
	w      io.Writer
	fields map[string]any
}

func (l *pluginConsoleLogger) WithFields(f map[string]any) logging.Logger {
	return &pluginConsoleLogger{w: l.w, fields: f}
}

func (l *pluginConsoleLogger) Info(msg string, a ...any) {
	fields := make(map[string]any, len(l.fields)+1)
	for k, v := range l.fields {
		fields[k] = v
	}
	fields["msg"] = fmt.Sprintf(msg, a...)
	b, err := json.Marshal(fields)
	if err != nil {
		return
	}
	_, _ = l.w.Write(append(b, '\n'))
}

func (l *pluginConsoleLogger) Debug(string, ...any)       {}
func (l *pluginConsoleLogger) Warn(msg string, a ...any)  { l.Info(msg, a...) }
func (l *pluginConsoleLogger) Error(msg string, a ...any) { l.Info(msg, a...) }
func (l *pluginConsoleLogger) GetLevel() logging.Level    { return logging.Info }
func (l *pluginConsoleLogger) SetLevel(logging.Level)     {}

// pluginConsole starts OPA's decision log plugin printing to w, as the console decision
// log was configured before, under a decisionLog whose remote path feeds it.
func pluginConsole(t testing.TB, w io.Writer) *decisionLog {
	t.Helper()
	ctx := context.Background()
	mgr, err := plugins.New([]byte(`{"decision_logs":{"console":true}}`), decisionLogID, inmem.New(),
		plugins.ConsoleLogger(&pluginConsoleLogger{w: w}), plugins.Logger(logging.NewNoOpLogger()))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := logs.ParseConfig([]byte(`{"console":true}`), mgr.Services(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dl := &decisionLog{mgr: mgr, remote: logs.New(parsed, mgr), drops: testDrops(nil)}
	mgr.Register(logs.Name, dl.remote)
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	return dl
}

func testDrops(logger *slog.Logger) *dropCounter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &dropCounter{total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dropped"}, []string{"reason"}), logger: logger}
}

func mustScopes(t testing.TB, ss ...string) []scope.Scope {
	t.Helper()
	out, err := scope.ParseList(ss)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDecisionLineMatchesPlugin is the golden comparison: for the same decisions, the line
// sink writes byte for byte the line OPA's plugin printed (the same timestamp is given to
// both, so none needs normalising).
func TestDecisionLineMatchesPlugin(t *testing.T) {
	at := time.Date(2026, 12, 7, 12, 30, 5, 123456789, time.FixedZone("CET", 3600))
	traced := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, SpanID: trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled}))
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		at       time.Time
		revision string
		req      authz.Request
		granted  []string
		reasons  []authz.Reason
	}{{
		name: "granted", ctx: context.Background(), at: at, revision: "sha256:abc",
		req: authz.Request{Identity: identity.Identity{Subject: "alice", Backend: "htpasswd", Groups: []string{"devs", "ops"}},
			Service: "registry.example", ClientID: "docker", RemoteAddr: "192.0.2.9:4711",
			Requested: mustScopes(t, "repository:alice/app:pull,push")},
		granted: []string{"repository:alice/app:pull,push"},
	}, {
		name: "denied with reasons, labels, traced", ctx: traced, at: at.Add(time.Millisecond), revision: "sha256:def",
		req: authz.Request{Identity: identity.Identity{Subject: "bob", Backend: "ldap", Groups: []string{},
			Labels: map[string][]string{"team": {"payments", "web"}, "a": {}, "z<&>": {"x"}}},
			Service: "r", RemoteAddr: "[2001:db8::1]:443",
			Requested: mustScopes(t, "repository:payments/api:pull,delete", "repository(plugin):x/y:pull", "registry:catalog:*")},
		granted: []string{"repository:payments/api:pull"},
		reasons: []authz.Reason{{Type: "repository", Name: "payments/api", Action: "delete", Reason: `teams "do not" include delete <b>&</b>`},
			{Type: "registry", Name: "catalog", Action: "*", Reason: "admins only"}},
	}, {
		name: "anonymous, nothing granted", ctx: context.Background(), at: time.Unix(0, 0), revision: "",
		req: authz.Request{Identity: identity.Identity{Anonymous: true}, Service: "r",
			Requested: mustScopes(t, "repository:library/x:pull")},
	}, {
		name: "personal access token, odd strings", ctx: context.Background(), at: at, revision: "sha256:0",
		req: authz.Request{Identity: identity.Identity{Subject: "ann\u2028\u2029\x00\x1f\t\n\r\b\f\x7f", PATName: "ci\xff\xfe é 😀", Backend: "pats",
			Groups: []string{`"q"\`}}, Service: "svc", ClientID: "c\"", RemoteAddr: "x",
			Requested: mustScopes(t, "repository:ann/app:pull")},
		granted: []string{"repository:ann/app:pull"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want bytes.Buffer
			ref := pluginConsole(t, &want)
			granted := mustScopes(t, tc.granted...)
			id := "0123456789abcdef0123456789abcdef"
			ref.log(tc.ctx, id, tc.revision, tc.at, tc.req, inputValue(tc.req), granted, tc.reasons)

			var got bytes.Buffer
			dl := &decisionLog{lines: &lineSink{w: &got, drops: testDrops(nil)}, drops: testDrops(nil)}
			labels, err := json.Marshal(ref.mgr.Labels())
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := openLineSink(filepath.Join(t.TempDir(), "x"), nil)
			if err != nil {
				t.Fatal(err)
			}
			fresh.close()
			if !bytes.Equal(fresh.labels, labels) {
				t.Errorf("labels %s, the plugin's %s", fresh.labels, labels)
			}
			dl.lines.labels = fresh.labels
			dl.log(tc.ctx, id, tc.revision, tc.at, tc.req, inputValue(tc.req), granted, tc.reasons)

			if want.Len() == 0 || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("line differs from the plugin's\n got: %s\nwant: %s", got.Bytes(), want.Bytes())
			}
			var fields map[string]any
			if err := json.Unmarshal(got.Bytes(), &fields); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
		})
	}
}

// pluginQuoted is how a string came out of OPA's plugin: a JSON round trip (invalid UTF-8
// becomes U+FFFD), then json.Marshal.
func pluginQuoted(t testing.TB, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if b, err = json.Marshal(back); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendJSONString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", `"\`, "<>&", "\x00\x01\x1f\x7f", "\b\f\n\r\t", "é😀", "\u2028\u2029", "\xff", "a\xc3", "\xed\xa0\x80", "日本"} {
		want := pluginQuoted(t, s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "<a&b>", "\u2028", "\xff\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := pluginQuoted(t, s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	})
}

// gateWriter blocks every write until the gate opens.
type gateWriter struct {
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *gateWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// TestDecisionLogSlowWriterLosesNothing: while the console's reader does not read, decisions
// wait for it, and every one of them arrives once it does.
func TestDecisionLogSlowWriterLosesNothing(t *testing.T) {
	t.Parallel()
	on := true
	reg := prometheus.NewRegistry()
	a, err := Config{DecisionLogs: DecisionLogConfig{Console: &on, File: filepath.Join(t.TempDir(), "unused")}}.Open(context.Background(), authz.Deps{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	e := a.(*engine)
	defer e.Close(context.Background())
	w := &gateWriter{gate: make(chan struct{}), entered: make(chan struct{})}
	e.dlog.lines.w = w

	const n = 64
	ids := make(chan string, n)
	var started, done sync.WaitGroup
	for i := range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			d, err := e.Authorize(context.Background(), teamsRequest(fmt.Sprintf("user%d", i), "repository:x/y:pull"))
			if err != nil {
				t.Error(err)
				return
			}
			ids <- d.DecisionID
		}()
	}
	started.Wait()
	<-w.entered // one write is held; the others wait behind it
	close(w.gate)
	done.Wait()
	close(ids)

	seen := map[string]bool{}
	sc := bufio.NewScanner(&w.buf)
	for sc.Scan() {
		var l logged
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %v: %s", err, sc.Text())
		}
		seen[l.DecisionID] = true
	}
	count := 0
	for id := range ids {
		count++
		if !seen[id] {
			t.Errorf("decision %s was not logged", id)
		}
	}
	if count != n || len(seen) != n {
		t.Errorf("%d decisions, %d logged, want %d", count, len(seen), n)
	}
	for _, r := range dropReasons {
		if got := testutil.ToFloat64(e.dropped.WithLabelValues(r)); got != 0 {
			t.Errorf("dropped{reason=%q} = %v", r, got)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// recordingHandler keeps the WARN records.
type recordingHandler struct {
	mu    sync.Mutex
	warns []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	h.warns = append(h.warns, s)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) warned(substr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.warns {
		if strings.Contains(w, "dropped from the decision log") && strings.Contains(w, substr) {
			return true
		}
	}
	return false
}

// TestDecisionLogDroppedMetric: the dropped counter is registered, at zero for every reason,
// and a lost decision raises it and is logged at WARN: a failed console write, and a
// decision OPA's plugin for the log service drops (here its rate limit, set far below the
// rate of the test).
func TestDecisionLogDroppedMetric(t *testing.T) {
	t.Parallel()
	on, off := true, false
	for _, tc := range []struct {
		name   string
		cfg    DecisionLogConfig
		broken bool // the console's writes fail
		reason string
		want   float64
	}{
		{name: "console write fails", cfg: DecisionLogConfig{Console: &on}, broken: true, reason: "write_error", want: 3},
		{name: "service rate limit", cfg: DecisionLogConfig{Console: &off, URL: "http://127.0.0.1:9/",
			reporting: map[string]any{"max_decisions_per_second": 1e-9}}, reason: "rate_limit", want: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			h := &recordingHandler{}
			a, err := Config{DecisionLogs: tc.cfg}.Open(context.Background(), authz.Deps{Metrics: reg, Logger: slog.New(h)})
			if err != nil {
				t.Fatal(err)
			}
			e := a.(*engine)
			defer e.Close(context.Background())
			for _, r := range dropReasons {
				if n, err := testutil.GatherAndCount(reg, "portcullis_authz_decision_logs_dropped_total"); err != nil || n != len(dropReasons) {
					t.Fatalf("%d series (%v), want one per reason %v", n, err, dropReasons)
				}
				if got := testutil.ToFloat64(e.dropped.WithLabelValues(r)); got != 0 {
					t.Fatalf("%s starts at %v", r, got)
				}
			}
			if tc.broken {
				e.dlog.lines.w = failingWriter{}
			}
			for range 3 {
				if _, err := e.Authorize(context.Background(), teamsRequest("alice", "repository:alice/x:pull")); err != nil {
					t.Fatal(err)
				}
			}
			if got := testutil.ToFloat64(e.dropped.WithLabelValues(tc.reason)); got != tc.want {
				t.Errorf("dropped{reason=%q} = %v, want %v", tc.reason, got, tc.want)
			}
			if !h.warned("reason=" + tc.reason) {
				t.Errorf("no WARN about the drop; warnings: %q", h.warns)
			}
		})
	}
}

// BenchmarkDecisionLines is the line sink's write path, from decision to write(2), to a
// file and to a pipe drained by another goroutine (standard output under a container
// runtime), from as many goroutines as there are CPUs. decisions/s is what it sustains;
// README compares it with the bench's peak tokens/s.
func BenchmarkDecisionLines(b *testing.B) {
	req := authz.Request{Identity: identity.Identity{Subject: "alice", Backend: "htpasswd", Groups: []string{"devs"}},
		Service: "registry.example", RemoteAddr: "192.0.2.9:53211", ClientID: "docker",
		Requested: mustScopes(b, "repository:alice/app:pull,push")}
	granted := req.Requested
	for _, sink := range []string{"file", "pipe"} {
		b.Run(sink, func(b *testing.B) {
			s, err := openLineSink(filepath.Join(b.TempDir(), "decisions.jsonl"), testDrops(nil))
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			if sink == "pipe" {
				r, w, err := os.Pipe()
				if err != nil {
					b.Fatal(err)
				}
				drained := make(chan struct{})
				go func() { _, _ = io.Copy(io.Discard, r); close(drained) }()
				defer func() { _ = w.Close(); <-drained; _ = r.Close() }()
				s.w = w
			}
			at := time.Now()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.log(decisionEntry{id: "0123456789abcdef0123456789abcdef", revision: "sha256:abc", at: at, req: &req, granted: granted})
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}

func TestAppendScope(t *testing.T) {
	t.Parallel()
	for _, s := range []scope.Scope{
		{Type: "repository", Name: "a/b", Actions: []string{"pull", "push"}},
		{Type: "repository", Class: "plugin", Name: "a/b", Actions: []string{"pull"}},
		{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		{Type: "x<", Class: "\xff", Name: "\u2028&", Actions: nil},
	} {
		if got, want := appendScope(nil, s), pluginQuoted(t, s.String()); !bytes.Equal(got, want) {
			t.Errorf("%+v: got %s, want %s", s, got, want)
		}
	}
}
