package opa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"go.opentelemetry.io/otel/trace"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// DecisionLogConfig sends every decision to OPA's decision log plugin: as one JSON line on
// standard output (the default) or in a file, and/or in batches to a decision log service
// (OPA's decision log API: gzip-compressed JSON arrays POSTed to URL + resource). An entry
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

// decisionLog is OPA's decision log plugin under its own plugin manager: the engine uses
// its own compiler and store, so the manager exists for the plugin alone.
type decisionLog struct {
	mgr    *plugins.Manager
	plugin *logs.Plugin
	file   *os.File
}

func openDecisionLog(ctx context.Context, c DecisionLogConfig, logger *slog.Logger) (*decisionLog, error) {
	if !c.console() && c.URL == "" {
		return nil, nil
	}
	dl := &decisionLog{}
	var w io.Writer = os.Stdout
	if c.File != "" {
		f, err := os.OpenFile(c.File, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("decision_logs.file: %w", err)
		}
		dl.file, w = f, f
	}
	dlCfg := map[string]any{"console": c.console()}
	raw := map[string]any{}
	if c.URL != "" {
		svc := map[string]any{"url": c.URL}
		if c.BearerTokenFile != "" {
			tok, err := os.ReadFile(c.BearerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("decision_logs.bearer_token_file: %w", err)
			}
			svc["credentials"] = map[string]any{"bearer": map[string]any{"token": strings.TrimSpace(string(tok))}}
		}
		raw["services"] = map[string]any{"decisions": svc}
		dlCfg["service"] = "decisions"
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
		dlCfg["reporting"] = reporting
	}
	raw["decision_logs"] = dlCfg
	rawJSON, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	dlJSON, err := json.Marshal(dlCfg)
	if err != nil {
		return nil, err
	}
	mgr, err := plugins.New(rawJSON, "portcullis-authz", inmem.New(),
		plugins.ConsoleLogger(&lineLogger{w: w, mu: &sync.Mutex{}}),
		plugins.Logger(slogLogger{l: logger.With("opa", "decision_logs")}))
	if err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	parsed, err := logs.ParseConfig(dlJSON, mgr.Services(), nil)
	if err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	dl.plugin = logs.New(parsed, mgr)
	mgr.Register(logs.Name, dl.plugin)
	if err := mgr.Start(ctx); err != nil {
		return nil, fmt.Errorf("decision_logs: %w", err)
	}
	dl.mgr = mgr
	return dl, nil
}

// log hands one decision to the plugin.
func (dl *decisionLog) log(ctx context.Context, id, revision string, at time.Time, input ast.Value, d authz.Decision, reasons []authz.Reason) {
	in, err := ast.JSON(input)
	if err != nil {
		return
	}
	granted := make([]any, 0, len(d.Granted))
	for _, s := range d.Granted {
		granted = append(granted, s.String())
	}
	var result any = map[string]any{"granted": granted}
	info := &server.Info{DecisionID: id, Revision: revision, Path: "portcullis/authz/allowed", Timestamp: at, Input: &in, Results: &result}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		info.TraceID, info.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	if len(reasons) > 0 {
		rs := make([]any, 0, len(reasons))
		for _, r := range reasons {
			rs = append(rs, map[string]any{"type": r.Type, "class": r.Class, "name": r.Name, "action": r.Action, "reason": r.Reason})
		}
		info.Custom = map[string]any{"denied": rs}
	}
	_ = dl.plugin.Log(ctx, info) // a failed log entry is the plugin's to report; the decision stands
}

func (dl *decisionLog) close(ctx context.Context) {
	dl.mgr.Stop(ctx)
	if dl.file != nil {
		_ = dl.file.Close()
	}
}

// lineLogger is the console logger the plugin writes decisions to: one JSON object per line.
type lineLogger struct {
	w      io.Writer
	mu     *sync.Mutex
	fields map[string]any
}

func (l *lineLogger) WithFields(f map[string]any) logging.Logger {
	return &lineLogger{w: l.w, mu: l.mu, fields: f}
}

func (l *lineLogger) Info(msg string, a ...any) {
	fields := make(map[string]any, len(l.fields)+1)
	for k, v := range l.fields {
		fields[k] = v
	}
	fields["msg"] = fmt.Sprintf(msg, a...)
	b, err := json.Marshal(fields)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(append(b, '\n'))
}

func (l *lineLogger) Debug(string, ...any)       {}
func (l *lineLogger) Warn(msg string, a ...any)  { l.Info(msg, a...) }
func (l *lineLogger) Error(msg string, a ...any) { l.Info(msg, a...) }
func (l *lineLogger) GetLevel() logging.Level    { return logging.Info }
func (l *lineLogger) SetLevel(logging.Level)     {}

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
