package app

import (
	"bytes"
	"context"
	"runtime"
	"testing"

	"google.golang.org/grpc"
)

// goid is the calling goroutine's id, from its stack trace's first line.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	return string(bytes.Fields(b)[1])
}

// onGoroutine is a method whose handler reports the goroutine it ran on, after release is
// closed (nil: at once).
func onGoroutine(started chan<- struct{}, release <-chan struct{}) inprocMethod {
	return inprocMethod{handler: func(_ any, _ context.Context, _ func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		if started != nil {
			started <- struct{}{}
		}
		if release != nil {
			<-release
		}
		return goid(), nil
	}}
}

func TestWarmPool(t *testing.T) {
	ctx := context.Background()
	t.Run("a worker, the same one call after call", func(t *testing.T) {
		me := goid()
		p := newWarmPool(1)
		defer p.close()
		first, _ := p.call(onGoroutine(nil, nil), ctx, nil, nil)
		for range 100 {
			if g, _ := p.call(onGoroutine(nil, nil), ctx, nil, nil); g != first || g == me {
				t.Fatalf("ran on goroutine %v, first call on %v, caller %s", g, first, me)
			}
		}
	})
	t.Run("every worker busy: on the caller", func(t *testing.T) {
		me := goid()
		p := newWarmPool(1)
		defer p.close()
		started, release := make(chan struct{}), make(chan struct{})
		busy := make(chan any)
		go func() { g, _ := p.call(onGoroutine(started, release), ctx, nil, nil); busy <- g }()
		<-started
		if g, _ := p.call(onGoroutine(nil, nil), ctx, nil, nil); g != me {
			t.Errorf("ran on goroutine %v while the worker was busy, not the caller's %s", g, me)
		}
		close(release)
		if g := <-busy; g == me {
			t.Errorf("the first call ran on the caller")
		}
	})
	t.Run("closed or nil: on the caller", func(t *testing.T) {
		me := goid()
		p := newWarmPool(2)
		p.close()
		p.close()
		for _, p := range []*warmPool{p, nil} {
			if g, _ := p.call(onGoroutine(nil, nil), ctx, nil, nil); g != me {
				t.Errorf("ran on goroutine %v, not the caller's %s", g, me)
			}
		}
	})
}
