package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/portcullis-dev/portcullis/internal/admin"
	"github.com/portcullis-dev/portcullis/internal/grpctls"
)

// startAdmin serves the admin API on admin.listen: the admin services the modules of this
// process registered (a.adminServices) and health, nothing else. Every call needs the admin
// bearer secret and, with internal_tls, an admin certificate.
// The REST API on admin.http_listen reaches the same services in process (startAdminHTTP).
func (a *App) startAdmin(ctx context.Context) error {
	addr := a.cfg.Admin.Listen
	if addr == "" && a.cfg.Admin.HTTPListen == "" {
		return nil
	}
	log := a.log.With("component", "admin")
	if len(a.adminServices) == 0 {
		a.log.Info("admin.listen is set but this process runs nothing the admin API manages: not listening", "addr", addr)
		return nil
	}
	secret, err := a.adminSecret()
	if err != nil {
		return err
	}
	auth := admin.NewAuth(secret, log)
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
		a.serveGRPC("admin", s, lis)
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
func (a *App) newAdminServer(auth *admin.Auth, useTLS bool, log *slog.Logger) (*grpc.Server, error) {
	opts, err := a.grpcServerOptions(admin.Rules(a.adminServices), useTLS, grpctls.RoleAdmin,
		[]grpc.UnaryServerInterceptor{auth.Unary()}, []grpc.StreamServerInterceptor{auth.Stream()}, log)
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer(opts...)
	admin.Register(s, a.adminServices)
	return s, nil
}

// startAdminHTTP serves the admin REST API on admin.http_listen. It is grpc-gateway in front
// of the admin gRPC server s, reached in-process over bufconn, so every REST call passes the
// same interceptors (bearer check, authorisation, audit log, metrics) as a gRPC call. Only the
// services this process runs are routed; the others answer 404 like any unknown path.
//
// With internal_tls the listener is HTTPS with this process's internal certificate and only
// callers presenting an admin certificate reach s (requireAdminCert); s is then a plaintext
// server that takes its callers to be the admin, so nothing else may reach it.
func (a *App) startAdminHTTP(ctx context.Context, s *grpc.Server, log *slog.Logger) error {
	addr := a.cfg.Admin.HTTPListen
	if addr == "" {
		return nil
	}
	inproc := bufconn.Listen(1 << 20)
	a.serveGRPC("admin-rest", s, inproc)
	conn, err := grpc.NewClient("passthrough:///admin-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	a.conns = append(a.conns, conn)
	h, err := admin.NewHTTPHandler(ctx, conn, a.adminServices, log)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if a.cfg.InternalTLS.Enabled() {
		if tlsConfig, err = a.cfg.InternalTLS.ServerTLS(); err != nil {
			return err
		}
		// The OpenAPI document is public, so a caller without a certificate must get as far
		// as the request; one that presents a certificate the CA did not sign is refused in
		// the handshake all the same.
		tlsConfig.ClientAuth = tls.VerifyClientCertIfGiven
		h = admin.RequireCert(h, a.cfg.InternalTLS.Domain(), log)
	}
	lis, err := a.listen("admin.http_listen", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, TLSConfig: tlsConfig, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	a.httpSrvs = append(a.httpSrvs, srv)
	if tlsConfig != nil {
		a.serve = append(a.serve, func() error { return httpServeErr(srv.ServeTLS(lis, "", "")) })
	} else {
		a.serve = append(a.serve, func() error { return httpServeErr(srv.Serve(lis)) })
	}
	a.AdminHTTPAddr = lis.Addr().String()
	a.log.Info("admin REST API listening", "addr", a.AdminHTTPAddr, "https", tlsConfig != nil)
	return nil
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
