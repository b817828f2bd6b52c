package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/portcullis-dev/portcullis/internal/telemetry"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// otlpReceiver is an in-process OTLP/gRPC trace collector that keeps what it is sent.
type otlpReceiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startOTLPReceiver(t *testing.T) (*otlpReceiver, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{}
	s := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(s, r)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return r, lis.Addr().String()
}

// TestTracingSpanTree runs the all-in-one process with tracing on, sends one token request
// and checks the spans the receiver got: the gateway's server span as the root, and under it,
// for authn, authz and the signer, a client span with the service's server span under that —
// one trace across the gRPC hops — and the trace id in the request's log lines.
func TestTracingSpanTree(t *testing.T) {
	recv, addr := startOTLPReceiver(t)
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Tracing = telemetry.TracingConfig{OTLPEndpoint: addr, Insecure: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs testutil.Buffer
	a := app.New(cfg, telemetry.NewLogger(&logs, slog.LevelInfo))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, "all") }()
	select {
	case <-a.Ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("did not start")
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
	req.SetBasicAuth("alice", "alice")
	// A caller's traceparent is not joined: the trace starts at the gateway.
	req.Header.Set("traceparent", "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d", resp.StatusCode)
	}
	cancel() // shutdown flushes the spans
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	recv.mu.Lock()
	spans := recv.spans
	recv.mu.Unlock()
	byID := map[string]*tracepb.Span{}
	var root *tracepb.Span
	for _, s := range spans {
		byID[hex.EncodeToString(s.GetSpanId())] = s
		if s.GetName() == "GET /token" && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no gateway server span GET /token among %d spans: %v", len(spans), spanNames(spans))
	}
	if len(root.GetParentSpanId()) != 0 || hex.EncodeToString(root.GetTraceId()) == "0123456789abcdef0123456789abcdef" {
		t.Errorf("the gateway span continues the caller's trace (parent %x, trace %x)", root.GetParentSpanId(), root.GetTraceId())
	}
	trace := hex.EncodeToString(root.GetTraceId())
	for _, svc := range []string{"portcullis.authn.v1.AuthnService/Authenticate", "portcullis.authz.v1.AuthzService/Authorize", "portcullis.signer.v1.SignerService/SignToken"} {
		var client, server *tracepb.Span
		for _, s := range spans {
			if s.GetName() != svc || hex.EncodeToString(s.GetTraceId()) != trace {
				continue
			}
			switch s.GetKind() {
			case tracepb.Span_SPAN_KIND_CLIENT:
				client = s
			case tracepb.Span_SPAN_KIND_SERVER:
				server = s
			}
		}
		switch {
		case client == nil || server == nil:
			t.Errorf("%s: client %v, server %v spans in the trace; spans: %v", svc, client != nil, server != nil, spanNames(spans))
		case !descends(byID, client, root):
			t.Errorf("%s: the client span is not under the gateway's", svc)
		case hex.EncodeToString(server.GetParentSpanId()) != hex.EncodeToString(client.GetSpanId()):
			t.Errorf("%s: the server span's parent is %x, not the client span %x", svc, server.GetParentSpanId(), client.GetSpanId())
		}
	}
	// The audit line of that request carries the trace id.
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["log_type"] == "audit" && rec["trace_id"] == trace {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit log line with trace_id %s:\n%s", trace, logs.String())
	}
}

func descends(byID map[string]*tracepb.Span, s, ancestor *tracepb.Span) bool {
	for depth := 0; s != nil && depth < 10; depth++ {
		parent := hex.EncodeToString(s.GetParentSpanId())
		if parent == hex.EncodeToString(ancestor.GetSpanId()) {
			return true
		}
		s = byID[parent]
	}
	return false
}

func spanNames(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.GetName()+"("+s.GetKind().String()+")")
	}
	return out
}

// Tracing off (the default) adds no span and no trace id.
func TestTracingOffByDefault(t *testing.T) {
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tracing.Enabled() {
		t.Fatal("tracing is on by default")
	}
	var logs testutil.Buffer
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := apptest.StartApp(t, app.New(cfg, telemetry.NewLogger(&logs, slog.LevelInfo)), "all")
	apptest.TokenAndVerify(t, a.GatewayAddr)
	if strings.Contains(logs.String(), "trace_id") {
		t.Errorf("trace ids logged with tracing off:\n%s", logs.String())
	}
}
