package authn_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
)

func TestLimiterBoundsConcurrentWork(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(2, 10)
	release := make(chan struct{})
	var active, peak atomic.Int32
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := lim.Do(context.Background(), func() {
				n := active.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-release
				active.Add(-1)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	// The bound is far above any machine's scheduling delay: a bug shows as this failure, never
	// as a timing-dependent one.
	testutil.Eventually(t, time.Minute, "2 working and 3 waiting", func() bool { return lim.InUse() == 2 && lim.Waiting() == 3 })
	close(release)
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrent work = %d, want 2", p)
	}
	if lim.InUse() != 0 || lim.Waiting() != 0 {
		t.Fatalf("after the work: in use %d, waiting %d", lim.InUse(), lim.Waiting())
	}
}

func TestLimiterWaitEndsWithTheCallersDeadline(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(1, 4)
	var expired atomic.Int32
	lim.Expired = func() { expired.Add(1) }
	defer backendtest.Hold(t, lim)()
	// The slot stays taken until this test ends, so the outcome does not depend on timing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	err := lim.Do(ctx, func() { ran = true })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("err = %v, ran = %v; want DeadlineExceeded without running", err, ran)
	}
	if expired.Load() != 1 || lim.Waiting() != 0 {
		t.Fatalf("Expired calls = %d, waiting = %d", expired.Load(), lim.Waiting())
	}
}

func TestLimiterTurnsAwayCallersBeyondTheQueue(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(1, 1)
	var busy atomic.Int32
	lim.Busy = func() { busy.Add(1) }
	release := backendtest.Hold(t, lim)
	queued := make(chan error, 1)
	go func() { queued <- lim.Do(context.Background(), func() {}) }()
	testutil.Eventually(t, time.Minute, "one call queued", func() bool { return lim.Waiting() == 1 })
	ran := false
	if err := lim.Do(context.Background(), func() { ran = true }); !errors.Is(err, authn.ErrBusy) || ran {
		t.Fatalf("second waiter with max_queue 1: err = %v, ran = %v; want ErrBusy at once", err, ran)
	}
	if busy.Load() != 1 {
		t.Fatalf("Busy calls = %d, want 1", busy.Load())
	}
	release()
	if err := <-queued; err != nil {
		t.Fatalf("queued caller: %v", err)
	}
}

func TestLimiterSpendsNothingOnAnEndedContext(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(1, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := lim.Do(ctx, func() { ran = true }); !errors.Is(err, context.Canceled) || ran {
		t.Fatalf("err = %v, ran = %v", err, ran)
	}
}

func TestNilLimiterIsUnlimited(t *testing.T) {
	t.Parallel()
	var lim *authn.BcryptLimiter
	ran := false
	if err := lim.Do(context.Background(), func() { ran = true }); err != nil || !ran {
		t.Fatalf("err = %v, ran = %v", err, ran)
	}
	if lim.InUse() != 0 || lim.Waiting() != 0 {
		t.Fatal("nil limiter reports work")
	}
}
