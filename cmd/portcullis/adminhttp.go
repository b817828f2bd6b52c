package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	"github.com/portcullis-dev/portcullis/proto/portcullis/openapi"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// adminHTTPMaxBody bounds a request body: no admin call needs more than a few bytes.
const adminHTTPMaxBody = 64 << 10

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
	a.serveGRPC(s, inproc)
	conn, err := grpc.NewClient("passthrough:///admin-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	a.conns = append(a.conns, conn)
	h, err := newAdminHTTPHandler(ctx, conn, a.km != nil, a.sessions != nil, a.robots != nil, a.policy != nil, log)
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
		h = requireAdminCert(h, a.cfg.InternalTLS.Domain(), log)
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

// adminHTTPOpenAPIPath is the one route served without a credential.
const adminHTTPOpenAPIPath = "/v1/openapi.json"

// requireAdminCert lets through only requests whose verified client certificate names the
// admin role in trustDomain, under the same rules as the admin gRPC listener
// (grpctls.PeerFromTLS): 401 without one, 403 for another role. The OpenAPI document is the
// exception. Behind it the bearer secret is still checked, by the admin gRPC server.
func requireAdminCert(next http.Handler, trustDomain string, log *slog.Logger) http.Handler {
	audit := log.With("log_type", "audit")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == adminHTTPOpenAPIPath {
			next.ServeHTTP(w, r)
			return
		}
		p := grpctls.PeerFromTLS(r.TLS, trustDomain)
		if p.Verified && p.Role == grpctls.RoleAdmin {
			next.ServeHTTP(w, r)
			return
		}
		httpStatus, code, msg, reason := http.StatusForbidden, codes.PermissionDenied,
			"this client certificate may not call the admin API", "role not allowed for the admin API"
		if !p.Verified {
			httpStatus, code, msg, reason = http.StatusUnauthorized, codes.Unauthenticated,
				"an admin client certificate is required", "no verified client certificate"
		}
		audit.WarnContext(r.Context(), "admin REST call refused", "method", r.Method, "path", r.URL.Path,
			"peer", r.RemoteAddr, "identity", p.ID, "role", p.Role, "reason", reason)
		writeAdminHTTPError(w, httpStatus, code, msg)
	})
}

// newAdminHTTPHandler routes the admin REST API to conn. grpc-gateway forwards the
// Authorization header as gRPC metadata by default, which is all the admin server needs.
func newAdminHTTPHandler(ctx context.Context, conn *grpc.ClientConn, keys, sessions, robotAccounts, policy bool, log *slog.Logger) (http.Handler, error) {
	mux := runtime.NewServeMux(runtime.WithErrorHandler(adminHTTPError(log)),
		runtime.SetQueryParameterParser(strictQueryParser{}),
		// grpc-gateway's default JSON settings, except that an unknown field in a body is an
		// error: a typo such as "group" for "groups" would otherwise be dropped in silence.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		// grpc-gateway's default answers a wrong method 501 (Unimplemented); say 405.
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
			code := codes.NotFound
			switch httpStatus {
			case http.StatusMethodNotAllowed:
				code = codes.Unimplemented
			case http.StatusBadRequest:
				code = codes.InvalidArgument
			}
			writeAdminHTTPError(w, httpStatus, code, http.StatusText(httpStatus))
		}))
	if keys {
		if err := signerv1.RegisterKeyAdminServiceHandlerClient(ctx, mux, signerv1.NewKeyAdminServiceClient(conn)); err != nil {
			return nil, err
		}
	}
	if sessions {
		if err := authnv1.RegisterSessionAdminServiceHandlerClient(ctx, mux, authnv1.NewSessionAdminServiceClient(conn)); err != nil {
			return nil, err
		}
	}
	if robotAccounts {
		if err := authnv1.RegisterRobotAdminServiceHandlerClient(ctx, mux, authnv1.NewRobotAdminServiceClient(conn)); err != nil {
			return nil, err
		}
	}
	if policy {
		if err := authzv1.RegisterPolicyAdminServiceHandlerClient(ctx, mux, authzv1.NewPolicyAdminServiceClient(conn)); err != nil {
			return nil, err
		}
	}
	// The document describes the API, not its data: served without the credential so tools
	// can read it before they are given one.
	if err := mux.HandlePath(http.MethodGet, adminHTTPOpenAPIPath, func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Admin)
	}); err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > adminHTTPMaxBody {
			writeAdminHTTPError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "request body too large")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, adminHTTPMaxBody)
		}
		mux.ServeHTTP(w, r)
	}), nil
}

// strictQueryParser refuses query parameters the request message has no field for.
// grpc-gateway ignores them, so a typo such as ?user=alice for ?subject=alice would list
// every user's sessions instead of saying what is wrong.
type strictQueryParser struct{}

func (strictQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	fields := msg.ProtoReflect().Descriptor().Fields()
	for key := range values {
		name, _, _ := strings.Cut(key, ".")
		if fields.ByJSONName(name) == nil && fields.ByTextName(name) == nil {
			return fmt.Errorf("unknown query parameter %q", key)
		}
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, values, filter)
}

// adminHTTPError maps a gRPC status to HTTP (Unauthenticated 401, PermissionDenied 403, ...)
// with a JSON body. Only messages of client errors are passed on: the admin services and
// the bearer check word those for callers; anything else may carry internal text.
func adminHTTPError(log *slog.Logger) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeAdminHTTPError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "request body too large")
			return
		}
		st := status.Convert(err)
		httpStatus := runtime.HTTPStatusFromCode(st.Code())
		msg := st.Message()
		switch st.Code() {
		case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.Unauthenticated,
			codes.PermissionDenied, codes.FailedPrecondition, codes.OutOfRange, codes.Unimplemented:
		default:
			log.WarnContext(ctx, "admin REST call failed", "path", r.URL.Path, "code", st.Code().String(), "error", st.Message())
			msg = http.StatusText(httpStatus)
		}
		if st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied {
			// The admin server logged the refusal too, but it sees the in-process connection;
			// this line has the HTTP caller's address.
			log.WarnContext(ctx, "admin REST call refused", "log_type", "audit", "method", r.Method, "path", r.URL.Path,
				"peer", r.RemoteAddr, "code", st.Code().String())
		}
		if httpStatus == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="portcullis-admin"`)
		}
		writeAdminHTTPError(w, httpStatus, st.Code(), msg)
	}
}

// adminHTTPErrorBody is the JSON error of the admin REST API (grpc-gateway's shape: the gRPC
// code number and a message).
type adminHTTPErrorBody struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

func writeAdminHTTPError(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(adminHTTPErrorBody{Code: int32(code), Message: msg})
}
