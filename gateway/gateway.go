// Package gateway is Portcullis's HTTP face: the Docker token protocol (GET /token), its
// OAuth2 form (POST /token: password, refresh, RFC 8693 token exchange and RFC 8628 device
// code grants), RFC 8628 device authorization (POST /device_authorization), RFC 7009
// revocation (POST /revoke), OIDC back-channel logout (POST /backchannel-logout), JWKS and
// discovery, health. It only translates: every decision
// is a gRPC call to authn, authz or signer. Its metrics go to the registry it is given; the
// token port does not serve them.
package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-dev/portcullis/internal/telemetry"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// Options are the gateway's validated runtime settings.
type Options struct {
	// Realm is the HTTP Basic realm in WWW-Authenticate.
	Realm string
	// Services lists the registry service names tokens are issued for (the aud claim).
	Services []string
	TokenTTL time.Duration
	// MaxQueryBytes bounds the query string (and form body) of a token request.
	MaxQueryBytes int
	// BackendTimeout bounds all gRPC calls of one request, so a hung backend answers 503.
	BackendTimeout time.Duration
	// PublicURL is the externally visible base URL discovery answers with. It is never taken
	// from a request's Host header, which the client writes; empty gives relative URLs.
	PublicURL string
	// TrustedProxies are the peers whose X-Forwarded-For / Forwarded headers name the client;
	// from any other peer those headers are ignored. List proxies only: a host in these
	// prefixes may name any client it likes.
	TrustedProxies []netip.Prefix
	// RefuseAnonymous answers a token request without credentials 401 with the Basic
	// challenge, as docker_auth does when its users lack "" (authn.allow_anonymous: false).
	// The zero value lets anonymous callers ask and the policy decide what they get.
	RefuseAnonymous bool
	// Routes, when set, adds another package's routes to the gateway's mux after its own (the
	// account pages: pages.New(…).Register). They are served behind the same request id and
	// panic recovery; a pattern that conflicts with the gateway's panics in New. clientAddr is
	// the gateway's reading of a request's client address (TrustedProxies applied).
	Routes func(mux *http.ServeMux, clientAddr func(*http.Request) string)
}

// Clients are the gRPC clients of the services; the same in one process and split.
type Clients struct {
	Authn  authnv1.AuthnServiceClient
	Authz  authzv1.AuthzServiceClient
	Signer signerv1.SignerServiceClient
	// Device runs the RFC 8628 device flow (`portcullis login`). nil turns the flow off:
	// POST /device_authorization answers 404, the device_code grant unsupported_grant_type,
	// and discovery does not name them. internal/app sets it when sessions are on.
	Device authnv1.DeviceAuthorizationServiceClient
	// Account serves a person's own account; the gateway itself uses only its
	// BackChannelLogout (POST /backchannel-logout, 404 when nil).
	Account authnv1.AccountServiceClient
	// Health says how to ask each backend, by name, whether it is ready (/readyz).
	Health map[string]HealthCheck
}

// HealthCheck asks one backend's gRPC health service about one service name.
type HealthCheck struct {
	Client  grpc_health_v1.HealthClient
	Service string
}

// Gateway serves the HTTP API.
type Gateway struct {
	opt     Options
	c       Clients
	log     *slog.Logger
	audit   *slog.Logger
	metrics *metrics
	mux     *http.ServeMux
}

type metrics struct {
	tokens  *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// New builds the gateway. reg receives the gateway's metrics; serving it is the caller's
// business, on an address of its own.
func New(opt Options, c Clients, log *slog.Logger, reg *prometheus.Registry) *Gateway {
	g := &Gateway{opt: opt, c: c, log: log, audit: log.With("log_type", "audit"), mux: http.NewServeMux()}
	g.metrics = &metrics{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_token_requests_total",
			Help: "Token requests by outcome (issued, unauthorized, bad_request, unavailable (a backend down or busy), error, pending (a device polling before its person decided)).",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_token_request_duration_seconds",
			Help:    "Token request latency by outcome.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"outcome"}),
	}
	reg.MustRegister(g.metrics.tokens, g.metrics.latency)
	for _, o := range []string{"issued", "unauthorized", "bad_request", "unavailable", "error", "pending"} {
		g.metrics.tokens.WithLabelValues(o) // export zeros so rate() works from the first scrape
	}
	if opt.PublicURL == "" {
		log.Warn("no public URL configured: discovery answers relative URLs")
	}
	g.mux.HandleFunc("GET /token", g.handleToken)
	g.mux.HandleFunc("POST /token", g.handleOAuthToken)
	// A GET pattern also serves HEAD, which would run the whole decision (bcrypt included) for
	// an answer without a body.
	g.mux.Handle("HEAD /token", methodNotAllowed("GET, POST"))
	g.mux.Handle("/token", methodNotAllowed("GET, POST"))
	// RFC 7009 token revocation. Every method reaches the handler, which answers all but
	// POST with invalid_request: the OAuth error the RFC's clients read.
	g.mux.HandleFunc("/revoke", g.handleRevoke)
	// Absent when off: the catch-all answers their paths 404.
	if g.deviceOn() {
		g.mux.HandleFunc("POST /device_authorization", g.handleDeviceAuthorization)
		g.mux.Handle("/device_authorization", methodNotAllowed("POST"))
	}
	if c.Account != nil {
		g.mux.HandleFunc("POST /backchannel-logout", g.handleBackChannelLogout)
		g.mux.Handle("/backchannel-logout", methodNotAllowed("POST"))
	}
	for path, h := range map[string]http.HandlerFunc{
		"/.well-known/jwks.json":            g.handleJWKS,
		"/.well-known/openid-configuration": g.handleDiscovery,
		// RFC 8414: where OAuth clients (token exchange) look for the grant types.
		"/.well-known/oauth-authorization-server": g.handleDiscovery,
		"/healthz": func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		},
		"/readyz": g.handleReady,
	} {
		g.mux.HandleFunc("GET "+path, h)
		g.mux.Handle(path, methodNotAllowed("GET, HEAD"))
	}
	g.mux.HandleFunc("/", notFound)
	if opt.Routes != nil {
		opt.Routes(g.mux, func(r *http.Request) string {
			client, _ := g.remoteAddr(r)
			return client
		})
	}
	return g
}

// ServeHTTP adds the request id and turns a panic into a JSON 500 (the server keeps running).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if !telemetry.ValidRequestID(id) {
		id = telemetry.NewRequestID()
	}
	w.Header().Set("X-Request-Id", id)
	ctx := telemetry.WithRequestID(r.Context(), id)
	defer func() {
		if p := recover(); p != nil {
			g.log.ErrorContext(ctx, "panic in HTTP handler", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": "internal error"})
		}
	}()
	g.mux.ServeHTTP(w, r.WithContext(ctx))
}

func (g *Gateway) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	status := map[string]string{}
	ready := true
	names := make([]string, 0, len(g.c.Health))
	for n := range g.c.Health {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		hc := g.c.Health[n]
		resp, err := hc.Client.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: hc.Service})
		if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
			status[n] = "not serving"
			ready = false
			continue
		}
		status[n] = "serving"
	}
	code := http.StatusOK
	if !ready {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"ready": ready, "services": status})
}
