package opa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// DecisionLogConfig sends every decision as one JSON line to standard output (the default)
// or a file, the line OPA's decision log plugin printed (lineSink), and/or through OPA's
// plugin in batches to a decision log service (OPA's decision log API: gzip-compressed
// JSON arrays POSTed to URL + resource). An entry
// holds the decision id (the token's jti), the policy revision, the input (who, which
// scopes, from where — never a credential: the policy never gets one), what was granted,
// and the policy's reasons for what was denied.
type DecisionLogConfig struct {
	// Console writes each decision as a JSON line to standard output, or to File when set.
	// Portcullis's config defaults it to true; unset or false with no URL, nothing is logged.
	Console *bool  `yaml:"console"`
	File    string `yaml:"file"`
	// URL is a decision log service; Resource is its path (default /logs).
	URL             string          `yaml:"url"`
	Resource        string          `yaml:"resource"`
	BearerTokenFile string          `yaml:"bearer_token_file"`
	MinDelay        config.Duration `yaml:"min_delay"`
	MaxDelay        config.Duration `yaml:"max_delay"`

	reporting map[string]any // tests only: more of the plugin's reporting settings
}

func (c DecisionLogConfig) console() bool { return c.Console != nil && *c.Console }

func (c DecisionLogConfig) validate() []error {
	var errs []error
	if c.File != "" && !c.console() {
		errs = append(errs, errors.New("decision_logs.file is where console logs go: it needs console: true"))
	}
	if c.URL != "" {
		if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("decision_logs.url %q is not an http(s) URL", c.URL))
		}
	}
	if c.BearerTokenFile != "" {
		if _, err := os.ReadFile(c.BearerTokenFile); err != nil {
			errs = append(errs, fmt.Errorf("decision_logs.bearer_token_file: %w", err))
		}
	}
	if c.MinDelay.D() < 0 || c.MaxDelay.D() < 0 || (c.MaxDelay.D() != 0 && c.MaxDelay.D() < c.MinDelay.D()) {
		errs = append(errs, errors.New("decision_logs: min_delay and max_delay must be positive, max_delay not below min_delay"))
	}
	return errs
}

// decisionLog sends each decision to the line sink (console or file) and/or to OPA's
// decision log plugin for the remote service. The plugin runs under its own plugin
// manager: the engine uses its own compiler and store, so the manager exists for the
// plugin alone.
type decisionLog struct {
	lines  *lineSink // console or file; nil when off
	mgr    *plugins.Manager
	remote *logs.Plugin // the decision log service; nil without a URL
	drops  *dropCounter
}

func openDecisionLog(ctx context.Context, c DecisionLogConfig, logger *slog.Logger, dropped *prometheus.CounterVec) (*decisionLog, error) {
	if !c.console() && c.URL == "" {
		return nil, nil
	}
	dl := &decisionLog{drops: &dropCounter{total: dropped, logger: logger}}
	if c.console() {
		lines, err := openLineSink(c.File, dl.drops)
		if err != nil {
			return nil, err
		}
		dl.lines = lines
	}
	if c.URL == "" {
		return dl, nil
	}
	if err := dl.openRemote(ctx, c, logger); err != nil {
		dl.close(ctx)
		return nil, err
	}
	return dl, nil
}

// openRemote starts OPA's decision log plugin for the service at c.URL: batching, gzip and
// retries are OPA's. Console logging is the line sink's, never the plugin's.
func (dl *decisionLog) openRemote(ctx context.Context, c DecisionLogConfig, logger *slog.Logger) error {
	svc := map[string]any{"url": c.URL}
	if c.BearerTokenFile != "" {
		tok, err := os.ReadFile(c.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("decision_logs.bearer_token_file: %w", err)
		}
		svc["credentials"] = map[string]any{"bearer": map[string]any{"token": strings.TrimSpace(string(tok))}}
	}
	dlCfg := map[string]any{"console": false, "service": "decisions"}
	if c.Resource != "" {
		dlCfg["resource"] = c.Resource
	}
	reporting := map[string]any{}
	if d := c.MinDelay.D(); d > 0 {
		reporting["min_delay_seconds"] = max(1, int64(d.Seconds()))
	}
	if d := c.MaxDelay.D(); d > 0 {
		reporting["max_delay_seconds"] = max(1, int64(d.Seconds()))
	}
	maps.Copy(reporting, c.reporting)
	dlCfg["reporting"] = reporting
	rawJSON, err := json.Marshal(map[string]any{"services": map[string]any{"decisions": svc}, "decision_logs": dlCfg})
	if err != nil {
		return err
	}
	dlJSON, err := json.Marshal(dlCfg)
	if err != nil {
		return err
	}
	mgr, err := plugins.New(rawJSON, decisionLogID, inmem.New(),
		plugins.Logger(slogLogger{l: logger.With("opa", "decision_logs")}))
	if err != nil {
		return fmt.Errorf("decision_logs: %w", err)
	}
	parsed, err := logs.ParseConfig(dlJSON, mgr.Services(), nil)
	if err != nil {
		return fmt.Errorf("decision_logs: %w", err)
	}
	dl.remote = logs.New(parsed, mgr).WithMetrics(dropMetrics{Metrics: metrics.New(), drops: dl.drops})
	mgr.Register(logs.Name, dl.remote)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("decision_logs: %w", err)
	}
	dl.mgr = mgr
	return nil
}

// log writes one decision to the line sink and hands it to the plugin. in is the input the
// policy was evaluated with (inputValue(req)); only the plugin reads it.
func (dl *decisionLog) log(ctx context.Context, id, revision string, at time.Time, req authz.Request, in ast.Value, granted []scope.Scope, reasons []authz.Reason) {
	var traceID, spanID string
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		traceID, spanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if dl.lines != nil {
		dl.lines.log(decisionEntry{id: id, revision: revision, at: at, traceID: traceID, spanID: spanID, req: &req, granted: granted, reasons: reasons})
	}
	if dl.remote != nil {
		dl.logRemote(ctx, id, revision, at, traceID, spanID, in, granted, reasons)
	}
}

func (dl *decisionLog) logRemote(ctx context.Context, id, revision string, at time.Time, traceID, spanID string, input ast.Value, granted []scope.Scope, reasons []authz.Reason) {
	in, err := ast.JSON(input)
	if err != nil {
		dl.drops.add("encoding", 1, err)
		return
	}
	gs := make([]any, 0, len(granted))
	for _, s := range granted {
		gs = append(gs, s.String())
	}
	var result any = map[string]any{"granted": gs}
	info := &server.Info{DecisionID: id, Revision: revision, Path: decisionPath, Timestamp: at, Input: &in, Results: &result,
		TraceID: traceID, SpanID: spanID}
	if len(reasons) > 0 {
		rs := make([]any, 0, len(reasons))
		for _, r := range reasons {
			rs = append(rs, map[string]any{"type": r.Type, "class": r.Class, "name": r.Name, "action": r.Action, "reason": r.Reason})
		}
		info.Custom = map[string]any{"denied": rs}
	}
	if err := dl.remote.Log(ctx, info); err != nil {
		dl.drops.add("encoding", 1, err)
	}
}

// close flushes the plugin (it uploads what it holds) and closes the file.
func (dl *decisionLog) close(ctx context.Context) {
	if dl.mgr != nil {
		dl.mgr.Stop(ctx)
	}
	if dl.lines != nil {
		dl.lines.close()
	}
}

// dropCounter counts decisions that never reached a decision log, by reason, and says so
// at WARN: at once for the first, then at most every dropWarnEvery while they go on.
type dropCounter struct {
	total    *prometheus.CounterVec
	logger   *slog.Logger
	lastWarn atomic.Int64 // unix nanoseconds
}

const dropWarnEvery = 10 * time.Second

// dropReasons are the label values of portcullis_authz_decision_logs_dropped_total.
var dropReasons = []string{"rate_limit", "buffer_full", "encoding", "write_error"}

func (d *dropCounter) add(reason string, n uint64, err error) {
	if n == 0 {
		return
	}
	d.total.WithLabelValues(reason).Add(float64(n))
	now := time.Now().UnixNano()
	last := d.lastWarn.Load()
	if last != 0 && now-last < int64(dropWarnEvery) || !d.lastWarn.CompareAndSwap(last, now) {
		return
	}
	args := []any{"reason", reason, "dropped", n, "metric", "portcullis_authz_decision_logs_dropped_total"}
	if err != nil {
		args = append(args, "error", err)
	}
	d.logger.Warn("decisions were dropped from the decision log", args...)
}

// dropMetrics is the metrics provider of OPA's plugin: its counters stay OPA's (they are in
// the plugin's status), and those that count a lost decision also count in
// portcullis_authz_decision_logs_dropped_total. The names are OPA's (v1/plugins/logs): the
// buffer size counter is bumped once per push that dropped, with an event buffer one per
// event, with a size buffer (the default, unbounded unless buffer_size_limit_bytes is
// set) once per push that dropped chunks; an encoding failure drops the event (or the chunk).
type dropMetrics struct {
	metrics.Metrics
	drops *dropCounter
}

var opaDropCounters = map[string]string{
	"decision_logs_dropped_rate_limit_exceeded":        "rate_limit",
	"decision_logs_dropped_buffer_size_limit_exceeded": "buffer_full",
	"decision_logs_encoding_failure":                   "encoding",
}

func (m dropMetrics) Counter(name string) metrics.Counter {
	c := m.Metrics.Counter(name)
	if reason, ok := opaDropCounters[name]; ok {
		return dropCount{Counter: c, reason: reason, drops: m.drops}
	}
	return c
}

type dropCount struct {
	metrics.Counter
	reason string
	drops  *dropCounter
}

func (c dropCount) Incr() {
	c.Counter.Incr()
	c.drops.add(c.reason, 1, nil)
}

func (c dropCount) Add(n uint64) {
	c.Counter.Add(n)
	c.drops.add(c.reason, n, nil)
}

// slogLogger passes the plugin's own messages (upload failures) to the service log.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Debug(f string, a ...any) { s.l.Debug(fmt.Sprintf(f, a...)) }
func (s slogLogger) Info(f string, a ...any)  { s.l.Debug(fmt.Sprintf(f, a...)) }
func (s slogLogger) Warn(f string, a ...any)  { s.l.Warn(fmt.Sprintf(f, a...)) }
func (s slogLogger) Error(f string, a ...any) { s.l.Error(fmt.Sprintf(f, a...)) }
func (s slogLogger) WithFields(f map[string]any) logging.Logger {
	args := make([]any, 0, 2*len(f))
	for k, v := range f {
		args = append(args, k, v)
	}
	return slogLogger{l: s.l.With(args...)}
}
func (s slogLogger) GetLevel() logging.Level { return logging.Info }
func (s slogLogger) SetLevel(logging.Level)  {}
