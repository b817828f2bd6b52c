package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/portcullis-dev/portcullis/gateway"
	"github.com/portcullis-dev/portcullis/pkg/telemetry"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backends"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keys"
)

// service is a gRPC service module: it opens its backends and registers on a server.
type service struct {
	name  string // gRPC health service name
	start func(a *App, ctx context.Context) (register func(*grpc.Server), err error)
}

// serviceModules is the module table of the gRPC services.
func serviceModules() map[string]service {
	return map[string]service{
		"authn":  {name: authnv1.AuthnService_ServiceDesc.ServiceName, start: (*App).startAuthn},
		"authz":  {name: authzv1.AuthzService_ServiceDesc.ServiceName, start: (*App).startAuthz},
		"signer": {name: signerv1.SignerService_ServiceDesc.ServiceName, start: (*App).startSigner},
	}
}

type targetDef struct {
	services []string
	gateway  bool
}

// targets says what each -target starts. "all" runs every service behind one in-process
// gRPC server so the gateway uses the very same clients as in the split deployment.
func targets() map[string]targetDef {
	return map[string]targetDef{
		"all":     {services: []string{"authn", "authz", "signer"}, gateway: true},
		"gateway": {gateway: true},
		"authn":   {services: []string{"authn"}},
		"authz":   {services: []string{"authz"}},
		"signer":  {services: []string{"signer"}},
	}
}

// App is one running process of any target.
type App struct {
	cfg *Config
	log *slog.Logger
	reg *prometheus.Registry
	now func() time.Time

	grpcServer *grpc.Server
	health     *health.Server
	httpSrvs   []*http.Server
	conns      []*grpc.ClientConn
	closers    []func(context.Context) error

	// Ready is closed once every listener is up; GatewayAddr is then set when a gateway runs.
	Ready       chan struct{}
	GatewayAddr string
}

// NewApp prepares an App; Run starts it.
func NewApp(cfg *Config, log *slog.Logger) *App {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &App{cfg: cfg, log: log, reg: reg, now: time.Now, Ready: make(chan struct{})}
}

// Run starts target and blocks until ctx is done, then shuts down: the gateway stops taking
// requests first, the gRPC server stops last.
func (a *App) Run(ctx context.Context, target string) error {
	t, ok := targets()[target]
	if !ok {
		return fmt.Errorf("unknown target %q (want all, gateway, authn, authz or signer)", target)
	}
	defer a.shutdown()
	errc := make(chan error, 4)

	var inproc *bufconn.Listener
	if len(t.services) > 0 {
		secret, err := a.adminSecret()
		if err != nil {
			return err
		}
		opts := []grpc.ServerOption{grpc.ChainUnaryInterceptor(
			telemetry.UnaryServerInterceptor(a.log, telemetry.NewGRPCMetrics(a.reg)),
			signer.AdminAuthInterceptor(secret, a.log.With("component", "admin")))}
		if target != "all" && a.cfg.InternalTLS.Enabled() {
			creds, err := a.cfg.InternalTLS.Server()
			if err != nil {
				return err
			}
			opts = append(opts, grpc.Creds(creds))
		}
		a.grpcServer = grpc.NewServer(opts...)
		hs := health.NewServer()
		a.health = hs
		grpc_health_v1.RegisterHealthServer(a.grpcServer, hs)
		for _, name := range t.services {
			m := serviceModules()[name]
			register, err := m.start(a, ctx)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			register(a.grpcServer)
			hs.SetServingStatus(m.name, grpc_health_v1.HealthCheckResponse_SERVING)
		}
		var lis net.Listener
		if target == "all" {
			inproc = bufconn.Listen(1 << 20)
			lis = inproc
			if addr := a.cfg.Admin.Listen; addr != "" {
				alis, err := net.Listen("tcp", addr)
				if err != nil {
					return fmt.Errorf("admin: listen %s: %w", addr, err)
				}
				a.log.Info("admin gRPC API listening", "addr", alis.Addr().String())
				go func() { errc <- a.grpcServer.Serve(alis) }()
			}
		} else {
			addr := a.grpcConfig(target).Listen
			var err error
			if lis, err = net.Listen("tcp", addr); err != nil {
				return fmt.Errorf("%s: listen %s: %w", target, addr, err)
			}
			a.log.Info("gRPC service listening", "target", target, "addr", lis.Addr().String())
			if m := a.grpcConfig(target).MetricsListen; m != "" {
				if err := a.serveHTTP(m, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}), errc); err != nil {
					return err
				}
			}
		}
		go func() { errc <- a.grpcServer.Serve(lis) }()
	}

	if t.gateway {
		if err := a.startGateway(inproc, errc); err != nil {
			return err
		}
	}
	close(a.Ready)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// grpcConfig is the listen settings of a single-service target.
func (a *App) grpcConfig(target string) GRPCConfig {
	switch target {
	case "authn":
		return a.cfg.Authn.GRPCConfig
	case "authz":
		return a.cfg.Authz.GRPCConfig
	default:
		return a.cfg.Signer.GRPCConfig
	}
}

func (a *App) startAuthn(ctx context.Context) (func(*grpc.Server), error) {
	c := a.cfg.Authn
	var cache *authn.Cache
	deps := authn.Deps{Logger: a.log.With("component", "authn"), Now: a.now, Changed: func() {
		if cache != nil {
			cache.Purge()
		}
	}}
	var chain []authn.Backend
	for _, spec := range c.Backends {
		bc, err := backends.Decode(spec)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", spec.Name, err)
		}
		b, err := bc.Open(ctx, deps)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", spec.Name, err)
		}
		chain = append(chain, authn.Backend{Name: spec.Name, Authenticator: b})
	}
	ch := authn.NewChain(chain)
	a.closers = append(a.closers, ch.Close)
	var auth authn.Authenticator = ch
	if !c.Cache.Disabled {
		cache = authn.NewCache(ch, c.Cache.TTL.D(), c.Cache.MaxEntries, a.now)
		lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_authn_cache_lookups_total",
			Help: "Verified-credential cache lookups by result (hit, miss).",
		}, []string{"result"})
		a.reg.MustRegister(lookups)
		hit, miss := lookups.WithLabelValues("hit"), lookups.WithLabelValues("miss")
		cache.Hit, cache.Miss = hit.Inc, miss.Inc
		auth = cache
	}
	srv := authn.NewServer(auth, a.log.With("component", "authn"))
	return func(s *grpc.Server) { authnv1.RegisterAuthnServiceServer(s, srv) }, nil
}

func (a *App) startAuthz(ctx context.Context) (func(*grpc.Server), error) {
	az, err := a.cfg.Authz.OPA.Open(ctx, authz.Deps{Logger: a.log.With("component", "authz"), Now: a.now})
	if err != nil {
		return nil, err
	}
	srv := authz.NewServer(az, a.log.With("component", "authz"))
	return func(s *grpc.Server) { authzv1.RegisterAuthzServiceServer(s, srv) }, nil
}

func (a *App) startSigner(ctx context.Context) (func(*grpc.Server), error) {
	km, err := openKeyManager(ctx, a.cfg, a.log, a.now, a.reg)
	if err != nil {
		return nil, err
	}
	if c, ok := km.(signer.Closer); ok {
		a.closers = append(a.closers, c.Close)
	}
	c := a.cfg.Signer
	s := signer.New(signer.Options{Issuer: c.Issuer, MaxTTL: c.MaxTTL.D(), NotBeforeSkew: c.NotBeforeSkew.D(), Now: a.now}, km)
	if hc, ok := km.(signer.HealthChecker); ok {
		go a.followHealth(ctx, signerv1.SignerService_ServiceDesc.ServiceName, hc)
	}
	srv := signer.NewServer(s, a.log.With("component", "signer"))
	admin := signer.NewAdminServer(km, a.log.With("component", "admin"))
	return func(g *grpc.Server) {
		signerv1.RegisterSignerServiceServer(g, srv)
		signerv1.RegisterKeyAdminServiceServer(g, admin)
	}, nil
}

func openKeyManager(ctx context.Context, cfg *Config, log *slog.Logger, now func() time.Time, reg prometheus.Registerer) (signer.KeyManager, error) {
	kc, err := keys.Decode(cfg.Signer.Key)
	if err != nil {
		return nil, err
	}
	return kc.Open(ctx, signer.Deps{Logger: log.With("component", "signer"), Now: now, Registerer: reg, TokenLifetime: cfg.Signer.MaxTTL.D()})
}

func (a *App) dial(addr string, inproc *bufconn.Listener) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if inproc == nil && a.cfg.InternalTLS.Enabled() {
		var err error
		if creds, err = a.cfg.InternalTLS.Client(); err != nil {
			return nil, err
		}
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUnaryInterceptor(telemetry.UnaryClientInterceptor()),
	}
	if inproc != nil {
		addr = "passthrough:///in-process"
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return inproc.DialContext(ctx)
		}))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	a.conns = append(a.conns, cc)
	return cc, nil
}

func (a *App) startGateway(inproc *bufconn.Listener, errc chan<- error) error {
	g := a.cfg.Gateway
	// In one process a single connection reaches all three services.
	conns := map[string]*grpc.ClientConn{}
	for _, b := range []struct{ name, addr string }{{"authn", g.Backends.Authn}, {"authz", g.Backends.Authz}, {"signer", g.Backends.Signer}} {
		if inproc != nil && len(conns) > 0 {
			conns[b.name] = conns["authn"]
			continue
		}
		cc, err := a.dial(b.addr, inproc)
		if err != nil {
			return fmt.Errorf("gateway: dial %s at %s: %w", b.name, b.addr, err)
		}
		conns[b.name] = cc
	}
	health := map[string]gateway.HealthCheck{}
	for name, m := range serviceModules() {
		health[name] = gateway.HealthCheck{Client: grpc_health_v1.NewHealthClient(conns[name]), Service: m.name}
	}
	gw := gateway.New(gateway.Options{
		Realm: g.Realm, Services: slices.Clone(g.Services), TokenTTL: g.TokenTTL.D(),
		MaxQueryBytes: g.MaxQueryBytes, BackendTimeout: g.BackendTimeout.D(), PublicURL: g.PublicURL,
	}, gateway.Clients{
		Authn:  authnv1.NewAuthnServiceClient(conns["authn"]),
		Authz:  authzv1.NewAuthzServiceClient(conns["authz"]),
		Signer: signerv1.NewSignerServiceClient(conns["signer"]),
		Health: health,
	}, a.log.With("component", "gateway"), a.reg)
	lis, err := net.Listen("tcp", g.Listen)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", g.Listen, err)
	}
	a.GatewayAddr = lis.Addr().String()
	srv := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	a.httpSrvs = append(a.httpSrvs, srv)
	go func() {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return nil
}

func (a *App) serveHTTP(addr string, h http.Handler, errc chan<- error) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	a.httpSrvs = append(a.httpSrvs, srv)
	go func() {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return nil
}

func (a *App) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, s := range a.httpSrvs {
		_ = s.Shutdown(ctx)
	}
	for _, c := range a.conns {
		_ = c.Close()
	}
	if a.grpcServer != nil {
		stopped := make(chan struct{})
		go func() { a.grpcServer.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-ctx.Done():
			a.grpcServer.Stop()
		}
	}
	for _, c := range a.closers {
		if err := c(ctx); err != nil {
			a.log.Warn("close failed", "error", err)
		}
	}
}

func (a *App) adminSecret() (string, error) {
	if a.cfg.Admin.TokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(a.cfg.Admin.TokenFile)
	if err != nil {
		return "", fmt.Errorf("admin.token_file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < 16 {
		return "", fmt.Errorf("admin.token_file: the secret must be at least 16 characters")
	}
	return s, nil
}

// followHealth keeps a service's gRPC health (and so the gateway's /readyz) in step with a
// dependency it cannot work without, such as Vault for the signer.
func (a *App) followHealth(ctx context.Context, service string, hc signer.HealthChecker) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	serving := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := hc.Healthy(ctx)
		if (err == nil) == serving {
			continue
		}
		serving = err == nil
		status := grpc_health_v1.HealthCheckResponse_SERVING
		if !serving {
			status = grpc_health_v1.HealthCheckResponse_NOT_SERVING
			a.log.Warn("service not ready", "service", service, "error", err)
		} else {
			a.log.Info("service ready again", "service", service)
		}
		a.health.SetServingStatus(service, status)
	}
}
