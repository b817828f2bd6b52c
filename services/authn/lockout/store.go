package lockout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Policy is how one kind of key is locked: after MaxFailures failures the key is locked for
// BaseDelay, and every further failure doubles that up to MaxDelay. A key's failures are
// forgotten once Window has passed both since its first counted failure and since its last
// lock ended: a caller who keeps failing right after each lock never gets a fresh count,
// while a handful of typos spread over a day never add up.
type Policy struct {
	MaxFailures int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	Window      time.Duration
}

// Validate reports every problem at once.
func (p Policy) Validate() []error {
	var errs []error
	if p.MaxFailures < 1 {
		errs = append(errs, errors.New("max failures must be at least 1"))
	}
	if p.BaseDelay <= 0 {
		errs = append(errs, errors.New("base delay must be positive"))
	}
	if p.MaxDelay < p.BaseDelay {
		errs = append(errs, fmt.Errorf("max delay %s is below base delay %s", p.MaxDelay, p.BaseDelay))
	}
	if p.Window <= 0 {
		errs = append(errs, errors.New("window must be positive"))
	}
	return errs
}

// MaxShift is the smallest n for which BaseDelay<<n reaches MaxDelay. The SQL stores cap the
// doubling's exponent with it, so the shift cannot overflow however many failures there are.
func (p Policy) MaxShift() int {
	n := 0
	for n < 62 && p.BaseDelay > 0 && p.BaseDelay<<n < p.MaxDelay {
		n++
	}
	return n
}

// Delay is the lock that a key's failures-th failure sets: none below MaxFailures.
func (p Policy) Delay(failures int) time.Duration {
	if failures < p.MaxFailures {
		return 0
	}
	return min(p.BaseDelay<<min(failures-p.MaxFailures, p.MaxShift()), p.MaxDelay)
}

// Entry is one key's state. A key is locked while LockedUntil is after now; at ExpiresAt its
// failures are forgotten (the next failure counts from one) and the entry may be deleted.
type Entry struct {
	Key         string
	Failures    int
	WindowStart time.Time // the first failure counted
	LockedUntil time.Time // WindowStart when never locked (or a lock was taken back)
	ExpiresAt   time.Time // max(WindowStart, LockedUntil) + Window, or later after a Release
}

// LockedAt says whether e is locked at now. An entry never locked has LockedUntil at its
// WindowStart, which may lie ahead of a replica whose clock is behind: that is no lock.
func (e Entry) LockedAt(now time.Time) bool {
	return e.LockedUntil.After(now) && e.LockedUntil.After(e.WindowStart)
}

// Next is the entry after one more failure of key at now, given the stored entry (ok: there
// is one). It is the reference every Store's RecordFailure must match in one atomic step.
// A lock is never shortened: a failure recorded while locked (two requests that passed the
// check together, or replicas racing) keeps the later end.
func (p Policy) Next(key string, prev Entry, ok bool, now time.Time) Entry {
	e := Entry{Key: key, Failures: 1, WindowStart: now, LockedUntil: now}
	if ok && now.Before(prev.ExpiresAt) {
		e.Failures, e.WindowStart, e.LockedUntil = prev.Failures+1, prev.WindowStart, prev.LockedUntil
	}
	if d := p.Delay(e.Failures); d > 0 {
		if until := now.Add(d); until.After(e.LockedUntil) {
			e.LockedUntil = until
		}
	}
	e.ExpiresAt = e.WindowStart
	if e.LockedUntil.After(e.ExpiresAt) {
		e.ExpiresAt = e.LockedUntil
	}
	e.ExpiresAt = e.ExpiresAt.Add(p.Window)
	return e
}

// Attempt is the entry after one more attempt at key at now, and whether the attempt may go
// on to a credential check (granted). A locked key is left as it is and refuses; any other
// counts the attempt as a failure in advance (p.Next), so a lock the attempt reaches starts
// at once and concurrent attempts past the threshold, on any replica, are refused before their
// credentials are checked. An attempt that turns out not to be a wrong guess is taken back
// with Release. It is the reference every Store's Attempt must match in one atomic step.
func (p Policy) Attempt(key string, prev Entry, ok bool, now time.Time) (Entry, bool) {
	if ok && prev.LockedAt(now) {
		return prev, false
	}
	return p.Next(key, prev, ok, now), true
}

// Release is the entry after taking back one attempt that Attempt counted and granted (mine is
// the entry it returned), given the stored entry; changed is false when there is nothing to
// take back because the count started afresh since (another window) or is gone. The count
// drops by one, and a lock still running ends (LockedUntil back to WindowStart) when the count
// falls below the threshold (only attempts still in flight had reached it) or when it is the
// very lock mine set (nobody failed since). ExpiresAt stays: releasing never shortens how long
// failures are remembered.
// It is the reference every Store's Release must match in one atomic step.
func (p Policy) Release(prev Entry, ok bool, mine Entry, now time.Time) (e Entry, changed bool) {
	if !ok || !prev.WindowStart.Equal(mine.WindowStart) || !now.Before(prev.ExpiresAt) || prev.Failures < 1 {
		return prev, false
	}
	e = prev
	e.Failures--
	if e.LockedAt(now) && (e.Failures < p.MaxFailures || e.LockedUntil.Equal(mine.LockedUntil)) {
		e.LockedUntil = e.WindowStart
	}
	return e, true
}

// Store keeps failure counts where every replica of authn sees them (the session store's
// database). Implementations must be safe for concurrent use, by several processes too.
type Store interface {
	// Get returns the entries of those keys that have one, expired or not, in any order.
	Get(ctx context.Context, keys []string) ([]Entry, error)
	// RecordFailure counts one failure of key at now under p, atomically (concurrent
	// callers, on any replica, each count), and returns the key's new entry: p.Next of the
	// stored one, at the store's microsecond precision.
	RecordFailure(ctx context.Context, key string, now time.Time, p Policy) (Entry, error)
	// Attempt is p.Attempt of the stored entry, atomically: of any number of concurrent
	// callers, on any replica, no more are granted than the policy allows. A refused attempt
	// returns the stored entry (its lock) and changes nothing.
	Attempt(ctx context.Context, key string, now time.Time, p Policy) (e Entry, granted bool, err error)
	// Release is p.Release of the stored entry, atomically; nothing to release is no error.
	Release(ctx context.Context, key string, mine Entry, now time.Time, p Policy) error
	// Reset forgets key's failures; a key without an entry is no error.
	Reset(ctx context.Context, key string) error
	// DeleteExpired deletes the entries whose ExpiresAt is not after now and says how many.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// Provider is a store backend that keeps lockout state in its own database beside what it is
// for: the session stores (sqlite, postgres) do, so replicas that share sessions share
// lockouts too.
type Provider interface {
	LockoutStore() Store
}

// AttemptOrRead is the shape of a SQL store's Attempt: try counts the attempt in one statement
// that yields no row (errNoRow) when the key is locked; the lock that refused it is then read
// with get. The row can only vanish in between through a Reset (a success), which makes trying
// again right; three tries bound that.
func AttemptOrRead(ctx context.Context, key string, try func(context.Context) (Entry, error),
	get func(context.Context, []string) ([]Entry, error), errNoRow error) (Entry, bool, error) {
	for range 3 {
		e, err := try(ctx)
		if err == nil {
			return e, true, nil
		}
		if !errors.Is(err, errNoRow) {
			return Entry{}, false, err
		}
		es, err := get(ctx, []string{key})
		if err != nil {
			return Entry{}, false, err
		}
		if len(es) == 1 {
			return es[0], false, nil
		}
	}
	return Entry{}, false, errors.New("lockout entry changing under every attempt")
}
