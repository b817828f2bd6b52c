package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/proto/portcullis/openapi"
)

// maxBody bounds a request body: no admin call needs more than a few bytes.
const maxBody = 64 << 10

// OpenAPIPath is the one route served without a credential.
const OpenAPIPath = "/v1/openapi.json"

// RequireCert lets through only requests whose verified client certificate names the
// admin role in trustDomain, under the same rules as the admin gRPC listener
// (grpctls.PeerFromTLS): 401 without one, 403 for another role. The OpenAPI document is the
// exception. Behind it the bearer secret is still checked, by the admin gRPC server.
func RequireCert(next http.Handler, trustDomain string, log *slog.Logger) http.Handler {
	audit := log.With("log_type", "audit")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == OpenAPIPath {
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
		writeError(w, httpStatus, code, msg)
	})
}

// NewHTTPHandler routes the REST form of services to conn, an admin gRPC server holding
// them: every REST call passes the same interceptors (bearer check, authorisation, audit log,
// metrics) as a gRPC call. The services a process does not run answer 404 like any unknown
// path. grpc-gateway forwards the Authorization header as gRPC metadata by default, which is
// all the admin server needs.
func NewHTTPHandler(ctx context.Context, conn *grpc.ClientConn, services []Service, log *slog.Logger) (http.Handler, error) {
	mux := runtime.NewServeMux(runtime.WithErrorHandler(httpError(log)),
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
			writeError(w, httpStatus, code, http.StatusText(httpStatus))
		}))
	for _, as := range services {
		if err := as.REST(ctx, mux, conn); err != nil {
			return nil, err
		}
	}
	// The document describes the API, not its data: served without the credential so tools
	// can read it before they are given one.
	if err := mux.HandlePath(http.MethodGet, OpenAPIPath, func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Admin)
	}); err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "request body too large")
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
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

// httpError maps a gRPC status to HTTP (Unauthenticated 401, PermissionDenied 403, ...)
// with a JSON body. Only messages of client errors are passed on: the admin services and
// the bearer check word those for callers; anything else may carry internal text.
func httpError(log *slog.Logger) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "request body too large")
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
		writeError(w, httpStatus, st.Code(), msg)
	}
}

// ErrorBody is the JSON error of the admin REST API (grpc-gateway's shape: the gRPC
// code number and a message).
type ErrorBody struct {
	Code    int32  `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, httpStatus int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(ErrorBody{Code: int32(code), Message: msg})
}
