package app

import (
	"sync"
	"sync/atomic"
)

// warmPool serves the in-process channel's calls on long-lived goroutines, whose stacks
// grow once. The caller's goroutine is warm on a kept-alive HTTP connection, but a new
// connection's is fresh, and OPA's evaluation and the signer would grow its stack by
// copying on every token; and the caller must be free to leave at its deadline while the
// handler runs on, as a gRPC client does. Handing a call over costs two goroutine
// switches and no allocation.
type warmPool struct {
	work chan *inprocCall // buffered: a call for a worker finishing up waits for it
	idle atomic.Int32     // workers free to take a call
	// mu keeps close from closing work under a caller sending on it: the gateway's HTTP
	// server may not have finished every request when the closers run.
	mu     sync.RWMutex
	closed bool
}

func newWarmPool(n int) *warmPool {
	p := &warmPool{work: make(chan *inprocCall, n)}
	p.idle.Store(int32(n))
	for range n {
		go func() {
			for k := range p.work {
				k.serve()
				p.idle.Add(1) // before finish, so the caller's next call finds this worker
				k.finish()
			}
		}()
	}
	return p
}

// submit has a worker serve k, and says false when none is idle (or p is nil or closed).
func (p *warmPool) submit(k *inprocCall) bool {
	if p == nil || !p.take() {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.work <- k // never blocks: a worker was idle, and work holds one call per worker
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
		close(p.work)
	}
}
