package testutil

import (
	"errors"
	"time"
)

// errNotYet is the last check Eventually reports: its condition says no more than that.
var errNotYet = errors.New("condition not met")

// abort marks an error that ends WaitFor at once.
type abort struct{ err error }

func (a abort) Error() string { return a.err.Error() }
func (a abort) Unwrap() error { return a.err }

// Abort wraps err so that WaitFor stops polling and fails at once: for a condition that can
// see it will never hold (the server it waits for has exited).
func Abort(err error) error { return abort{err} }

// Eventually polls cond every 5ms until it holds and returns how long that took; once timeout
// has passed it fails t, saying it waited for what. what comes before cond, as in WaitFor, so a
// long condition reads last.
func Eventually(t T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return WaitFor(t, timeout, 5*time.Millisecond, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// WaitFor polls cond every interval until it returns nil and returns how long that took. Once
// timeout has passed, or when cond returns an error made by Abort, it fails t with the last
// error cond returned, so a timeout says why the condition did not hold.
func WaitFor(t T, timeout, interval time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		last := cond()
		if last == nil {
			return time.Since(start)
		}
		var a abort
		if errors.As(last, &a) {
			t.Fatalf("gave up waiting for %s: %v", what, a.err)
			return time.Since(start)
		}
		if time.Since(start) >= timeout {
			t.Fatalf("timed out after %s waiting for %s; last check: %v", timeout, what, last)
			return time.Since(start)
		}
		time.Sleep(interval)
	}
}
