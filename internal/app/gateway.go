package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-dev/portcullis/gateway"
	"github.com/portcullis-dev/portcullis/gateway/pages"
	"github.com/portcullis-dev/portcullis/internal/tlsreload"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
)

// startGateway serves the token protocol on gateway.listen (HTTPS with gateway.tls) and, on
// gateway.metrics_listen, the process's metrics. With this process's services running
// (-target=all) it reaches them in-process.
func (a *App) startGateway(context.Context) error {
	g := a.cfg.Gateway
	proxies, errs := parsePrefixes(g.TrustedProxies)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// In one process a single channel reaches all three services.
	conns := map[string]grpc.ClientConnInterface{}
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
	clients := gateway.Clients{
		Authn:  authnv1.NewAuthnServiceClient(conns["authn"]),
		Authz:  authzv1.NewAuthzServiceClient(conns["authz"]),
		Signer: signerv1.NewSignerServiceClient(conns["signer"]),
		Health: health,
	}
	if a.cfg.Sessions.On() {
		// The device flow (portcullis login) answers with a session, so it is on with them;
		// so is the account service its approval page and back-channel logout use.
		clients.Device = authnv1.NewDeviceAuthorizationServiceClient(conns["authn"])
		clients.Account = authnv1.NewAccountServiceClient(conns["authn"])
	}
	gw := gateway.New(gateway.Options{
		Realm: g.Realm, Services: slices.Clone(g.Services), TokenTTL: g.TokenTTL.D(),
		MaxQueryBytes: g.MaxQueryBytes, BackendTimeout: g.BackendTimeout.D(), PublicURL: a.PublicURL,
		TrustedProxies: proxies, RefuseAnonymous: !a.cfg.Authn.AnonymousAllowed(),
		Routes: a.pageRoutes(clients.Account),
	}, clients, a.log.With("component", "gateway"), a.reg)
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

// pagesMinTimeout is the least the pages' calls to authn may take: some wait for the IdP.
const pagesMinTimeout = 15 * time.Second

// pageRoutes mounts the account pages (sign-in, the device approval page that `portcullis
// login` sends people to, sessions and tokens) on the gateway; nil, and none, without the
// AccountService they call (sessions off).
func (a *App) pageRoutes(acct authnv1.AccountServiceClient) func(*http.ServeMux, func(*http.Request) string) {
	if acct == nil {
		return nil
	}
	return func(mux *http.ServeMux, clientAddr func(*http.Request) string) {
		pages.New(pages.Options{
			PublicURL: a.PublicURL,
			SSO:       a.cfg.SSO.On(),
			// The sso: section names no display name yet: the pages say "your identity provider".
			Password:   slices.ContainsFunc(a.cfg.Authn.Backends, passwordBackend),
			ClientAddr: clientAddr,
			// Not backend_timeout alone (2s by default, for the token endpoint's hot path):
			// a sign-in's CompleteSignIn waits for the IdP (its token endpoint, discovery and
			// keys, each allowed 10s by package sso), and the page gave up before it answered.
			Timeout: max(a.cfg.Gateway.BackendTimeout.D(), pagesMinTimeout),
			Logger:  a.log.With("component", "pages"),
		}, acct).Register(mux)
	}
}

// passwordBackend says whether b's people sign in with a password (AccountService.
// PasswordSignIn); robots, workload tokens and PATs cannot sign in.
func passwordBackend(b backend.Spec) bool {
	switch b.Type {
	case "htpasswd", "static", "ldap":
		return true
	}
	return false
}
