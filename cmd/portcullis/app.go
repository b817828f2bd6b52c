package main

import (
	"context"
	"crypto/tls"
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
	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/internal/tlsreload"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
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

func methodsOf(d grpc.ServiceDesc) string { return "/" + d.ServiceName + "/" }

// serviceRules say who may call what on the services' server: only the gateway asks authn,
// authz and the signer, so a compromised authn or authz replica cannot mint tokens.
func serviceRules() grpctls.Rules {
	return grpctls.Rules{
		methodsOf(authnv1.AuthnService_ServiceDesc):   {grpctls.RoleGateway},
		methodsOf(authzv1.AuthzService_ServiceDesc):   {grpctls.RoleGateway},
		methodsOf(signerv1.SignerService_ServiceDesc): {grpctls.RoleGateway},
		methodsOf(grpc_health_v1.Health_ServiceDesc):  {grpctls.AnyPeer},
	}
}

// adminRules say who may call what on the admin server (which also wants the admin bearer).
func adminRules() grpctls.Rules {
	return grpctls.Rules{
		methodsOf(signerv1.KeyAdminService_ServiceDesc):    {grpctls.RoleAdmin},
		methodsOf(authnv1.SessionAdminService_ServiceDesc): {grpctls.RoleAdmin},
		methodsOf(authnv1.RobotAdminService_ServiceDesc):   {grpctls.RoleAdmin},
		methodsOf(authzv1.PolicyAdminService_ServiceDesc):  {grpctls.RoleAdmin},
		methodsOf(grpc_health_v1.Health_ServiceDesc):       {grpctls.AnyPeer},
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
	km       signer.KeyManager    // keys
	sessions *sessions.Manager    // authn, when sessions are enabled
	robots   *robots.Manager      // authn, when a robot backend is configured
	policy   authz.PolicyReporter // authz
	// sessionEvent counts session events (authn and the admin API's revocations).
	sessionEvent func(event string)
	// sessionEnded counts sessions a refresh ended because their account changed, by reason.
	sessionEnded func(reason string)
	grpcServer   *grpc.Server      // server: the services' server
	health       *health.Server    // server
	inproc       *bufconn.Listener // server, in -target=all

	serve       []func() error // what starts serving once every module started
	listeners   []net.Listener
	grpcServers []*grpc.Server
	httpSrvs    []*http.Server
	conns       []*grpc.ClientConn
	closers     []func(context.Context) error

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

// NewApp prepares an App; Run starts it.
func NewApp(cfg *Config, log *slog.Logger) *App {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), readBuildInfo().collector())
	return &App{cfg: cfg, log: log, reg: reg, grpcMetrics: telemetry.NewGRPCMetrics(reg), now: time.Now, Ready: make(chan struct{})}
}

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

func (a *App) serveGRPC(s *grpc.Server, lis net.Listener) {
	a.grpcServers = append(a.grpcServers, s)
	a.serve = append(a.serve, func() error { return s.Serve(lis) })
}

// grpcServerOptions are the options of a gRPC server whose callers rules authorise. With
// useTLS a caller is who its certificate says; without, it cannot prove anything and is
// taken to be plainRole, the one caller the listener is for (the in-process gateway, or the
// caller of a loopback listener: Validate keeps plaintext off the network). The unary and
// stream interceptors given run after authorisation.
func (a *App) grpcServerOptions(rules grpctls.Rules, useTLS bool, plainRole string,
	unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor, log *slog.Logger) ([]grpc.ServerOption, error) {
	opts := serverKeepalive()
	identify := grpctls.Fixed(plainRole)
	if useTLS {
		creds, err := a.cfg.InternalTLS.Server()
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(creds))
		identify = grpctls.FromCertificate(a.cfg.InternalTLS.Domain())
	}
	az := grpctls.NewAuthorizer(rules, identify, log)
	opts = append(opts, a.tracing.ServerOptions()...)
	opts = append(opts,
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{telemetry.UnaryServerInterceptor(a.log, a.grpcMetrics), az.Unary()}, unary...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{az.Stream()}, stream...)...))
	return opts, nil
}

// startServer makes the services' gRPC server. In -target=all it listens in-process and its
// only caller is this process's gateway; split, it listens on the service's address and,
// with internal_tls, admits only callers whose certificates the rules name.
func (a *App) startServer(ctx context.Context) error {
	useTLS := a.target != "all" && a.cfg.InternalTLS.Enabled()
	opts, err := a.grpcServerOptions(serviceRules(), useTLS, grpctls.RoleGateway, nil, nil, a.log.With("component", "grpc"))
	if err != nil {
		return err
	}
	a.grpcServer = grpc.NewServer(opts...)
	a.health = health.NewServer()
	grpc_health_v1.RegisterHealthServer(a.grpcServer, a.health)
	var lis net.Listener
	if a.target == "all" {
		a.inproc = bufconn.Listen(1 << 20)
		lis = a.inproc
	} else {
		gc := a.grpcConfig(a.target)
		if lis, err = a.listen(a.target, gc.Listen); err != nil {
			return err
		}
		a.log.Info("gRPC service listening", "target", a.target, "addr", lis.Addr().String(), "mutual_tls", useTLS)
		if !useTLS {
			a.log.Warn("internal_tls is not set: callers of this service are not authenticated and are taken to be the gateway",
				"addr", lis.Addr().String())
		}
		if gc.MetricsListen != "" {
			if _, err := a.serveHTTP(gc.MetricsListen, a.metricsHandler()); err != nil {
				return err
			}
		}
	}
	a.serveGRPC(a.grpcServer, lis)
	return nil
}

// register puts a service on the services' server and marks it serving.
func (a *App) register(module string, f func(*grpc.Server)) {
	f(a.grpcServer)
	a.health.SetServingStatus(healthNames()[module], grpc_health_v1.HealthCheckResponse_SERVING)
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

func (a *App) startAuthn(ctx context.Context) error {
	c := a.cfg.Authn
	lim := authn.NewBcryptLimiter(c.Bcrypt.MaxConcurrent, c.Bcrypt.MaxQueue)
	turnedAway := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_bcrypt_turned_away_total",
		Help: "Password checks not done because the bcrypt queue was full (busy) or the caller's deadline passed while waiting (expired).",
	}, []string{"reason"})
	a.reg.MustRegister(turnedAway)
	lim.Busy, lim.Expired = turnedAway.WithLabelValues("busy").Inc, turnedAway.WithLabelValues("expired").Inc
	var cache *authn.Cache
	deps := authn.Deps{Logger: a.log.With("component", "authn"), Now: a.now, Bcrypt: lim, Changed: func() {
		if cache != nil {
			cache.Purge()
		}
	}}
	// The state store first: the robot backend reads its robots there.
	var st storage.Store
	if a.cfg.storeUsed() {
		var err error
		if st, err = a.openStore(ctx); err != nil {
			return fmt.Errorf("authn store: %w", err)
		}
		// Closed last, after the session manager, the robots and the lockout that use it.
		defer func() { a.closers = append(a.closers, st.Close) }()
		if a.cfg.robotsUsed() {
			if deps.Robots, err = a.newRobots(st.Robots()); err != nil {
				return err
			}
		}
	}
	var chain []authn.Member
	for _, spec := range c.Backends {
		bc, err := backend.Decode(spec)
		if err != nil {
			return fmt.Errorf("backend %q: %w", spec.Name, err)
		}
		b, err := bc.Open(ctx, deps)
		if err != nil {
			return fmt.Errorf("backend %q: %w", spec.Name, err)
		}
		chain = append(chain, authn.Member{Name: spec.Name, SubjectPrefix: spec.SubjectPrefix, Backend: b})
	}
	ch := authn.NewChain(chain, lim)
	a.closers = append(a.closers, ch.Close)
	opts := authn.ServerOptions{Resolver: ch}
	var lk *lockout.Lockout
	if st != nil {
		if a.cfg.Sessions.On() {
			opts.Sessions, opts.SessionEvent = a.newSessions(st.Sessions()), a.sessionEvent
			opts.SessionEnded = a.sessionEnded
		}
		if c.Lockout.On() {
			var err error
			if lk, err = a.newLockout(st.Lockout(), ch); err != nil {
				return err
			}
			opts.InvalidRefreshToken = lk.InvalidUnguessable
		}
	}
	// Gate → Cache → Guard → Chain: a locked caller is refused before bcrypt or a directory
	// bind; a warm cache hit reads no store, and the gate keeps a locked caller off it.
	var auth authn.Authenticator = ch
	if lk != nil {
		auth = lk.Guard(ch)
	}
	if !c.Cache.Disabled {
		cache = authn.NewCache(auth, c.Cache.TTL.D(), c.Cache.MaxEntries, a.now)
		lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_authn_cache_lookups_total",
			Help: "Verified-credential cache lookups by result (hit, miss).",
		}, []string{"result"})
		a.reg.MustRegister(lookups)
		hit, miss := lookups.WithLabelValues("hit"), lookups.WithLabelValues("miss")
		cache.Hit, cache.Miss = hit.Inc, miss.Inc
		auth = cache
		if lk != nil {
			auth = lk.Gate(cache)
		}
	}
	srv := authn.NewServer(auth, a.log.With("component", "authn"), opts)
	a.register("authn", func(s *grpc.Server) { authnv1.RegisterAuthnServiceServer(s, srv) })
	return nil
}

// openStore opens authn's state store: sessions, robot accounts and the lockout's counts.
func (a *App) openStore(ctx context.Context) (storage.Store, error) {
	spec, err := a.cfg.authnStore()
	if err != nil {
		return nil, err
	}
	if a.cfg.storeSpec().Type == "" { // the default SQLite file: its directory may not exist yet
		dir := a.cfg.dataDir
		if dir == "" {
			dir = defaultDataDir
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	sc, err := decodeStore(spec)
	if err != nil {
		return nil, err
	}
	return sc.OpenStore(ctx, storage.Deps{Logger: a.log.With("component", "sessions"), Now: a.now})
}

// newSessions makes the session manager over st; shutdown closes it (flushing the last-used
// times it holds) before the store.
func (a *App) newSessions(st sessions.Store) *sessions.Manager {
	c := a.cfg.Sessions
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_session_events_total",
		Help: "Sessions (refresh tokens) by event: created, refreshed, refused or revoked.",
	}, []string{"event"})
	a.reg.MustRegister(events)
	for _, e := range []string{authn.EventCreated, authn.EventRefreshed, authn.EventRefused, authn.EventRevoked} {
		events.WithLabelValues(e) // every series from the start, at 0
	}
	a.sessionEvent = func(e string) { events.WithLabelValues(e).Inc() }
	ended := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_sessions_ended_total",
		Help: "Sessions a refresh ended because the account changed since login, by reason: account_changed (new password), account_disabled or account_removed.",
	}, []string{"reason"})
	a.reg.MustRegister(ended)
	for _, r := range []string{authn.EndedAccountChanged, authn.EndedAccountDisabled, authn.EndedAccountRemoved} {
		ended.WithLabelValues(r) // every series from the start, at 0
	}
	a.sessionEnded = func(r string) { ended.WithLabelValues(r).Inc() }
	m := sessions.NewManager(st, sessions.Options{IdleTTL: c.IdleTTL.D(), MaxTTL: c.MaxTTL.D(), Now: a.now,
		Logger: a.log.With("component", "sessions")})
	a.closers = append(a.closers, m.Close)
	a.sessions = m
	return m
}

// newRobots makes the robot accounts' manager over st's database, with its metrics; the robot
// backend and the admin API share it. Shutdown closes it (writing the last-use times it holds)
// before the store.
func (a *App) newRobots(st robots.Store) (*robots.Manager, error) {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_robot_events_total",
		Help: "Robot account events: created, revoked, or refused (a robot key that did not log in).",
	}, []string{"event"})
	a.reg.MustRegister(events)
	for _, e := range []string{robots.EventCreated, robots.EventRevoked, robots.EventRefused} {
		events.WithLabelValues(e) // every series from the start, at 0
	}
	m := robots.NewManager(st, robots.Options{Now: a.now, Logger: a.log.With("component", "authn"),
		Event: func(e string) { events.WithLabelValues(e).Inc() }})
	a.closers = append(a.closers, m.Close)
	a.robots = m
	return m, nil
}

// newLockout makes the lockout over st's database, with its metrics; shutdown stops its GC
// loop before the store closes.
func (a *App) newLockout(st lockout.Store, ch *authn.Chain) (*lockout.Lockout, error) {
	locked := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_lockouts_total",
		Help: "Locks set (or lengthened) after too many failed logins, by key: account_address, address (IPv4, IPv6 /64) or prefix (a wider IPv6 network).",
	}, []string{"key"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_lockout_refused_total",
		Help: "Logins refused without a credential check because the caller was locked out, by key.",
	}, []string{"key"})
	storeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_authn_lockout_store_errors_total",
		Help: "Lockout store reads and writes that failed; meanwhile logins go on without the lockout.",
	})
	acct, addr := a.cfg.Authn.Lockout.policies()
	lk, err := lockout.New(lockout.Options{Store: st, AccountAddress: acct, Address: addr,
		Prefixes: a.cfg.Authn.Lockout.prefixes(), Now: a.now,
		// Robot keys and workload JWTs cannot be guessed: a lock on their address (every
		// client's, behind a proxy the gateway does not trust) must not keep them out.
		Unguessable: ch.Claimed,
		// The gateway reads this config too (one file for every target): with no trusted
		// proxy, a proxy in front makes one address of every client; say so when it shows.
		WarnSharedAddress: len(a.cfg.Gateway.TrustedProxies) == 0,
		Logger:            a.log.With("component", "authn"),
		Locked:            func(k string) { locked.WithLabelValues(k).Inc() },
		Refused:           func(k string) { refused.WithLabelValues(k).Inc() },
		StoreError:        storeErrors.Inc,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, lk.Close)
	a.reg.MustRegister(locked, refused, storeErrors)
	for _, k := range lockout.Kinds {
		locked.WithLabelValues(k) // every series from the start, at 0
		refused.WithLabelValues(k)
	}
	return lk, nil
}

func (a *App) startAuthz(ctx context.Context) error {
	log := a.log.With("component", "authz")
	az, err := a.cfg.Authz.OPA.Open(ctx, authz.Deps{Logger: log, Now: a.now, Metrics: a.reg})
	if err != nil {
		return err
	}
	if c, ok := az.(interface{ Close(context.Context) error }); ok {
		a.closers = append(a.closers, c.Close)
	}
	srv := authz.NewServer(az, log)
	a.register("authz", func(s *grpc.Server) { authzv1.RegisterAuthzServiceServer(s, srv) })
	if p, ok := az.(authz.PolicyReporter); ok {
		a.policy = p
		select {
		case <-p.Loaded():
		default:
			// A policy fetched from a bundle server may come later: until it does, the
			// service is not ready (gRPC health, and so the gateway's /readyz).
			name := healthNames()["authz"]
			a.health.SetServingStatus(name, grpc_health_v1.HealthCheckResponse_NOT_SERVING)
			log.Warn("authz not ready: waiting for the first policy", "source", p.PolicyStatus(ctx).Source)
			go func() {
				<-p.Loaded()
				a.health.SetServingStatus(name, grpc_health_v1.HealthCheckResponse_SERVING)
			}()
		}
	}
	return nil
}

// startKeys opens the key manager the signer signs with and the admin API rotates.
func (a *App) startKeys(ctx context.Context) error {
	km, err := openKeyManager(ctx, a.cfg, a.log, a.now, a.reg, a.tracing.HTTPTransport)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, km.Close)
	a.km = km
	return nil
}

func (a *App) startSigner(ctx context.Context) error {
	c := a.cfg.Signer
	audiences := slices.Clone(c.Audiences)
	if len(audiences) == 0 { // a Config built without Defaults
		audiences = slices.Clone(a.cfg.Gateway.Services)
	}
	s := signer.New(signer.Options{Issuer: c.Issuer, MaxTTL: c.MaxTTL.D(), NotBeforeSkew: c.NotBeforeSkew.D(),
		Audiences: audiences, Now: a.now}, a.km)
	// A key that cannot fail (local, memory) stays healthy, so following it changes nothing.
	go a.followHealth(ctx, signerv1.SignerService_ServiceDesc.ServiceName, a.km)
	srv := signer.NewServer(s, a.log.With("component", "signer"))
	a.register("signer", func(g *grpc.Server) { signerv1.RegisterSignerServiceServer(g, srv) })
	return nil
}

// startAdmin serves the admin API on admin.listen: the admin services of what this process
// runs (adminServices) and health, nothing else. Every call needs the admin
// bearer secret and, with internal_tls, an admin certificate.
// The REST API on admin.http_listen reaches the same services in process (startAdminHTTP).
func (a *App) startAdmin(ctx context.Context) error {
	addr := a.cfg.Admin.Listen
	if addr == "" && a.cfg.Admin.HTTPListen == "" {
		return nil
	}
	log := a.log.With("component", "admin")
	if len(a.adminServices(log)) == 0 {
		a.log.Info("admin.listen is set but this process runs nothing the admin API manages: not listening", "addr", addr)
		return nil
	}
	secret, err := a.adminSecret()
	if err != nil {
		return err
	}
	auth := signer.NewAdminAuth(secret, log)
	useTLS := a.cfg.InternalTLS.Enabled()
	var s *grpc.Server
	if addr != "" {
		if s, err = a.newAdminServer(auth, useTLS, log); err != nil {
			return err
		}
		lis, err := a.listen("admin", addr)
		if err != nil {
			return err
		}
		a.AdminAddr = lis.Addr().String()
		a.log.Info("admin gRPC API listening", "addr", a.AdminAddr, "mutual_tls", useTLS)
		a.serveGRPC(s, lis)
	}
	if a.cfg.Admin.HTTPListen == "" {
		return nil
	}
	// With internal_tls the gRPC server wants a client certificate the in-process REST
	// client cannot present. The REST API then gets its own plaintext server, reached only
	// over its in-process listener by the HTTP handler, which has already checked the
	// caller's admin certificate: its one caller is the admin by position, like the
	// loopback listener without internal_tls.
	if s == nil || useTLS {
		if s, err = a.newAdminServer(auth, false, log); err != nil {
			return err
		}
	}
	return a.startAdminHTTP(ctx, s, log)
}

// newAdminServer is a gRPC server with the admin services this process runs and health,
// behind the admin rules and the bearer check auth. With useTLS it presents the internal
// certificate and callers are who theirs say; without, every caller is taken to be the admin.
func (a *App) newAdminServer(auth *signer.AdminAuth, useTLS bool, log *slog.Logger) (*grpc.Server, error) {
	opts, err := a.grpcServerOptions(adminRules(), useTLS, grpctls.RoleAdmin,
		[]grpc.UnaryServerInterceptor{auth.Unary()}, []grpc.StreamServerInterceptor{auth.Stream()}, log)
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(opts...)
	hs := health.NewServer()
	for _, as := range a.adminServices(log) {
		s.RegisterService(as.desc, as.impl)
		hs.SetServingStatus(as.desc.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	}
	grpc_health_v1.RegisterHealthServer(s, hs)
	return s, nil
}

// adminService is one admin API service and its implementation.
type adminService struct {
	desc *grpc.ServiceDesc
	impl any
}

// adminServices are the admin services of what this process runs: KeyAdminService with the
// signer, SessionAdminService with authn's sessions, RobotAdminService with a robot backend,
// PolicyAdminService with authz. It is the one list startAdmin (whether to listen at all) and
// newAdminServer (what to register) read, so a target never holds a service its admin
// listener does not serve.
func (a *App) adminServices(log *slog.Logger) []adminService {
	var out []adminService
	if a.km != nil {
		out = append(out, adminService{&signerv1.KeyAdminService_ServiceDesc, signer.NewAdminServer(a.km, log)})
	}
	if a.sessions != nil {
		sa := authn.NewSessionAdminServer(a.sessions, log)
		sa.SessionEvent = a.sessionEvent
		out = append(out, adminService{&authnv1.SessionAdminService_ServiceDesc, sa})
	}
	if a.robots != nil {
		out = append(out, adminService{&authnv1.RobotAdminService_ServiceDesc, robots.NewAdminServer(a.robots, log)})
	}
	if a.policy != nil {
		out = append(out, adminService{&authzv1.PolicyAdminService_ServiceDesc, authz.NewPolicyAdminServer(a.policy)})
	}
	return out
}

func openKeyManager(ctx context.Context, cfg *Config, log *slog.Logger, now func() time.Time, reg prometheus.Registerer,
	wrapHTTP func(http.RoundTripper) http.RoundTripper) (signer.KeyManager, error) {
	kc, err := keymanager.Decode(cfg.Signer.Key)
	if err != nil {
		return nil, err
	}
	return kc.Open(ctx, signer.Deps{Logger: log.With("component", "signer"), Now: now, Registerer: reg, TokenLifetime: cfg.Signer.MaxTTL.D(),
		WrapHTTP: wrapHTTP})
}

// dial connects to a service: in-process in -target=all, else at addr, presenting this
// process's certificate when internal_tls is set and accepting only a server whose
// certificate names role (the host name alone does not tell authn from authz).
func (a *App) dial(addr, role, healthService string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if a.inproc == nil && a.cfg.InternalTLS.Enabled() {
		var err error
		if creds, err = a.cfg.InternalTLS.Client(role); err != nil {
			return nil, err
		}
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithUnaryInterceptor(telemetry.UnaryClientInterceptor()),
	}, a.tracing.DialOptions()...)
	if a.inproc != nil {
		addr = "passthrough:///in-process"
		inproc := a.inproc
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return inproc.DialContext(ctx)
		}))
	} else {
		target, r, err := backendTarget(addr)
		if err != nil {
			return nil, err
		}
		addr = target
		opts = append(opts, grpc.WithDefaultServiceConfig(backendServiceConfig(healthService)), clientKeepalive(), clientReconnect())
		if r != nil {
			opts = append(opts, grpc.WithResolvers(r))
		}
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, err
	}
	a.conns = append(a.conns, cc)
	return cc, nil
}

// startGateway serves the token protocol on gateway.listen (HTTPS with gateway.tls) and, on
// gateway.metrics_listen, the process's metrics. With this process's services running
// (-target=all) it reaches them in-process.
func (a *App) startGateway(context.Context) error {
	g := a.cfg.Gateway
	proxies, errs := parsePrefixes(g.TrustedProxies)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// In one process a single connection reaches all three services.
	conns := map[string]*grpc.ClientConn{}
	for _, b := range []struct{ name, addr string }{{"authn", g.Backends.Authn}, {"authz", g.Backends.Authz}, {"signer", g.Backends.Signer}} {
		if a.inproc != nil && len(conns) > 0 {
			conns[b.name] = conns["authn"]
			continue
		}
		cc, err := a.dial(b.addr, b.name, healthNames()[b.name]) // module name = role
		if err != nil {
			return fmt.Errorf("dial %s at %s: %w", b.name, b.addr, err)
		}
		conns[b.name] = cc
	}
	health := map[string]gateway.HealthCheck{}
	for name, svc := range healthNames() {
		health[name] = gateway.HealthCheck{Client: grpc_health_v1.NewHealthClient(conns[name]), Service: svc}
	}
	var tlsConfig *tls.Config
	if g.TLS.CertFile != "" {
		r, err := tlsreload.New(g.TLS.CertFile, g.TLS.KeyFile, a.log.With("component", "gateway"))
		if err != nil {
			return err
		}
		tlsConfig = r.TLSConfig()
	}
	lis, err := a.listen("gateway", g.Listen)
	if err != nil {
		return err
	}
	a.GatewayAddr = lis.Addr().String()
	a.PublicURL = g.PublicURL
	if g.derivePublicURL {
		scheme := "http"
		if tlsConfig != nil {
			scheme = "https"
		}
		_, port, _ := net.SplitHostPort(a.GatewayAddr)
		a.PublicURL = scheme + "://localhost:" + port
	}
	gw := gateway.New(gateway.Options{
		Realm: g.Realm, Services: slices.Clone(g.Services), TokenTTL: g.TokenTTL.D(),
		MaxQueryBytes: g.MaxQueryBytes, BackendTimeout: g.BackendTimeout.D(), PublicURL: a.PublicURL,
		TrustedProxies: proxies, RefuseAnonymous: !a.cfg.Authn.anonymousAllowed(),
	}, gateway.Clients{
		Authn:  authnv1.NewAuthnServiceClient(conns["authn"]),
		Authz:  authzv1.NewAuthzServiceClient(conns["authz"]),
		Signer: signerv1.NewSignerServiceClient(conns["signer"]),
		Health: health,
	}, a.log.With("component", "gateway"), a.reg)
	srv := &http.Server{Handler: a.tracing.HTTPHandler(gw, "gateway"), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: tlsConfig}
	a.httpSrvs = append(a.httpSrvs, srv)
	a.serve = append(a.serve, func() error {
		if tlsConfig != nil {
			return httpServeErr(srv.ServeTLS(lis, "", ""))
		}
		return httpServeErr(srv.Serve(lis))
	})
	if g.MetricsListen != "" {
		if a.MetricsAddr, err = a.serveHTTP(g.MetricsListen, a.metricsHandler()); err != nil {
			return err
		}
	}
	return nil
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
	for _, c := range a.closers {
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
func (a *App) followHealth(ctx context.Context, service string, hc signer.KeyManager) {
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
