package main

import (
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
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
// replica that is draining (see App.drain) or down gets no new calls.

// backendTarget turns a backend address into a gRPC target and, for a static list, the
// resolver that serves it.
func backendTarget(addr string) (string, resolver.Builder, error) {
	if strings.HasPrefix(addr, "dns:///") || !strings.Contains(addr, ",") {
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

// backendAddrs lists the host:port addresses a backend address names, for validation.
func backendAddrs(addr string) []string {
	addr = strings.TrimPrefix(addr, "dns:///")
	var out []string
	for _, a := range strings.Split(addr, ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// backendServiceConfig balances over healthy replicas and retries a call that never reached
// a service (UNAVAILABLE) on another replica. Every AuthnService, AuthzService and
// SignerService call may run twice: a decision or a signature has no effect beyond its answer
// (an offline login retried after its answer was lost leaves one unused session, which expires).
// The throttling is the retry budget: when more than half the recent calls failed, retries stop
// until calls succeed again, so a failing tier is not hit with three times the load.
func backendServiceConfig(healthService string) string {
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
// pings this often (serverKeepalive), or they answer GOAWAY "too_many_pings".
const keepaliveTime = 20 * time.Second

func clientKeepalive() grpc.DialOption {
	return grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: 10 * time.Second, PermitWithoutStream: true})
}

func serverKeepalive() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveTime / 2, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: 10 * time.Second}),
	}
}
