package telemetry

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// GRPCMetrics are the per-method server instruments.
type GRPCMetrics struct {
	handled *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewGRPCMetrics registers the instruments on reg.
func NewGRPCMetrics(reg prometheus.Registerer) *GRPCMetrics {
	m := &GRPCMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_grpc_server_handled_total",
			Help: "gRPC calls handled, by service, method and status code.",
		}, []string{"service", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portcullis_grpc_server_handling_seconds",
			Help:    "gRPC handling latency by service and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"service", "method"}),
	}
	reg.MustRegister(m.handled, m.latency)
	return m
}

// UnaryServerInterceptor picks up the caller's request id, turns a panic into Internal
// (the process keeps serving), logs failures and records metrics.
func UnaryServerInterceptor(log *slog.Logger, m *GRPCMetrics) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(MetadataKey); len(v) > 0 && ValidRequestID(v[0]) {
				ctx = WithRequestID(ctx, v[0])
			}
		}
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in gRPC handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
			code := status.Code(err)
			svc, method := splitMethod(info.FullMethod)
			if m != nil {
				m.handled.WithLabelValues(svc, method, code.String()).Inc()
				m.latency.WithLabelValues(svc, method).Observe(time.Since(start).Seconds())
			}
			if code == codes.Internal || code == codes.Unknown {
				log.ErrorContext(ctx, "gRPC call failed", "method", info.FullMethod, "code", code.String())
			}
		}()
		return handler(ctx, req)
	}
}

// UnaryClientInterceptor forwards the request id so every service's logs line up.
func UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if id := RequestID(ctx); id != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, MetadataKey, id)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
