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
