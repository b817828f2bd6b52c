package opa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/services/authz"
)

// engine evaluates the active policy and replaces it when a new version loads.
// PreparedEvalQuery is safe for concurrent use; the active policy is swapped atomically.
type engine struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	cur    atomic.Pointer[compiled]
	loaded chan struct{} // closed by the first successful load
	once   sync.Once

	mu     sync.Mutex // serialises loads, guards status
	status authz.PolicyStatus

	loads      *prometheus.CounterVec
	lastLoaded prometheus.Gauge
	dropped    *prometheus.CounterVec // decisions that never reached a decision log

	stop func(context.Context) // stops the watcher or downloader; nil when none runs
	dlog *decisionLog          // nil when decisions are not logged
}

var (
	_ authz.Authorizer     = (*engine)(nil)
	_ authz.PolicyReporter = (*engine)(nil)
)

func newEngine(c Config, deps authz.Deps) *engine {
	e := &engine{cfg: c, logger: deps.Logger, now: deps.Now, loaded: make(chan struct{})}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	switch {
	case c.Bundle != nil && c.Bundle.URL != "":
		e.status.Source = "bundle " + c.Bundle.URL
	case c.Bundle != nil:
		e.status.Source = "bundle file " + c.Bundle.Path
	case c.Dir != "":
		e.status.Source = "dir " + c.Dir
	default:
		e.status.Source = "embedded default"
	}
	e.loads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authz_policy_loads_total",
		Help: "Policy loads by result: ok (now active), unchanged, or error (rejected; the previous policy keeps serving).",
	}, []string{"result"})
	e.lastLoaded = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "portcullis_authz_policy_last_load_timestamp_seconds",
		Help: "When the active policy was loaded; 0 before the first load.",
	})
	for _, r := range []string{"ok", "unchanged", "error"} {
		e.loads.WithLabelValues(r)
	}
	e.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authz_decision_logs_dropped_total",
		Help: "Decisions that never reached a decision log, by reason: rate_limit, buffer_full and encoding are OPA's plugin for the decision log service (its buffer), write_error the console or file.",
	}, []string{"reason"})
	for _, r := range dropReasons {
		e.dropped.WithLabelValues(r)
	}
	if deps.Metrics != nil {
		for _, c := range []prometheus.Collector{e.loads, e.lastLoaded, e.dropped} {
			if err := deps.Metrics.Register(c); err != nil {
				e.logger.Warn("authz policy metrics not registered", "error", err)
			}
		}
	}
	return e
}

// PolicyStatus implements authz.PolicyReporter.
func (e *engine) PolicyStatus(context.Context) authz.PolicyStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.status
	st.Ready = st.Revision != ""
	return st
}

// Loaded is closed once a policy is active.
func (e *engine) Loaded() <-chan struct{} { return e.loaded }

// Close stops watching or polling, and flushes the decision log.
func (e *engine) Close(ctx context.Context) error {
	if e.stop != nil {
		e.stop(ctx)
	}
	if e.dlog != nil {
		e.dlog.close(ctx)
	}
	return nil
}

// apply makes src the active policy, or leaves the active one when src does not compile.
// A change of data alone is loaded into a new store with its own compiled ACL, and the
// queries are prepared again over them with the policy already compiled: the new data and
// its index are published together, in one pointer swap, so an evaluation sees the old pair
// or the new pair — never new data read through the old index, which would give another
// rule's actions.
func (e *engine) apply(ctx context.Context, src source) []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rev := src.revision()
	cur := e.cur.Load()
	switch {
	case cur != nil && cur.revision == rev:
		e.loads.WithLabelValues("unchanged").Inc()
		// The source is the active policy again (a broken edit reverted to exactly the
		// previous content): nothing is in error any more.
		if e.status.LastError != "" {
			e.logger.Info("authz policy source matches the active policy again; the last error is cleared", "source", e.status.Source, "revision", rev)
			e.status.LastError, e.status.LastErrorAt = "", time.Time{}
		}
		return nil
	case cur != nil && cur.modules == src.modulesDigest():
		next, errs := cur.withData(ctx, src.data, src.shown, e.logger)
		if len(errs) > 0 {
			return e.rejected(src, errs)
		}
		next.revision, next.loadedAt = rev, e.now()
		e.activate(next, "data")
		return nil
	}
	p, errs := compile(ctx, src, e.logger)
	if len(errs) > 0 {
		return e.rejected(src, errs)
	}
	p.loadedAt = e.now()
	e.activate(p, "policy")
	return nil
}

// activate is called with e.mu held.
func (e *engine) activate(p *compiled, what string) {
	previous := e.status.Revision
	e.cur.Store(p)
	e.status.Revision, e.status.LoadedAt = p.revision, p.loadedAt
	e.status.LastError, e.status.LastErrorAt = "", time.Time{}
	e.loads.WithLabelValues("ok").Inc()
	e.lastLoaded.Set(float64(p.loadedAt.UnixNano()) / 1e9)
	e.once.Do(func() { close(e.loaded) })
	e.logger.Info("authz policy active", "source", e.status.Source, "revision", p.revision, "previous", previous, "changed", what)
}

// rejected records a failed load; called with e.mu held.
func (e *engine) rejected(src source, errs []error) []error {
	err := errors.Join(errs...)
	e.status.LastError, e.status.LastErrorAt = err.Error(), e.now()
	e.loads.WithLabelValues("error").Inc()
	if e.cur.Load() != nil {
		e.logger.Error("authz policy rejected; the previous one keeps serving", "source", src.shown, "active_revision", e.status.Revision, "error", err)
	}
	return errs
}

// failed records a load that produced no source at all (unreadable file, download error).
func (e *engine) failed(what string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rejected(source{shown: what}, []error{err})
}

// reload reads the static source again and applies it.
func (e *engine) reload(ctx context.Context) {
	src, errs := e.cfg.loadStatic()
	if len(errs) > 0 {
		e.mu.Lock()
		e.rejected(source{shown: e.status.Source}, errs)
		e.mu.Unlock()
		return
	}
	_ = e.apply(ctx, src) // a rejection is logged, counted and in the status
}

// reloadDebounce lets an editor or `cp -r` finish writing before the policy is read: one
// reload for a burst of events, within a second of the change.
const reloadDebounce = 150 * time.Millisecond

// startWatcher reloads when the directory, or the bundle file, changes. It watches the
// directory that holds a bundle file, so replacing the file (rename over it, as editors
// and config management do) is seen too.
func (e *engine) startWatcher(path string) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dir, file := path, ""
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		dir, file = filepath.Dir(path), filepath.Base(path)
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var timer *time.Timer
		var fire <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if file != "" && filepath.Base(ev.Name) != file {
					continue
				}
				if timer == nil {
					timer = time.NewTimer(reloadDebounce)
				} else {
					timer.Reset(reloadDebounce)
				}
				fire = timer.C
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				e.logger.Warn("watching the authz policy failed", "path", path, "error", err)
			case <-fire:
				fire = nil
				e.reload(ctx)
			}
		}
	}()
	e.stop = func(context.Context) {
		cancel()
		_ = w.Close()
		<-done
	}
	return nil
}

// startDownloader polls the HTTP bundle server with OPA's downloader (ETag, backoff,
// signature verification).
func (e *engine) startDownloader() error {
	d, err := e.cfg.Bundle.downloader(func(ctx context.Context, u download.Update) error {
		e.mu.Lock()
		e.status.LastCheck = e.now()
		e.mu.Unlock()
		switch {
		case u.Error != nil:
			e.logger.Warn("authz policy bundle download failed; the previous policy keeps serving", "url", e.cfg.Bundle.URL, "error", u.Error)
			e.failed(e.cfg.Bundle.URL, u.Error)
			return nil
		case u.Bundle == nil: // 304 Not Modified
			return nil
		}
		src, err := bundleSource(e.cfg.Bundle.URL, u.Bundle, u.ETag)
		if err != nil {
			e.failed(e.cfg.Bundle.URL, err)
			return nil
		}
		_ = e.apply(ctx, src)
		return nil
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.Start(ctx)
	e.stop = func(stopCtx context.Context) {
		cancel()
		d.Stop(stopCtx)
	}
	return nil
}
