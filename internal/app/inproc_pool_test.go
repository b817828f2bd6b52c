package app

import (
	"bytes"
	"context"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// goid is the calling goroutine's id, from its stack trace's first line.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	return string(bytes.Fields(b)[1])
}

// whereHealth's Check reports the goroutine it ran on. A call that finds a gate queued
// tells started and waits for the gate to open, whatever its context says: like a handler
// deep in bcrypt.
type whereHealth struct {
	grpc_health_v1.UnimplementedHealthServer
	ran     chan string
	gates   chan chan struct{}
	started chan struct{}
}

func (h *whereHealth) Check(context.Context, *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	select {
	case gate := <-h.gates:
		h.started <- struct{}{}
		<-gate
	default:
	}
	h.ran <- goid()
	return &grpc_health_v1.HealthCheckResponse{}, nil
}

// hold has the next call wait for the gate returned.
func (h *whereHealth) hold() chan struct{} {
	gate := make(chan struct{})
	h.gates <- gate
	return gate
}

func newWhere(t *testing.T, workers int) (*inprocConn, *whereHealth) {
	t.Helper()
	c := newInprocConn(inprocAuthority, nil, nil, nil, nil)
	if workers > 0 {
		c.warm = newWarmPool(workers)
		t.Cleanup(c.warm.close)
	}
	h := &whereHealth{ran: make(chan string, 100), gates: make(chan chan struct{}, 1), started: make(chan struct{}, 1)}
	grpc_health_v1.RegisterHealthServer(c, h)
	return c, h
}

func check(c *inprocConn, ctx context.Context) error {
	_, err := grpc_health_v1.NewHealthClient(c).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
	return err
}

func TestWarmPool(t *testing.T) {
	t.Run("a worker, the same one call after call", func(t *testing.T) {
		c, h := newWhere(t, 1)
		me := goid()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var first string
		for i := range 100 {
			if err := check(c, ctx); err != nil {
				t.Fatal(err)
			}
			g := <-h.ran
			if i == 0 {
				first = g
			}
			if g != first || g == me {
				t.Fatalf("call %d ran on goroutine %s, the first on %s; caller %s", i, g, first, me)
			}
		}
	})
	t.Run("every worker busy: a goroutine of its own, or the caller without a deadline", func(t *testing.T) {
		c, h := newWhere(t, 1)
		me := goid()
		gate := h.hold()
		busy := make(chan error)
		go func() { busy <- check(c, context.Background()) }()
		<-h.started
		if err := check(c, context.Background()); err != nil {
			t.Fatal(err)
		}
		if g := <-h.ran; g != me {
			t.Errorf("without a deadline: ran on goroutine %s, not the caller's %s", g, me)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := check(c, ctx); err != nil {
			t.Fatal(err)
		}
		if g := <-h.ran; g == me {
			t.Errorf("with a deadline: ran on the caller")
		}
		close(gate)
		if err := <-busy; err != nil {
			t.Error(err)
		}
		<-h.ran
	})
	t.Run("the caller leaves at its deadline, the handler runs on", func(t *testing.T) {
		for _, workers := range []int{1, 0} {
			c, h := newWhere(t, workers)
			gate := h.hold()
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			start := time.Now()
			err := check(c, ctx)
			cancel()
			if status.Code(err) != codes.DeadlineExceeded || time.Since(start) > 5*time.Second {
				t.Errorf("workers %d: %v after %v", workers, err, time.Since(start))
			}
			<-h.started
			close(gate)
			<-h.ran
		}
	})
	t.Run("closed: on the caller", func(t *testing.T) {
		c, h := newWhere(t, 2)
		me := goid()
		c.warm.close()
		if err := check(c, context.Background()); err != nil {
			t.Fatal(err)
		}
		if g := <-h.ran; g != me {
			t.Errorf("ran on goroutine %s, not the caller's %s", g, me)
		}
	})
}

func TestWarmPoolUnaryServerInterceptor(t *testing.T) {
	p := newWarmPool(1)
	t.Cleanup(p.close)
	intercept := p.UnaryServerInterceptor()
	me := goid()
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "the caller's")
	wantErr := status.Error(codes.PermissionDenied, "no")
	// where runs as a handler: it says where it ran, what it was given, and answers with an
	// error for "fail".
	var ranOn []string
	where := func(ctx context.Context, req any) (any, error) {
		ranOn = append(ranOn, goid())
		if ctx.Value(key{}) != "the caller's" {
			t.Error("the handler did not get the caller's context")
		}
		if req == "fail" {
			return nil, wantErr
		}
		return req.(string) + " answered", nil
	}
	for i := range 20 {
		resp, err := intercept(ctx, "call", nil, where)
		if err != nil || resp != "call answered" {
			t.Fatalf("call %d: %v, %v", i, resp, err)
		}
	}
	if _, err := intercept(ctx, "fail", nil, where); err != wantErr {
		t.Errorf("error %v, want the handler's own %v", err, wantErr)
	}
	for i, g := range ranOn {
		if g == me || g != ranOn[0] {
			t.Fatalf("call %d ran on goroutine %s, the first on %s; the caller is %s", i, g, ranOn[0], me)
		}
	}

	// Every worker busy: the caller's goroutine serves the call.
	gate, started := make(chan struct{}), make(chan struct{})
	busy := make(chan error)
	go func() {
		_, err := intercept(ctx, "hold", nil, func(context.Context, any) (any, error) {
			close(started)
			<-gate
			return nil, nil
		})
		busy <- err
	}()
	<-started
	ranOn = nil
	if resp, err := intercept(ctx, "call", nil, where); err != nil || resp != "call answered" {
		t.Fatalf("with the worker busy: %v, %v", resp, err)
	}
	if len(ranOn) != 1 || ranOn[0] != me {
		t.Errorf("with the worker busy the call ran on %v, not the caller's goroutine %s", ranOn, me)
	}
	close(gate)
	if err := <-busy; err != nil {
		t.Error(err)
	}

	// Closed: callers serve their own calls.
	p.close()
	ranOn = nil
	if _, err := intercept(ctx, "call", nil, where); err != nil || len(ranOn) != 1 || ranOn[0] != me {
		t.Errorf("after close: %v, ran on %v, want the caller's goroutine %s", err, ranOn, me)
	}
}
