package testutil_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// Every kind of test value the harnesses are handed must satisfy T.
var (
	_ testutil.T = (*testing.T)(nil)
	_ testutil.T = (*testing.B)(nil)
	_ testutil.T = (*testing.F)(nil)
	_ testutil.T = testing.TB(nil)
)

// fakeT records a failure instead of ending the goroutine, so WaitFor's failures can be seen.
type fakeT struct {
	testutil.T // unused methods panic
	mu         sync.Mutex
	failed     string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = fmt.Sprintf(format, args...)
}

func TestClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name  string
		clock func() *testutil.Clock
		move  func(*testutil.Clock)
		want  time.Time // zero: around time.Now() plus shift
		shift time.Duration
	}{
		{"fixed stands still", func() *testutil.Clock { return testutil.NewClock(start) }, func(*testutil.Clock) {}, start, 0},
		{"fixed add", func() *testutil.Clock { return testutil.NewClock(start) },
			func(c *testutil.Clock) { c.Add(time.Hour); c.Add(-time.Minute) }, start.Add(59 * time.Minute), 0},
		{"fixed set", func() *testutil.Clock { return testutil.NewClock(start) },
			func(c *testutil.Clock) { c.Add(time.Hour); c.Set(start.Add(time.Second)) }, start.Add(time.Second), 0},
		{"real follows time.Now", testutil.NewRealClock, func(*testutil.Clock) {}, time.Time{}, 0},
		{"real add", testutil.NewRealClock, func(c *testutil.Clock) { c.Add(time.Hour); c.Add(time.Minute) }, time.Time{}, time.Hour + time.Minute},
		{"real set", testutil.NewRealClock, func(c *testutil.Clock) { c.Set(time.Now().Add(-48 * time.Hour)) }, time.Time{}, -48 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := tc.clock()
			tc.move(c)
			got := c.Now()
			if !tc.want.IsZero() {
				if !got.Equal(tc.want) {
					t.Fatalf("Now() = %v, want %v", got, tc.want)
				}
				return
			}
			if d := got.Sub(time.Now().Add(tc.shift)); d > time.Second || d < -time.Second {
				t.Fatalf("Now() is %v off the real time shifted by %v", d, tc.shift)
			}
		})
	}
}

// The code under test reads the clock from its own goroutines while the test moves it: the
// race detector must stay quiet and no move may be lost.
func TestClockConcurrent(t *testing.T) {
	t.Parallel()
	start := time.Unix(0, 0)
	c := testutil.NewClock(start)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Add(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(800*time.Second); !got.Equal(want) {
		t.Fatalf("Now() = %v, want %v", got, want)
	}
}

func TestWaitFor(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name     string
		cond     func(calls int) error
		wantFail string // substring of the failure; empty: must succeed
		maxCalls int    // the condition is not polled more than this
	}{
		{"holds at once", func(int) error { return nil }, "", 1},
		{"holds on the third try", func(n int) error {
			if n < 3 {
				return boom
			}
			return nil
		}, "", 3},
		{"never holds: the last check is told", func(int) error { return boom }, "timed out after 30ms waiting for the thing; last check: boom", 1000},
		{"aborted: fails at once", func(int) error { return testutil.Abort(fmt.Errorf("server exited: %w", boom)) },
			"gave up waiting for the thing: server exited: boom", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ft := &fakeT{}
			calls := 0
			testutil.WaitFor(ft, 30*time.Millisecond, time.Millisecond, "the thing", func() error {
				calls++
				return tc.cond(calls)
			})
			if tc.wantFail == "" && ft.failed != "" {
				t.Fatalf("failed: %s", ft.failed)
			}
			if tc.wantFail != "" && !strings.Contains(ft.failed, tc.wantFail) {
				t.Fatalf("failure = %q, want it to contain %q", ft.failed, tc.wantFail)
			}
			if calls > tc.maxCalls {
				t.Fatalf("condition polled %d times, want at most %d", calls, tc.maxCalls)
			}
		})
	}
}

func TestEventually(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		after    int // the condition holds from this call on; 0: never
		wantFail string
	}{
		{"holds at once", 1, ""},
		{"holds later", 4, ""},
		{"never", 0, "timed out after 20ms waiting for the reload; last check: condition not met"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ft := &fakeT{}
			calls := 0
			took := testutil.Eventually(ft, 20*time.Millisecond, "the reload", func() bool {
				calls++
				return tc.after > 0 && calls >= tc.after
			})
			if ft.failed != tc.wantFail {
				t.Fatalf("failure = %q, want %q", ft.failed, tc.wantFail)
			}
			if tc.wantFail != "" && took < 20*time.Millisecond {
				t.Fatalf("gave up after %v, before the 20ms timeout", took)
			}
		})
	}
}
