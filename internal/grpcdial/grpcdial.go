// Package grpcdial is how a gateway reaches its services' replicas over gRPC: the forms a
// backend address takes (one, a list, dns:///), the resolver behind them, round robin over the
// replicas reporting SERVING, and the keepalive and reconnect settings of both ends.
package grpcdial

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	_ "google.golang.org/grpc/health" // client-side health checking, named in the service config
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// A gateway backend address is one of:
//   - host:port — one replica (or a name whose DNS answers are tried in turn);
//   - host:port,host:port,… — a static list of replicas;
//   - dns:///name:port — every address DNS gives, re-resolved as it changes (a headless
//     Kubernetes service, a compose service scaled up).
// Calls are balanced round robin over the replicas that report SERVING on gRPC health, so a
// replica that is draining (App.drain in internal/app) or down gets no new calls.

// Target turns a backend address into a gRPC target and, for a static list, the
// resolver that serves it.
func Target(addr string) (string, resolver.Builder, error) {
	if name, ok := strings.CutPrefix(addr, "dns:///"); ok {
		b := &dnsBuilder{refresh: dnsRefresh, minInterval: dnsMinInterval}
		return b.Scheme() + ":///" + name, b, nil
	}
	if !strings.Contains(addr, ",") {
		return addr, nil, nil
	}
	var state resolver.State
	for _, a := range strings.Split(addr, ",") {
		a = strings.TrimSpace(a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			return "", nil, fmt.Errorf("%q is not host:port", a)
		}
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	r := manual.NewBuilderWithScheme("portcullis-static")
	r.InitialState(state)
	return r.Scheme() + ":///replicas", r, nil
}

// DNS answers are asked for again every dnsRefresh, and when a connection fails at most
// every dnsMinInterval. gRPC's own dns resolver waits 30 s between lookups, so a replica that
// came back with a new address (a restarted container, a rescheduled pod) would get no calls
// for that long — long enough for a rolling restart to take down the next replica while the
// first is still unknown, and leave the tier without one.
const (
	dnsRefresh     = 10 * time.Second
	dnsMinInterval = time.Second
)

// dnsBuilder resolves portcullis-dns:///host:port to every address DNS gives for host.
type dnsBuilder struct{ refresh, minInterval time.Duration }

func (b *dnsBuilder) Scheme() string { return "portcullis-dns" }

func (b *dnsBuilder) Build(target resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	host, port, err := net.SplitHostPort(target.Endpoint())
	if err != nil {
		return nil, fmt.Errorf("dns:///%s: %w", target.Endpoint(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &dnsResolver{cc: cc, host: host, port: port, now: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go r.run(ctx, b.refresh, b.minInterval)
	return r, nil
}

type dnsResolver struct {
	cc         resolver.ClientConn
	host, port string
	now        chan struct{}
	cancel     context.CancelFunc
	done       chan struct{}
}

func (r *dnsResolver) run(ctx context.Context, refresh, minInterval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(refresh)
	defer t.Stop()
	for {
		r.lookup(ctx)
		limit := time.NewTimer(minInterval)
		select {
		case <-ctx.Done():
			limit.Stop()
			return
		case <-limit.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.now:
		}
	}
}

func (r *dnsResolver) lookup(ctx context.Context) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(lctx, r.host)
	if err != nil {
		r.cc.ReportError(fmt.Errorf("dns lookup %s: %w", r.host, err))
		return
	}
	var state resolver.State
	for _, a := range addrs {
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: net.JoinHostPort(a, r.port)}}})
	}
	_ = r.cc.UpdateState(state)
}

// ResolveNow asks for a lookup; run holds it to minInterval after the last one.
func (r *dnsResolver) ResolveNow(resolver.ResolveNowOptions) {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

func (r *dnsResolver) Close() {
	r.cancel()
	<-r.done
}

// Addrs lists the host:port addresses a backend address names, for validation.
func Addrs(addr string) []string {
	addr = strings.TrimPrefix(addr, "dns:///")
	var out []string
	for _, a := range strings.Split(addr, ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// ServiceConfig balances over healthy replicas and retries a call that never reached
// a service (UNAVAILABLE) on another replica. Every AuthnService, AuthzService and
// SignerService call may run twice: a decision or a signature has no effect beyond its answer
// (an offline login retried after its answer was lost leaves one unused session, which expires).
// The throttling is the retry budget: when more than half the recent calls failed, retries stop
// until calls succeed again, so a failing tier is not hit with three times the load.
func ServiceConfig(healthService string) string {
	return fmt.Sprintf(`{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": %q},
  "methodConfig": [{
    "name": [{"service": "portcullis.authn.v1.AuthnService"}, {"service": "portcullis.authz.v1.AuthzService"}, {"service": "portcullis.signer.v1.SignerService"}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.02s", "maxBackoff": "0.2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}
  }],
  "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.2}
}`, healthService)
}

// Keepalives find a replica that vanished without closing its connections (a killed pod,
// a cut network) in seconds rather than at the next call's deadline. Servers must allow
// pings this often (ServerKeepalive), or they answer GOAWAY "too_many_pings".
const keepaliveTime = 20 * time.Second

func ClientKeepalive() grpc.DialOption {
	return grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 10 * time.Second, PermitWithoutStream: true})
}

// ClientReconnect retries a lost replica's address at most a second apart (gRPC's default
// backs off to two minutes): a restarted replica takes calls again as soon as it listens, so
// a rolling restart never finds every replica of a tier waiting out a backoff.
func ClientReconnect() grpc.DialOption {
	return grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 5 * time.Second,
	})
}

// Flow control windows are fixed rather than sized by gRPC's bandwidth-delay estimator. The
// estimator sends a PING with every sampled DATA frame and the peer answers it: with the
// small, steady messages of these services that is a PING and its ack in each direction for
// every call (TestFlowControlNoPings), four frames and their syscalls that carry nothing.
// Messages here are a few kilobytes, far below these windows, so no call ever waits for one.
const (
	streamWindow = 1 << 20 // 1 MiB
	connWindow   = 4 << 20 // 4 MiB
)

// ClientFlowControl fixes the gateway's receive windows (see streamWindow).
func ClientFlowControl() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStaticStreamWindowSize(streamWindow), grpc.WithStaticConnWindowSize(connWindow)}
}

// ServerFlowControl fixes a service's receive windows (see streamWindow).
func ServerFlowControl() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StaticStreamWindowSize(streamWindow), grpc.StaticConnWindowSize(connWindow)}
}

func ServerKeepalive() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: 10 * time.Second}),
	}
}
