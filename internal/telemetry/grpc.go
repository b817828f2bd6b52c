package telemetry

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
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
	// byMethod caches each method's instruments: WithLabelValues hashes the labels and
	// locks the vector on every call.
	mu       sync.RWMutex
	byMethod map[string]*methodInstruments
}

// methodInstruments are one method's series. A code's counter is made on its first use, as
// WithLabelValues makes it, so no series appears before a call ends with that code.
type methodInstruments struct {
	svc, method string
	latency     prometheus.Observer
	handled     [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter]
}

// instruments returns fullMethod's cached instruments.
func (m *GRPCMetrics) instruments(fullMethod string) *methodInstruments {
	m.mu.RLock()
	mi := m.byMethod[fullMethod]
	m.mu.RUnlock()
	if mi != nil {
		return mi
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if mi = m.byMethod[fullMethod]; mi == nil {
		svc, method := splitMethod(fullMethod)
		mi = &methodInstruments{svc: svc, method: method, latency: m.latency.WithLabelValues(svc, method)}
		if m.byMethod == nil {
			m.byMethod = map[string]*methodInstruments{}
		}
		m.byMethod[fullMethod] = mi
	}
	return mi
}

// counter returns the handled counter for code.
func (m *GRPCMetrics) counter(mi *methodInstruments, code codes.Code) prometheus.Counter {
	if int(code) >= len(mi.handled) {
		return m.handled.WithLabelValues(mi.svc, mi.method, code.String())
	}
	if c := mi.handled[code].Load(); c != nil {
		return *c
	}
	c := m.handled.WithLabelValues(mi.svc, mi.method, code.String())
	mi.handled[code].Store(&c)
	return c
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
		// Only the one key: FromIncomingContext would copy all the metadata.
		if v := metadata.ValueFromIncomingContext(ctx, MetadataKey); len(v) > 0 && ValidRequestID(v[0]) {
			ctx = WithRequestID(ctx, v[0])
		}
		start := time.Now()
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in gRPC handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
			code := status.Code(err)
			if m != nil {
				mi := m.instruments(info.FullMethod)
				m.counter(mi, code).Inc()
				mi.latency.Observe(time.Since(start).Seconds())
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
