package app

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
)

// warmPool serves the in-process channel's calls on long-lived goroutines, whose stacks
// grow once. The caller's goroutine is warm on a kept-alive HTTP connection, but a new
// connection's is fresh, and OPA's evaluation and the signer would grow its stack by
// copying on every token; and the caller must be free to leave at its deadline while the
// handler runs on, as a gRPC client does. Handing a call over costs two goroutine
// switches and no allocation.
//
// Split, a service's gRPC server hands its handlers to a pool too (UnaryServerInterceptor):
// gRPC's own stream workers are too few for a gateway's concurrent calls, and beyond them
// each call gets a fresh goroutine whose stack is grown by copying.
type warmPool struct {
	calls chan warmTask // buffered: a call for a worker finishing up waits for it
	idle  atomic.Int32  // workers free to take a call
	// unary holds the *warmUnary the interceptor hands over.
	unary sync.Pool
	// mu keeps close from closing calls under a caller sending on it: the gateway's HTTP
	// server may not have finished every request when the closers run.
	mu     sync.RWMutex
	closed bool
}

func newWarmPool(n int) *warmPool {
	p := &warmPool{calls: make(chan warmTask, n)}
	p.idle.Store(int32(n))
	for range n {
		go p.work()
	}
	return p
}

// workerFloor is stack a worker keeps in use while it waits. The collector halves the stack
// of a goroutine using less than a quarter of it, at every cycle, and with a heap of a few
// megabytes there are dozens of cycles a second: a worker that waited on a shallow stack has
// the stack OPA's evaluation or the signer grew taken back, and grows it again by copying on
// its next call. Stacks up to four times the floor are kept whole.
//
// Measured with perf under make bench's warm load, stack copying took, without the floor and
// with it: all-in-one 3.2 % and 1.8 % of the server's CPU (the rest is calls served off the
// pool); split (UnaryServerInterceptor), authz 10 % and 1.4 %, authn 3.8 % and 0.5 %, the
// signer 2.7 % and 0.3 %. It costs about 0.5 MB of stack at 64 connections.
const workerFloor = 32 << 10

// work runs a worker below a frame of workerFloor bytes, so that it waits deep in its stack.
//
//go:noinline
func (p *warmPool) work() {
	var floor [workerFloor]byte
	p.serve(&floor)
}

//go:noinline
func (p *warmPool) serve(floor *[workerFloor]byte) {
	floor[0] = 1 // used, so the frame is not optimised away
	for k := range p.calls {
		k.serve()
		p.idle.Add(1) // before finish, so the caller's next call finds this worker
		k.finish()
	}
}

// warmTask is a call a worker serves: serve runs it on the worker, finish hands the outcome
// over (a pointer, so that handing it over allocates nothing).
type warmTask interface {
	serve()
	finish()
}

// submit has a worker serve k, and says false when none is idle (or p is nil or closed).
func (p *warmPool) submit(k warmTask) bool {
	if p == nil || !p.take() {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.calls <- k // never blocks: a worker was idle, and calls holds one call per worker
	return true
}

// take claims an idle worker.
func (p *warmPool) take() bool {
	for {
		n := p.idle.Load()
		if n <= 0 {
			return false
		}
		if p.idle.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

// close lets the workers exit once their calls are served; later calls are served by
// their callers.
func (p *warmPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.calls)
	}
}

// UnaryServerInterceptor runs each handler on a worker, or on the caller's goroutine when
// none is idle. It is the innermost interceptor: the chain before it (metrics, request id,
// authorisation) runs where gRPC runs it, the handler's deep stack on a worker.
func (p *warmPool) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		t, _ := p.unary.Get().(*warmUnary)
		if t == nil {
			t = &warmUnary{done: make(chan struct{}, 1)}
		}
		t.ctx, t.req, t.handler = ctx, req, handler
		if p.submit(t) {
			<-t.done
			resp, err = t.resp, t.err
		} else {
			resp, err = handler(ctx, req)
		}
		*t = warmUnary{done: t.done}
		p.unary.Put(t)
		return resp, err
	}
}

// warmUnary is a gRPC server's handler call, served by a worker.
type warmUnary struct {
	ctx     context.Context
	req     any
	handler grpc.UnaryHandler
	resp    any
	err     error
	done    chan struct{} // buffered: finish never waits
}

func (t *warmUnary) serve()  { t.resp, t.err = t.handler(t.ctx, t.req) }
func (t *warmUnary) finish() { t.done <- struct{}{} }
