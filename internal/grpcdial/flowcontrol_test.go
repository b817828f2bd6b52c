package grpcdial

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// TestFlowControlNoPings counts the PING frames on a connection carrying unary calls: with
// ServerFlowControl and ClientFlowControl there are none in either direction, where gRPC's
// bandwidth-delay estimator (the default, the control case) sends them with the calls.
func TestFlowControlNoPings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fixed bool
	}{
		{"gRPC defaults", false},
		{"fixed windows", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sopts []grpc.ServerOption
			var copts []grpc.DialOption
			if tc.fixed {
				sopts, copts = ServerFlowControl(), ClientFlowControl()
			}
			toServer, toClient := countPings(t, sopts, copts, 50)
			t.Logf("50 calls: %d PINGs to the server, %d to the client", toServer, toClient)
			if tc.fixed && toServer+toClient != 0 {
				t.Errorf("%d PINGs to the server and %d to the client, want none", toServer, toClient)
			}
			if !tc.fixed && toServer+toClient == 0 {
				t.Error("no PINGs with gRPC's defaults: the test no longer sees what it looks for")
			}
		})
	}
}

// countPings makes calls health checks over one connection and returns the PING frames
// (acks excepted) the client sent and received.
func countPings(t *testing.T, sopts []grpc.ServerOption, copts []grpc.DialOption, calls int) (toServer, toClient int64) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(sopts...)
	grpc_health_v1.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	var sent, received atomic.Int64
	var framers []chan struct{}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		// The client's bytes start with the 24-byte connection preface, the server's with
		// its SETTINGS frame.
		out, in := newFrameCounter(&sent, len(http2.ClientPreface)), newFrameCounter(&received, 0)
		framers = append(framers, out.done, in.done)
		return &tappedConn{Conn: c, out: out, in: in}, nil
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dial)}, copts...)
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	client := grpc_health_v1.NewHealthClient(cc)
	for range calls {
		if _, err := client.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	cc.Close()
	srv.Stop()
	for _, done := range framers {
		<-done
	}
	return sent.Load(), received.Load()
}

// frameCounter parses one direction of an HTTP/2 connection and counts its PING frames.
type frameCounter struct {
	w    *io.PipeWriter
	done chan struct{}
}

func newFrameCounter(pings *atomic.Int64, skip int) *frameCounter {
	r, w := io.Pipe()
	f := &frameCounter{w: w, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer r.Close()
		if _, err := io.CopyN(io.Discard, r, int64(skip)); err != nil {
			return
		}
		fr := http2.NewFramer(nil, r)
		for {
			frame, err := fr.ReadFrame()
			if err != nil {
				var se http2.StreamError
				if errors.As(err, &se) {
					continue
				}
				_, _ = io.Copy(io.Discard, r)
				return
			}
			if p, ok := frame.(*http2.PingFrame); ok && !p.IsAck() {
				pings.Add(1)
			}
		}
	}()
	return f
}

// tappedConn copies what crosses the connection to the two counters.
type tappedConn struct {
	net.Conn
	out, in *frameCounter
	closed  atomic.Bool
}

func (c *tappedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	_, _ = c.out.w.Write(b[:n])
	return n, err
}

func (c *tappedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	_, _ = c.in.w.Write(b[:n])
	return n, err
}

func (c *tappedConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.out.w.Close()
		c.in.w.Close()
	}
	return err
}
