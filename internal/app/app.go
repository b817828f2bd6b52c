// Package app runs Portcullis: the module table, the targets (-target=all runs every module
// in one process, gateway|authn|authz|signer one service each), the lifecycle (modules start
// after their dependencies; closers run last-opened first) and the config file's schema and
// validation. Modules talk only through generated gRPC clients, in one process as in many.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/portcullis-dev/portcullis/internal/buildinfo"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/test/bufconn"

	"github.com/portcullis-dev/portcullis/internal/admin"
	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// module is one part of a process. A target lists the modules it runs and a module's
// dependencies start before it. Starting a module prepares it (opens backends, registers
// services, binds its listener); serving begins once every module of the target started.
type module struct {
	deps  []string
	start func(a *App, ctx context.Context) error
}

// modules is the module table. Every listener belongs to one module and serves only what its
// callers need: the admin API is its own server, not the services' server on another port.
func modules() map[string]module {
	return map[string]module{
		"keys":    {start: (*App).startKeys},
		"server":  {start: (*App).startServer},
		"authn":   {deps: []string{"server"}, start: (*App).startAuthn},
		"authz":   {deps: []string{"server"}, start: (*App).startAuthz},
		"signer":  {deps: []string{"server", "keys"}, start: (*App).startSigner},
		"admin":   {start: (*App).startAdmin},
		"gateway": {start: (*App).startGateway},
	}
}

// targets says which modules each -target runs. "all" runs every service behind one
// in-process gRPC server so the gateway uses the very same clients as in the split
// deployment; the gateway comes last there, so it finds that server started. The admin API
// (when admin.listen is set) comes after the services it administers: key rotation where
// the signer runs, whose key manager it shares; sessions where authn runs, whose session
// manager it shares.
func targets() map[string][]string {
	return map[string][]string{
		"all":     {"authn", "authz", "signer", "admin", "gateway"},
		"gateway": {"gateway"},
		"authn":   {"authn", "admin"},
		"authz":   {"authz", "admin"},
		"signer":  {"signer", "admin"},
	}
}

// healthNames are the gRPC health service names of the services, by module.
func healthNames() map[string]string {
	return map[string]string{
		"authn":  authnv1.AuthnService_ServiceDesc.ServiceName,
		"authz":  authzv1.AuthzService_ServiceDesc.ServiceName,
		"signer": signerv1.SignerService_ServiceDesc.ServiceName,
	}
}

// App is one running process of any target.
type App struct {
	cfg         *Config
	log         *slog.Logger
	reg         *prometheus.Registry
	grpcMetrics *telemetry.GRPCMetrics
	tracing     *telemetry.Tracing // set by Run; off unless tracing.otlp_endpoint is set
	now         func() time.Time
	target      string

	// Set by the modules that own them, read by the modules that depend on them.
	km       signer.KeyManager // keys
	sessions *sessions.Manager // authn, when sessions are enabled
	robots   *robots.Manager   // authn, when a robot backend is configured
	// sessionEvent counts session events (authn and the admin API's revocations).
	sessionEvent func(event string)
	// sessionEnded counts sessions a refresh ended because their account changed, by reason.
	sessionEnded func(reason string)
	grpcServer   *grpc.Server      // server: the services' server
	health       *health.Server    // server
	inproc       *bufconn.Listener // server, in -target=all
	// direct is how the gateway of -target=all calls the services: their handlers, through
	// the same interceptors, without a transport. Nil when overBufconn.
	direct *inprocConn // server, in -target=all
	// overBufconn has the gateway of -target=all call the services over the bufconn
	// listener instead, through real gRPC: a test keeps that wire path covered.
	overBufconn bool
	// serviceRules say who may call what on the services' server; register adds each
	// service it puts there, so nothing is served that the rules do not name.
	serviceRules grpctls.Rules // server
	// adminServices are the admin services of the modules this process runs, each added by
	// the module that owns it; the admin module serves them.
	adminServices []admin.Service

	serve       []func() error // what starts serving once every module started
	listeners   []net.Listener
	grpcServers []*grpc.Server
	// grpcByListener names each gRPC server by what it listens for (services, admin,
	// admin-rest), so a test can see exactly what each serves.
	grpcByListener map[string]*grpc.Server
	httpSrvs       []*http.Server
	conns          []*grpc.ClientConn
	closers        []func(context.Context) error

	// Ready is closed once every listener is up; the addresses of what this process serves
	// are then set (GatewayAddr and PublicURL when a gateway runs, MetricsAddr when the
	// gateway's metrics are served, AdminAddr when the admin API runs).
	Ready       chan struct{}
	GatewayAddr string
	PublicURL   string
	MetricsAddr string
	AdminAddr   string
	// AdminHTTPAddr is the admin REST API's address when admin.http_listen is set.
	AdminHTTPAddr string
}

// New prepares an App; Run starts it.
func New(cfg *Config, log *slog.Logger) *App {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Read().Collector())
	return &App{cfg: cfg, log: log, reg: reg, grpcMetrics: telemetry.NewGRPCMetrics(reg), now: time.Now, Ready: make(chan struct{})}
}

// SetNow replaces the clock (time.Now) before Run; tests move time with it.
func (a *App) SetNow(now func() time.Time) { a.now = now }

// Run starts target and blocks until ctx is done, then shuts down: the gateway stops taking
// requests first, the gRPC servers stop last.
func (a *App) Run(ctx context.Context, target string) error {
	names, ok := targets()[target]
	if !ok {
		return fmt.Errorf("unknown target %q (want all, gateway, authn, authz or signer)", target)
	}
	a.target = target
	tr, err := telemetry.NewTracing(ctx, a.cfg.Tracing, "portcullis-"+target)
	if err != nil {
		return err
	}
	a.tracing = tr
	defer a.shutdown()
	for _, d := range a.cfg.Deprecations() { // every process, whichever target: the file is shared
		a.log.Warn("config: " + d)
	}
	if a.cfg.InsecurePlaintextGRPC {
		a.log.Warn("INSECURE: insecure_plaintext_grpc is set. gRPC on non-loopback addresses may be plaintext and " +
			"unauthenticated: whoever reaches those ports can send passwords to authn and have the signer mint tokens. " +
			"Configure internal_tls instead.")
	}
	started := map[string]bool{}
	var start func(name string) error
	start = func(name string) error {
		if started[name] {
			return nil
		}
		started[name] = true
		m := modules()[name]
		for _, d := range m.deps {
			if err := start(d); err != nil {
				return err
			}
		}
		if err := m.start(a, ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	for _, name := range names {
		if err := start(name); err != nil {
			return err
		}
	}
	errc := make(chan error, len(a.serve))
	for _, serve := range a.serve {
		go func() { errc <- serve() }()
	}
	close(a.Ready)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// listen binds addr, naming what for in the error. The listener is closed at shutdown even
// when a later module fails to start and it is never served.
func (a *App) listen(what, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen %s: %w", what, addr, err)
	}
	a.listeners = append(a.listeners, lis)
	return lis, nil
}

func (a *App) serveGRPC(name string, s *grpc.Server, lis net.Listener) {
	a.grpcServers = append(a.grpcServers, s)
	if a.grpcByListener == nil {
		a.grpcByListener = map[string]*grpc.Server{}
	}
	a.grpcByListener[name] = s
	a.serve = append(a.serve, func() error { return s.Serve(lis) })
}

func (a *App) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	return mux
}

// serveHTTP serves h on addr (once every module started) and returns the bound address.
func (a *App) serveHTTP(addr string, h http.Handler) (string, error) {
	lis, err := a.listen("metrics", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	a.httpSrvs = append(a.httpSrvs, srv)
	a.serve = append(a.serve, func() error { return httpServeErr(srv.Serve(lis)) })
	return lis.Addr().String(), nil
}

// httpServeErr: a server closed by shutdown is not a failure.
func httpServeErr(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (a *App) shutdown() {
	a.drain()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range a.httpSrvs {
		_ = s.Shutdown(ctx)
	}
	for _, c := range a.conns {
		_ = c.Close()
	}
	for _, s := range a.grpcServers {
		stopped := make(chan struct{})
		go func() { s.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			s.Stop()
		}
	}
	for _, l := range a.listeners {
		_ = l.Close() // already closed when it was served
	}
	// Last opened, first closed: what uses a store or a key manager closes before it.
	for _, c := range slices.Backward(a.closers) {
		if err := c(ctx); err != nil {
			a.log.Warn("close failed", "error", err)
		}
	}
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.log.Warn("flushing traces failed", "error", err)
	}
}

// drainFor is how long a stopping service reports NOT_SERVING before it stops accepting
// calls: long enough for gateways watching its health to move new calls to other replicas.
// In-flight calls then finish (GracefulStop), so a rolling restart loses no token request.
const drainFor = 500 * time.Millisecond

// drain tells health watchers this process is going away. Only a split service has watchers;
// the all-in-one process's gateway stops with it.
func (a *App) drain() {
	if a.health == nil || a.inproc != nil {
		return
	}
	a.health.Shutdown()
	a.log.Info("draining: health NOT_SERVING, in-flight calls finish", "for", drainFor)
	time.Sleep(drainFor)
}
