package testutil

import (
	"sync"
	"time"
)

// Clock is a time source the test moves by hand, for code that takes a clock (a Now func);
// it is safe for concurrent use, as the code under test reads it from its own goroutines.
type Clock struct {
	mu     sync.Mutex
	now    time.Time     // the time, for a fixed clock
	real   bool          // follow time.Now, shifted by offset
	offset time.Duration // how far a real clock has been moved
}

// NewClock is a clock standing at start until the test moves it.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// NewRealClock is a clock that runs with the real time, shifted by what the test adds: for
// code that also waits on real timers or talks to a real peer (Vault) that checks the time.
func NewRealClock() *Clock { return &Clock{real: true} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().Add(c.offset)
	}
	return c.now
}

// Add moves the clock by d (backwards when d is negative).
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
	c.now = c.now.Add(d)
}

// Set moves the clock to t; a real clock keeps running from there.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
	c.now = t
}
