package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/proto/portcullis/openapi"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// adminHTTPMaxBody bounds a request body: no admin call needs more than a few bytes.
const adminHTTPMaxBody = 64 << 10

// startAdminHTTP serves the admin REST API on admin.http_listen. It is grpc-gateway in front
// of the admin gRPC server s, reached in-process over bufconn, so every REST call passes the
// same interceptors (bearer check, authorisation, audit log, metrics) as a gRPC call. Only the
// services this process runs are routed; the others answer 404 like any unknown path.
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
	h, err := newAdminHTTPHandler(ctx, conn, a.km != nil, a.sessions != nil, log)
	if err != nil {
		return err
	}
	lis, err := a.listen("admin.http_listen", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	a.httpSrvs = append(a.httpSrvs, srv)
	a.serve = append(a.serve, func() error { return httpServeErr(srv.Serve(lis)) })
	a.AdminHTTPAddr = lis.Addr().String()
	a.log.Info("admin REST API listening", "addr", a.AdminHTTPAddr)
	return nil
}

// newAdminHTTPHandler routes the admin REST API to conn. grpc-gateway forwards the
// Authorization header as gRPC metadata by default, which is all the admin server needs.
func newAdminHTTPHandler(ctx context.Context, conn *grpc.ClientConn, keys, sessions bool, log *slog.Logger) (http.Handler, error) {
	mux := runtime.NewServeMux(runtime.WithErrorHandler(adminHTTPError(log)),
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
	// The document describes the API, not its data: served without the credential so tools
	// can read it before they are given one.
	if err := mux.HandlePath(http.MethodGet, "/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
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
