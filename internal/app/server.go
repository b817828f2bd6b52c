package app

import (
	"context"
	"log/slog"
	"net"
	"runtime"
	"time"

	"github.com/portcullis-dev/portcullis/internal/grpcdial"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// grpcServerOptions are the options of a gRPC server whose callers rules authorise. With
// useTLS a caller is who its certificate says; without, it cannot prove anything and is
// taken to be plainRole, the one caller the listener is for (the in-process gateway, or the
// caller of a loopback listener: Validate keeps plaintext off the network). The unary and
// stream interceptors given run after authorisation.
func (a *App) grpcServerOptions(rules grpctls.Rules, useTLS bool, plainRole string,
	unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor, log *slog.Logger) ([]grpc.ServerOption, error) {
	opts, _, err := a.grpcServerChain(rules, useTLS, plainRole, unary, stream, log)
	return opts, err
}

// grpcServerChain is grpcServerOptions and the unary interceptor chain in them, for the
// in-process channel to run the very same interceptors around the same handlers.
func (a *App) grpcServerChain(rules grpctls.Rules, useTLS bool, plainRole string,
	unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor, log *slog.Logger) ([]grpc.ServerOption, []grpc.UnaryServerInterceptor, error) {
	opts := append(grpcdial.ServerKeepalive(), grpcdial.ServerFlowControl()...)
	identify := grpctls.Fixed(plainRole)
	if useTLS {
		creds, err := a.cfg.InternalTLS.Server()
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, grpc.Creds(creds))
		identify = grpctls.FromCertificate(a.cfg.InternalTLS.Domain())
	}
	az := grpctls.NewAuthorizer(rules, identify, log)
	chain := append([]grpc.UnaryServerInterceptor{telemetry.UnaryServerInterceptor(a.log, a.grpcMetrics), az.Unary()}, unary...)
	opts = append(opts, a.tracing.ServerOptions()...)
	opts = append(opts,
		grpc.ChainUnaryInterceptor(chain...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{az.Stream()}, stream...)...))
	return opts, chain, nil
}

// startServer makes the services' gRPC server. In -target=all its only caller is this
// process's gateway, which reaches the services through the in-process channel (or, for
// the test that keeps the wire path covered, over a bufconn listener); split, it listens on
// the service's address and, with internal_tls, admits only callers whose certificates the
// rules name.
func (a *App) startServer(ctx context.Context) error {
	useTLS := a.target != "all" && a.cfg.InternalTLS.Enabled()
	// Only the gateway asks authn, authz and the signer, so a compromised authn or authz
	// replica cannot mint tokens; register adds each service for the gateway role.
	a.serviceRules = grpctls.Rules{grpctls.MethodsOf(&grpc_health_v1.Health_ServiceDesc): {grpctls.AnyPeer}}
	// Split, handlers run on warm workers (warmPool); in -target=all the in-process channel
	// already runs the whole call on one.
	var unary []grpc.UnaryServerInterceptor
	if a.target != "all" {
		unary = append(unary, a.warmPool().UnaryServerInterceptor())
	}
	opts, chain, err := a.grpcServerChain(a.serviceRules, useTLS, grpctls.RoleGateway, unary, nil, a.log.With("component", "grpc"))
	if err != nil {
		return err
	}
	// gRPC's own long-lived stream workers run the interceptors before the hand-over to a
	// warm worker. More workers than Ps: a call only goes to a worker already waiting for
	// one, and the worker that served the previous call is often still finishing it.
	opts = append(opts, grpc.NumStreamWorkers(uint32(streamWorkers())))
	a.grpcServer = grpc.NewServer(opts...)
	a.health = health.NewServer()
	grpc_health_v1.RegisterHealthServer(a.grpcServer, a.health)
	var lis net.Listener
	if a.target == "all" {
		a.inproc = bufconn.Listen(1 << 20)
		lis = a.inproc
		if !a.overBufconn {
			// The interceptors of the server and of dial's client, the same instances'
			// kind: the authoriser is the server's own, so its rules are the ones register
			// fills in.
			a.direct = newInprocConn(inprocAuthority, []grpc.UnaryClientInterceptor{telemetry.UnaryClientInterceptor()},
				a.tracing.ClientStatsHandler(), chain, a.tracing.ServerStatsHandler())
			grpc_health_v1.RegisterHealthServer(a.direct, a.health)
			a.direct.warm = a.warmPool()
		}
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
	a.serveGRPC("services", a.grpcServer, lis)
	return nil
}

// streamWorkers is how many long-lived goroutines a pool of them has (beyond them, calls get
// a goroutine of their own).
func streamWorkers() int { return 4 * runtime.GOMAXPROCS(0) }

// warmPool starts a pool of warm workers (inproc_pool.go) that stops with the App.
func (a *App) warmPool() *warmPool {
	p := newWarmPool(streamWorkers())
	a.closers = append(a.closers, func(context.Context) error { p.close(); return nil })
	return p
}

// inprocAuthority is the :authority of the gateway's calls in -target=all, in-process or
// over bufconn (passthrough:///in-process).
const inprocAuthority = "in-process"

// register puts module's service on the services' server for the gateway to call, and marks
// it serving.
func (a *App) register(module string, desc *grpc.ServiceDesc, impl any) {
	a.serviceRules[grpctls.MethodsOf(desc)] = []string{grpctls.RoleGateway}
	a.grpcServer.RegisterService(desc, impl)
	if a.direct != nil {
		a.direct.RegisterService(desc, impl)
	}
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

// dial connects to a service: in-process in -target=all, else at addr, presenting this
// process's certificate when internal_tls is set and accepting only a server whose
// certificate names role (the host name alone does not tell authn from authz).
func (a *App) dial(addr, role, healthService string) (grpc.ClientConnInterface, error) {
	if a.direct != nil {
		return a.direct, nil
	}
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
		addr = "passthrough:///" + inprocAuthority
		inproc := a.inproc
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return inproc.DialContext(ctx)
		}))
	} else {
		target, r, err := grpcdial.Target(addr)
		if err != nil {
			return nil, err
		}
		addr = target
		opts = append(opts, grpc.WithDefaultServiceConfig(grpcdial.ServiceConfig(healthService)), grpcdial.ClientKeepalive(), grpcdial.ClientReconnect())
		opts = append(opts, grpcdial.ClientFlowControl()...)
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
