package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// seen is what a handler could observe of a call.
type seen struct {
	md        metadata.MD
	peerAddr  string
	security  credentials.SecurityLevel
	authType  string
	deadline  time.Duration // until the deadline when the handler ran; -1 without one
	requestID string
	method    string
	leaked    bool // the caller's context values reached the handler
	request   string
}

type callerKey struct{}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`)

// probeHealth answers Check as its request's Service says, and records what it saw.
type probeHealth struct {
	grpc_health_v1.UnimplementedHealthServer
	mu   sync.Mutex
	seen []seen
	// last is the request of the last call, kept to see the caller's copy was not shared.
	last *grpc_health_v1.HealthCheckRequest
}

func (p *probeHealth) Check(ctx context.Context, req *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	s := seen{deadline: -1, requestID: telemetry.RequestID(ctx), leaked: ctx.Value(callerKey{}) != nil,
		request: req.String()}
	s.md, _ = metadata.FromIncomingContext(ctx)
	if tp := s.md.Get("traceparent"); len(tp) == 1 && traceparentRE.MatchString(tp[0]) {
		s.md.Set("traceparent", "(a sampled span's)") // ids differ from call to call
	}
	s.method, _ = grpc.Method(ctx)
	if pr, ok := peer.FromContext(ctx); ok {
		s.peerAddr = pr.Addr.String()
		if ai, ok := pr.AuthInfo.(interface {
			GetCommonAuthInfo() credentials.CommonAuthInfo
		}); ok {
			s.security = ai.GetCommonAuthInfo().SecurityLevel
		}
		if pr.AuthInfo != nil {
			s.authType = pr.AuthInfo.AuthType()
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		s.deadline = time.Until(dl)
	}
	p.mu.Lock()
	p.seen = append(p.seen, s)
	p.last = req
	p.mu.Unlock()
	switch req.Service {
	case "ok":
		req.Service = "changed by the handler" // must not reach the caller's request
		return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
	case "status":
		st, _ := status.New(codes.ResourceExhausted, "locked for a while").WithDetails(&errdetails.ErrorInfo{Reason: "LOCKED", Domain: "test"})
		return nil, st.Err()
	case "plain":
		return nil, errors.New("disk on fire")
	case "wrapped":
		return nil, fmt.Errorf("looking: %w", status.Error(codes.NotFound, "nobody"))
	case "ctxerr":
		return nil, context.Canceled
	case "panic":
		panic("handler bug")
	case "wait":
		<-ctx.Done()
		// Not ctx.Err(): over gRPC that is Canceled or DeadlineExceeded, whichever of the
		// client's RST_STREAM and the server's own timer comes first.
		return nil, status.Error(codes.DeadlineExceeded, "gave up")
	case "header":
		_ = grpc.SetHeader(ctx, metadata.Pairs("h", "1"))
		_ = grpc.SetTrailer(ctx, metadata.Pairs("t", "2"))
		return &grpc_health_v1.HealthCheckResponse{}, nil
	}
	return nil, status.Error(codes.InvalidArgument, "unknown case")
}

// pathUnderTest is one way of calling the probe: real gRPC over bufconn or in-process.
type pathUnderTest struct {
	cc    grpc.ClientConnInterface
	probe *probeHealth
	reg   *prometheus.Registry
	spans *tracetest.SpanRecorder
	logs  *testutil.Buffer
}

// newPath builds a server and a client the way the App does (startServer, dial), with
// rules that let the gateway call Check only.
func newPath(t *testing.T, inproc bool) *pathUnderTest {
	t.Helper()
	p := &pathUnderTest{probe: &probeHealth{}, reg: prometheus.NewRegistry(), spans: tracetest.NewSpanRecorder(), logs: &testutil.Buffer{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(p.spans))
	prop := propagation.TraceContext{}
	serverStats := otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))
	clientStats := otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(prop))
	log := slog.New(slog.NewJSONHandler(p.logs, nil))
	rules := grpctls.Rules{"/grpc.health.v1.Health/Check": {grpctls.RoleGateway}}
	az := grpctls.NewAuthorizer(rules, grpctls.Fixed(grpctls.RoleGateway), log)
	chain := []grpc.UnaryServerInterceptor{telemetry.UnaryServerInterceptor(log, telemetry.NewGRPCMetrics(p.reg)), az.Unary()}
	if inproc {
		c := newInprocConn(inprocAuthority, []grpc.UnaryClientInterceptor{telemetry.UnaryClientInterceptor()}, clientStats, chain, serverStats)
		c.warm = newWarmPool(2) // as -target=all runs it
		t.Cleanup(c.warm.close)
		grpc_health_v1.RegisterHealthServer(c, p.probe)
		p.cc = c
		return p
	}
	s := grpc.NewServer(grpc.StatsHandler(serverStats), grpc.ChainUnaryInterceptor(chain...))
	grpc_health_v1.RegisterHealthServer(s, p.probe)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	cc, err := grpc.NewClient("passthrough:///"+inprocAuthority, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(telemetry.UnaryClientInterceptor()), grpc.WithStatsHandler(clientStats),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	p.cc = cc
	return p
}

// outcome is what a caller could observe of a call.
type outcome struct {
	code    codes.Code
	message string
	details string
	reply   string
	header  metadata.MD
	trailer metadata.MD
}

func call(p *pathUnderTest, ctx context.Context, method string, req *grpc_health_v1.HealthCheckRequest) outcome {
	var reply grpc_health_v1.HealthCheckResponse
	var header, trailer metadata.MD
	err := p.cc.Invoke(ctx, method, req, &reply, grpc.Header(&header), grpc.Trailer(&trailer))
	st := status.Convert(err)
	o := outcome{code: st.Code(), message: st.Message(), details: fmt.Sprint(st.Details()), reply: reply.String()}
	o.header, o.trailer = header, trailer
	return o
}

// TestInprocMatchesGRPC calls the same handler through the same interceptors over real gRPC
// (bufconn, as -target=all did) and through the in-process channel, and wants the same
// answers, the same view from inside the handler, the same metrics and the same spans.
func TestInprocMatchesGRPC(t *testing.T) {
	const check = "/grpc.health.v1.Health/Check"
	type tc struct {
		name, method, service string
		timeout               time.Duration // 0: no deadline
		cancelled             bool
	}
	cases := []tc{
		{name: "ok", method: check, service: "ok", timeout: 5 * time.Second},
		{name: "no deadline", method: check, service: "ok"},
		{name: "status with details", method: check, service: "status"},
		{name: "plain error is Unknown", method: check, service: "plain"},
		{name: "wrapped status", method: check, service: "wrapped"},
		{name: "context error returned", method: check, service: "ctxerr"},
		{name: "panic is Internal", method: check, service: "panic"},
		// Long enough for a loaded machine to start the handler before the deadline passes.
		{name: "deadline passes in the handler", method: check, service: "wait", timeout: time.Second},
		{name: "header and trailer", method: check, service: "header"},
		{name: "caller already cancelled", method: check, service: "ok", cancelled: true},
		{name: "request does not marshal", method: check, service: "not \xffUTF-8"},
		{name: "role may not call the method", method: "/grpc.health.v1.Health/List"},
		{name: "unknown method", method: "/grpc.health.v1.Health/Nope"},
		{name: "unknown service", method: "/no.Such/Thing"},
		{name: "malformed method", method: "nothing"},
	}
	paths := map[bool]*pathUnderTest{false: newPath(t, false), true: newPath(t, true)}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out [2]outcome
			var saw [2][]seen
			for i, inproc := range []bool{false, true} {
				p := paths[inproc]
				ctx := telemetry.WithRequestID(context.WithValue(context.Background(), callerKey{}, "x"), "0123456789abcdef")
				ctx = metadata.AppendToOutgoingContext(ctx, "x-caller", "v", "x-bin", "\x00\x01")
				var cancel context.CancelFunc = func() {}
				if c.timeout > 0 {
					ctx, cancel = context.WithTimeout(ctx, c.timeout)
				}
				if c.cancelled {
					ctx, cancel = context.WithCancel(ctx)
					cancel()
				}
				n := len(p.probe.seen)
				req := &grpc_health_v1.HealthCheckRequest{Service: c.service}
				out[i] = call(p, ctx, c.method, req)
				cancel()
				if req.Service != c.service {
					t.Errorf("inproc=%v: the handler changed the caller's request", inproc)
				}
				p.probe.mu.Lock()
				saw[i] = slices.Clone(p.probe.seen[n:])
				if p.probe.last == req {
					t.Errorf("inproc=%v: the handler got the caller's request itself", inproc)
				}
				p.probe.mu.Unlock()
			}
			if c.service == "wait" {
				// Over gRPC the caller's deadline, the server's RST_STREAM or the handler's
				// status (the server's timer fired first) may come first: only the code is
				// certain.
				out[0].message, out[1].message = "", ""
				out[0].trailer, out[1].trailer = nil, nil
			}
			if fmt.Sprint(out[0]) != fmt.Sprint(out[1]) {
				t.Errorf("answers differ:\n gRPC:    %+v\n inproc:  %+v", out[0], out[1])
			}
			if len(saw[0]) != len(saw[1]) {
				t.Fatalf("handler ran %d times over gRPC, %d in-process", len(saw[0]), len(saw[1]))
			}
			for i := range saw[0] {
				g, in := saw[0][i], saw[1][i]
				// Both deadlines are the caller's, seen a moment later.
				if (g.deadline < 0) != (in.deadline < 0) || (g.deadline >= 0 && absDur(g.deadline-in.deadline) > time.Second) {
					t.Errorf("deadline: gRPC %v, inproc %v", g.deadline, in.deadline)
				}
				if g.peerAddr != "bufconn" || in.peerAddr != "in-process" {
					t.Errorf("peer addresses %q, %q", g.peerAddr, in.peerAddr)
				}
				g.deadline, in.deadline, g.peerAddr, in.peerAddr = 0, 0, "", ""
				if fmt.Sprint(g) != fmt.Sprint(in) {
					t.Errorf("the handler saw\n gRPC:   %+v\n inproc: %+v", g, in)
				}
				if g.leaked || g.requestID != "0123456789abcdef" || g.md.Get("x-caller")[0] != "v" {
					t.Errorf("gRPC handler saw %+v", g)
				}
			}
		})
	}

	// A server records a call's metrics, span and log line after its client has the answer:
	// the comparisons wait for the two paths to agree, and report the difference if they
	// still do not after settleWithin.
	t.Run("metrics", func(t *testing.T) {
		testutil.WaitFor(t, settleWithin, settleEvery, "the metrics to agree", func() error {
			if g, in := gathered(t, paths[false].reg), gathered(t, paths[true].reg); g != in {
				return fmt.Errorf("metrics differ:\n gRPC:   %s\n inproc: %s", g, in)
			}
			return nil
		})
	})
	t.Run("spans", func(t *testing.T) {
		// A call the server refuses before any handler (unknown or malformed method)
		// sometimes leaves grpc-go's client span OK (its stats End races the status); the
		// in-process one always records the status the caller got.
		refused := func(s string) bool {
			return strings.HasPrefix(s, "grpc.health.v1.Health/Nope ") || strings.HasPrefix(s, "no.Such/") || strings.HasPrefix(s, "nothing ")
		}
		testutil.WaitFor(t, settleWithin, settleEvery, "the spans to agree", func() error {
			g := slices.DeleteFunc(spanShapes(paths[false].spans), refused)
			in := slices.DeleteFunc(spanShapes(paths[true].spans), refused)
			if !slices.Equal(g, in) {
				return fmt.Errorf("spans differ:\n only gRPC:   %q\n only inproc: %q", missing(g, in), missing(in, g))
			}
			return nil
		})
		for _, s := range spanShapes(paths[true].spans) {
			if refused(s) && (!strings.Contains(s, " client Error ") || !strings.Contains(s, "rpc.response.status_code=UNIMPLEMENTED")) {
				t.Errorf("in-process span of a refused call: %s", s)
			}
		}
	})
	t.Run("logs", func(t *testing.T) {
		testutil.WaitFor(t, settleWithin, settleEvery, "the log lines to agree", func() error {
			if g, in := logMessages(paths[false].logs), logMessages(paths[true].logs); !slices.Equal(g, in) {
				return fmt.Errorf("log lines differ:\n gRPC:   %q\n inproc: %q", g, in)
			}
			return nil
		})
	})
}

// How long and how often the comparisons poll what a server records after its client
// returned.
const (
	settleWithin = 10 * time.Second
	settleEvery  = 10 * time.Millisecond
)

func TestInprocNoStreams(t *testing.T) {
	c := newInprocConn(inprocAuthority, nil, nil, nil, nil)
	grpc_health_v1.RegisterHealthServer(c, &probeHealth{})
	_, err := grpc_health_v1.NewHealthClient(c).Watch(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Watch: %v", err)
	}
}

// missing is what of a is not in b, as many times as it is missing.
func missing(a, b []string) []string {
	b = slices.Clone(b)
	var out []string
	for _, x := range a {
		if i := slices.Index(b, x); i >= 0 {
			b = slices.Delete(b, i, i+1)
		} else {
			out = append(out, x)
		}
	}
	return out
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// gathered is the gRPC handled counters with their labels and values (latency buckets vary).
func gathered(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = float64(h.GetSampleCount())
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// spanShapes describes the ended spans without their ids and times: name, kind, status, the
// attributes but the address (bufconn or in-process), whether a server span is the child of
// the client span before it.
func spanShapes(sr *tracetest.SpanRecorder) []string {
	spans := sr.Ended()
	byID := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID().String()] = s
	}
	var out []string
	for _, s := range spans {
		var attrs []string
		for _, a := range s.Attributes() {
			if a.Key == attribute.Key("server.address") || a.Key == attribute.Key("server.port") {
				continue
			}
			attrs = append(attrs, string(a.Key)+"="+a.Value.Emit())
		}
		slices.Sort(attrs)
		parent := "root"
		if p, ok := byID[s.Parent().SpanID().String()]; ok {
			parent = "child of " + p.Name() + " " + p.SpanKind().String()
		}
		desc := s.Status().Description
		if s.SpanKind().String() == "client" && (desc == "stream terminated by RST_STREAM with error code: CANCEL" || desc == "gave up") {
			desc = context.DeadlineExceeded.Error() // gRPC's own race (see "wait")
		}
		out = append(out, fmt.Sprintf("%s %s %s %q %v %s", s.Name(), s.SpanKind(), s.Status().Code, desc, attrs, parent))
	}
	slices.Sort(out)
	return out
}

// logMessages are the messages and levels logged, in order.
func logMessages(b *testutil.Buffer) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		i, j := strings.Index(line, `"level"`), strings.Index(line, `"msg"`)
		k := strings.Index(line[j:], `",`)
		out = append(out, line[i:j]+line[j:j+k])
	}
	return out
}
