package app

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
)

// warmPool runs the in-process channel's handlers on long-lived goroutines, whose stacks
// grow once. The caller's goroutine is warm on a kept-alive HTTP connection, but a new
// connection's is fresh, and OPA's evaluation and the signer would grow its stack by
// copying on every token. Handing a call over costs two goroutine switches and no
// allocation.
type warmPool struct {
	work chan *warmJob // buffered: a job for a worker finishing up waits for it
	idle atomic.Int32  // workers free to take a job
	jobs sync.Pool
	// mu keeps close from closing work under a caller sending on it: the gateway's HTTP
	// server may not have finished every request when the closers run.
	mu     sync.RWMutex
	closed bool
}

// warmJob is one handler call.
type warmJob struct {
	m     inprocMethod
	ctx   context.Context
	dec   func(any) error
	int   grpc.UnaryServerInterceptor
	reply any
	err   error
	done  chan struct{}
}

func newWarmPool(n int) *warmPool {
	p := &warmPool{work: make(chan *warmJob, n)}
	p.jobs.New = func() any { return &warmJob{done: make(chan struct{}, 1)} }
	p.idle.Store(int32(n))
	for range n {
		go func() {
			for j := range p.work {
				j.reply, j.err = j.m.handler(j.m.impl, j.ctx, j.dec, j.int)
				p.idle.Add(1) // before done, so the caller's next call finds this worker
				j.done <- struct{}{}
			}
		}()
	}
	return p
}

// call runs the handler on a worker and waits for it; on the caller's goroutine when every
// worker is busy, or p is nil or closed.
func (p *warmPool) call(m inprocMethod, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	if p == nil || !p.take() {
		return m.handler(m.impl, ctx, dec, interceptor)
	}
	j := p.jobs.Get().(*warmJob)
	j.m, j.ctx, j.dec, j.int = m, ctx, dec, interceptor
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		p.jobs.Put(j)
		return m.handler(m.impl, ctx, dec, interceptor)
	}
	p.work <- j // never blocks: a worker was idle, and work holds one job per worker
	p.mu.RUnlock()
	<-j.done
	reply, err := j.reply, j.err
	*j = warmJob{done: j.done}
	p.jobs.Put(j)
	return reply, err
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

// close lets the workers exit once their jobs are done; later calls run on their callers.
func (p *warmPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.work)
	}
}
