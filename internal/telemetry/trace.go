package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// TracingConfig turns on OpenTelemetry tracing: spans for every token request, through the
// gRPC calls between the services, to Vault, exported over OTLP/gRPC. Off when OTLPEndpoint
// is empty (the default).
type TracingConfig struct {
	// OTLPEndpoint is the collector's OTLP/gRPC address, host:port.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// Insecure sends without TLS (a collector on the same host or pod).
	Insecure bool `yaml:"insecure"`
	// SampleRatio of the traces started here (default 1); a caller's sampled flag is kept.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName defaults to portcullis-<target>.
	ServiceName string `yaml:"service_name"`
	// Timeout bounds one export (default 10s).
	Timeout config.Duration `yaml:"timeout"`
}

// Enabled says whether tracing is on.
func (c TracingConfig) Enabled() bool { return c.OTLPEndpoint != "" }

// Validate reports every problem.
func (c TracingConfig) Validate() []error {
	var errs []error
	if c.OTLPEndpoint != "" {
		if _, _, err := net.SplitHostPort(c.OTLPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("otlp_endpoint %q is not host:port", c.OTLPEndpoint))
		}
	}
	if c.SampleRatio != nil && (*c.SampleRatio < 0 || *c.SampleRatio > 1) {
		errs = append(errs, errors.New("sample_ratio must be between 0 and 1"))
	}
	if c.Timeout.D() < 0 {
		errs = append(errs, errors.New("timeout must be positive"))
	}
	return errs
}

// Tracing is the process's tracer provider and the instrumentation built on it; the zero
// value (tracing off) instruments nothing.
type Tracing struct {
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
}

// NewTracing starts the exporter when c is enabled.
func NewTracing(ctx context.Context, c TracingConfig, defaultName string) (*Tracing, error) {
	if !c.Enabled() {
		return &Tracing{}, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(c.OTLPEndpoint)}
	if c.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	opts = append(opts, otlptracegrpc.WithTimeout(timeout))
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = defaultName
	}
	ratio := 1.0
	if c.SampleRatio != nil {
		ratio = *c.SampleRatio
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))),
	)
	return &Tracing{tp: tp, prop: propagation.TraceContext{}}, nil
}

// Enabled says whether spans are recorded.
func (t *Tracing) Enabled() bool { return t != nil && t.tp != nil }

// Shutdown flushes the spans not yet exported.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Tracer is a tracer for instrumentation scope name (a no-op one when tracing is off).
func (t *Tracing) Tracer(name string) trace.Tracer {
	if !t.Enabled() {
		return trace.NewNoopTracerProvider().Tracer(name)
	}
	return t.tp.Tracer(name)
}

// ServerStatsHandler traces gRPC calls served, continuing the caller's trace; nil when off.
func (t *Tracing) ServerStatsHandler() stats.Handler {
	if !t.Enabled() {
		return nil
	}
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop))
}

// ServerOptions are the gRPC server options tracing needs (none when off).
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if h := t.ServerStatsHandler(); h != nil {
		return []grpc.ServerOption{grpc.StatsHandler(h)}
	}
	return nil
}

// ClientStatsHandler traces gRPC calls made, passing the trace on; nil when off.
func (t *Tracing) ClientStatsHandler() stats.Handler {
	if !t.Enabled() {
		return nil
	}
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop))
}

// DialOptions are the gRPC client options tracing needs (none when off).
func (t *Tracing) DialOptions() []grpc.DialOption {
	if h := t.ClientStatsHandler(); h != nil {
		return []grpc.DialOption{grpc.WithStatsHandler(h)}
	}
	return nil
}

// HTTPHandler traces requests served by h (h itself when off). Incoming trace context is
// ignored: a token request is where a trace starts, and an outside caller must not be able
// to join the server's spans to its own trace or force sampling.
func (t *Tracing) HTTPHandler(h http.Handler, operation string) http.Handler {
	if !t.Enabled() {
		return h
	}
	return otelhttp.NewHandler(h, operation, otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

// HTTPTransport traces outgoing HTTP calls (Vault) and passes the trace on (rt itself when
// off).
func (t *Tracing) HTTPTransport(rt http.RoundTripper) http.RoundTripper {
	if !t.Enabled() {
		return rt
	}
	return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(t.tp), otelhttp.WithPropagators(t.prop))
}

// traceAttrs are the trace and span ids of ctx's span, for log lines.
func traceAttrs(ctx context.Context) []slog.Attr {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []slog.Attr{slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())}
}
