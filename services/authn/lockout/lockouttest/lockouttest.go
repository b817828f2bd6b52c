// Package lockouttest is the conformance suite every lockout.Store runs (Run), and an
// in-memory Store for tests of what uses one (Memory), which runs the suite too.
package lockouttest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
)

// Memory is a lockout.Store in a map, computing RecordFailure with lockout.Policy.Next. Its
// Fail makes every call fail; Calls counts them.
type Memory struct {
	mu      sync.Mutex
	entries map[string]lockout.Entry
	fail    error
	calls   int
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{entries: map[string]lockout.Entry{}} }

var _ lockout.Store = (*Memory)(nil)

// Fail makes every later call return err (nil: work again).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// Calls is the number of calls so far.
func (m *Memory) Calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

func (m *Memory) enter() error {
	m.mu.Lock()
	m.calls++
	return m.fail
}

func (m *Memory) Get(_ context.Context, keys []string) ([]lockout.Entry, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []lockout.Entry
	for _, k := range keys {
		if e, ok := m.entries[k]; ok {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *Memory) RecordFailure(_ context.Context, key string, now time.Time, p lockout.Policy) (lockout.Entry, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return lockout.Entry{}, err
	}
	prev, ok := m.entries[key]
	e := p.Next(key, prev, ok, now)
	m.entries[key] = e
	return e, nil
}

func (m *Memory) Attempt(_ context.Context, key string, now time.Time, p lockout.Policy) (lockout.Entry, bool, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return lockout.Entry{}, false, err
	}
	prev, ok := m.entries[key]
	e, granted := p.Attempt(key, prev, ok, now)
	if granted {
		m.entries[key] = e
	}
	return e, granted, nil
}

func (m *Memory) Release(_ context.Context, key string, mine lockout.Entry, now time.Time, p lockout.Policy) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	prev, ok := m.entries[key]
	if e, changed := p.Release(prev, ok, mine, now); changed {
		m.entries[key] = e
	}
	return nil
}

func (m *Memory) Reset(_ context.Context, key string) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	delete(m.entries, key)
	return nil
}

func (m *Memory) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for k, e := range m.entries {
		if !now.Before(e.ExpiresAt) {
			delete(m.entries, k)
			n++
		}
	}
	return n, nil
}

// Run runs the suite. open must return a new, empty store for each call and close it when
// the test ends.
func Run(t *testing.T, open func(t *testing.T) lockout.Store) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st lockout.Store)
	}{
		{"MatchesPolicy", testMatchesPolicy},
		{"GetResetDelete", testGetResetDelete},
		{"LargeCounts", testLargeCounts},
		{"Concurrent", testConcurrent},
		{"AttemptMatchesPolicy", testAttemptMatchesPolicy},
		{"ConcurrentAttempts", func(t *testing.T, st lockout.Store) { testConcurrentAttempts(t, st, st) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// RunShared runs the part of the suite about concurrency over two stores on one database, as
// two replicas of authn have them: open returns both, over a new, empty database.
func RunShared(t *testing.T, open func(t *testing.T) (a, b lockout.Store)) {
	t.Helper()
	t.Run("ConcurrentAttempts", func(t *testing.T) {
		t.Parallel()
		a, b := open(t)
		testConcurrentAttempts(t, a, b)
	})
}

// base is a fixed instant with sub-microsecond noise stripped: stores keep microseconds.
var base = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func equal(t *testing.T, what string, got, want lockout.Entry) {
	t.Helper()
	if got.Key != want.Key || got.Failures != want.Failures || !got.WindowStart.Equal(want.WindowStart) ||
		!got.LockedUntil.Equal(want.LockedUntil) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func get(t *testing.T, st lockout.Store, keys ...string) map[string]lockout.Entry {
	t.Helper()
	es, err := st.Get(context.Background(), keys)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	out := map[string]lockout.Entry{}
	for _, e := range es {
		if _, dup := out[e.Key]; dup {
			t.Fatalf("Get returned %q twice", e.Key)
		}
		if !slices.Contains(keys, e.Key) {
			t.Fatalf("Get returned %q, not asked for", e.Key)
		}
		if e.WindowStart.Location() != time.UTC {
			t.Errorf("times come back in %v, want UTC", e.WindowStart.Location())
		}
		out[e.Key] = e
	}
	return out
}

// A sequence of failures, with the clock moving, gives what Policy.Next says at each step:
// counting, the lock at the threshold, doubling, the cap, no reset while failing right after
// each lock, and a fresh count once the window has passed quietly.
func testMatchesPolicy(t *testing.T, st lockout.Store) {
	ctx := context.Background()
	p := lockout.Policy{MaxFailures: 3, BaseDelay: time.Second, MaxDelay: 10 * time.Second, Window: time.Minute}
	const key = "acct:alice"
	steps := []time.Duration{ // time since the previous failure
		0, time.Second, time.Second, // 3rd failure: locked 1s
		time.Second,                       // 4th, right after the lock: 2s
		2 * time.Second,                   // 5th: 4s
		4 * time.Second,                   // 6th: 8s
		8 * time.Second,                   // 7th: capped at 10s
		10 * time.Second,                  // 8th: 10s
		10*time.Second + time.Microsecond, // 9th, just after the lock ended: still counted
		10*time.Second + time.Minute,      // quiet for the window after the lock: starts again at 1
		time.Second,                       // 2
		2 * time.Minute,                   // the window passed since the first: 1 again
	}
	now := base
	var prev lockout.Entry
	ok := false
	for i, d := range steps {
		now = now.Add(d).Truncate(time.Microsecond)
		got, err := st.RecordFailure(ctx, key, now, p)
		if err != nil {
			t.Fatalf("step %d: RecordFailure: %v", i, err)
		}
		want := p.Next(key, prev, ok, now)
		equal(t, fmt.Sprintf("step %d (RecordFailure)", i), got, want)
		equal(t, fmt.Sprintf("step %d (Get)", i), get(t, st, key)[key], want)
		prev, ok = want, true
	}
	if prev.Failures != 1 {
		t.Fatalf("the sequence ends at %d failures, want a fresh count", prev.Failures)
	}
	// The checks above compare with Policy.Next; pin the numbers too, so both cannot drift.
	lp := lockout.Policy{MaxFailures: 2, BaseDelay: time.Second, MaxDelay: 4 * time.Second, Window: time.Minute}
	var ends []time.Duration
	now = base
	for range 5 {
		e, err := st.RecordFailure(ctx, "addr:192.0.2.1", now, lp)
		if err != nil {
			t.Fatal(err)
		}
		ends = append(ends, e.LockedUntil.Sub(now))
	}
	if want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}; !slices.Equal(ends, want) {
		t.Fatalf("locks %v, want %v", ends, want)
	}
}

func testGetResetDelete(t *testing.T, st lockout.Store) {
	ctx := context.Background()
	p := lockout.Policy{MaxFailures: 1, BaseDelay: time.Minute, MaxDelay: time.Hour, Window: time.Hour}
	if es := get(t, st, "acct:nobody", "addr:nowhere"); len(es) != 0 {
		t.Fatalf("empty store: %v", es)
	}
	if got := get(t, st); len(got) != 0 {
		t.Fatalf("Get() = %v", got)
	}
	for i, k := range []string{"acct:a", "acct:b", "addr:2001:db8::/64"} {
		if _, err := st.RecordFailure(ctx, k, base.Add(time.Duration(i)*time.Hour), p); err != nil {
			t.Fatal(err)
		}
	}
	es := get(t, st, "acct:a", "acct:b", "addr:2001:db8::/64", "acct:c")
	if len(es) != 3 {
		t.Fatalf("Get: %v, want 3 entries", es)
	}
	if err := st.Reset(ctx, "acct:a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Reset(ctx, "acct:never"); err != nil {
		t.Fatalf("Reset of a key without an entry: %v", err)
	}
	if es := get(t, st, "acct:a"); len(es) != 0 {
		t.Fatalf("after Reset: %v", es)
	}
	// acct:b expires at base+1h+1m (its lock) + 1h; the address at base+2h+1m+1h.
	bExp := get(t, st, "acct:b")["acct:b"].ExpiresAt
	if want := base.Add(time.Hour + time.Minute + time.Hour); !bExp.Equal(want) {
		t.Fatalf("acct:b expires %v, want %v", bExp, want)
	}
	if n, err := st.DeleteExpired(ctx, bExp.Add(-time.Microsecond)); err != nil || n != 0 {
		t.Fatalf("DeleteExpired before expiry = %d, %v", n, err)
	}
	if n, err := st.DeleteExpired(ctx, bExp); err != nil || n != 1 {
		t.Fatalf("DeleteExpired at expiry = %d, %v; want 1", n, err)
	}
	if es := get(t, st, "acct:b", "addr:2001:db8::/64"); len(es) != 1 || es["addr:2001:db8::/64"].Failures != 1 {
		t.Fatalf("left: %v, want only the address", es)
	}
	// A key used after Reset counts from one.
	e, err := st.RecordFailure(ctx, "acct:a", base.Add(3*time.Hour), p)
	if err != nil || e.Failures != 1 {
		t.Fatalf("after Reset: %+v, %v", e, err)
	}
}

// The doubling is capped however many failures there are, and keys of any length and
// characters are kept apart.
func testLargeCounts(t *testing.T, st lockout.Store) {
	ctx := context.Background()
	p := lockout.Policy{MaxFailures: 1, BaseDelay: time.Hour, MaxDelay: 24 * time.Hour, Window: time.Hour}
	key := "acct:x'); DROP TABLE login_failures; --\u00e9"
	now := base
	var e lockout.Entry
	for range 80 {
		var err error
		if e, err = st.RecordFailure(ctx, key, now, p); err != nil {
			t.Fatal(err)
		}
	}
	if e.Failures != 80 || !e.LockedUntil.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("after 80 failures: %+v, want 80 and a 24h lock", e)
	}
	if _, err := st.RecordFailure(ctx, "acct:other", now, p); err != nil {
		t.Fatal(err)
	}
	if got := get(t, st, key)[key]; got.Failures != 80 {
		t.Fatalf("another key changed this one: %+v", got)
	}
}

// Failures recorded at once, by many callers, all count: the store's update is atomic.
func testConcurrent(t *testing.T, st lockout.Store) {
	ctx := context.Background()
	p := lockout.Policy{MaxFailures: 1000, BaseDelay: time.Second, MaxDelay: time.Minute, Window: time.Hour}
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				now := base.Add(time.Duration(w*each+i) * time.Millisecond)
				if _, err := st.RecordFailure(ctx, "addr:203.0.113.9", now, p); err != nil {
					errs <- err
				}
				if _, err := st.Get(ctx, []string{"addr:203.0.113.9", "acct:x"}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := get(t, st, "addr:203.0.113.9")["addr:203.0.113.9"]; got.Failures != workers*each {
		t.Fatalf("%d failures counted, want %d", got.Failures, workers*each)
	}
}

// Attempts and releases, mixed with failures recorded after a check and the clock moving,
// give what Policy.Attempt and Policy.Release say at each step.
func testAttemptMatchesPolicy(t *testing.T, st lockout.Store) {
	ctx := context.Background()
	p := lockout.Policy{MaxFailures: 3, BaseDelay: time.Second, MaxDelay: 10 * time.Second, Window: time.Minute}
	const key = "addr:2001:db8::/56"
	type op struct {
		after   time.Duration // since the previous step
		do      string        // attempt, release (the attempt of step mine), record
		mine    int
		granted bool // for attempt
	}
	ops := []op{
		{0, "attempt", 0, true},                  // 0: 1
		{time.Millisecond, "attempt", 0, true},   // 1: 2
		{time.Millisecond, "attempt", 0, true},   // 2: 3, locked 1s
		{time.Millisecond, "attempt", 0, false},  // 3: refused, nothing changes
		{time.Millisecond, "release", 2, false},  // 4: 2, the lock ends (below the threshold)
		{time.Millisecond, "attempt", 0, true},   // 5: 3, locked again
		{time.Millisecond, "release", 0, false},  // 6: 2 (another attempt's): the lock ends too
		{time.Millisecond, "attempt", 0, true},   // 7: 3, locked 1s
		{time.Second, "attempt", 0, true},        // 8: 4 after the lock: 2s
		{time.Millisecond, "record", 0, false},   // 9: 5: a failure counted after its check: 4s
		{time.Millisecond, "release", 8, false},  // 10: 4; the lock is not 8's own: it stays
		{4 * time.Second, "attempt", 0, true},    // 11: 5 after the lock: 4s
		{time.Millisecond, "release", 11, false}, // 12: its own lock: ends now
		{time.Millisecond, "attempt", 0, true},   // 13: 5 again: 4s
		{10 * time.Minute, "release", 13, false}, // 14: the window passed: nothing
		{0, "attempt", 0, true},                  // 15: a fresh count, 1
		{time.Millisecond, "release", 13, false}, // 16: an attempt of the old window: nothing
		{time.Millisecond, "release", 15, false}, // 17: 0
		{time.Millisecond, "release", 15, false}, // 18: nothing below 0
	}
	now := base
	var model lockout.Entry
	have := false
	mine := map[int]lockout.Entry{}
	for i, o := range ops {
		now = now.Add(o.after).Truncate(time.Microsecond)
		what := fmt.Sprintf("step %d (%s)", i, o.do)
		switch o.do {
		case "attempt":
			got, granted, err := st.Attempt(ctx, key, now, p)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			want, wantGranted := p.Attempt(key, model, have, now)
			if granted != wantGranted || granted != o.granted {
				t.Fatalf("%s: granted %v, reference %v, script %v", what, granted, wantGranted, o.granted)
			}
			equal(t, what, got, want)
			if granted {
				model, have = want, true
			}
			mine[i] = got
		case "release":
			if err := st.Release(ctx, key, mine[o.mine], now, p); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if e, changed := p.Release(model, have, mine[o.mine], now); changed {
				model = e
			}
		case "record":
			e, err := st.RecordFailure(ctx, key, now, p)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			model = p.Next(key, model, have, now)
			equal(t, what, e, model)
		}
		equal(t, what+" (Get)", get(t, st, key)[key], model)
	}
	if model.Failures != 0 {
		t.Fatalf("the script ends at %d failures, want 0", model.Failures)
	}
	// Releasing a key that has no entry is no error and makes none.
	if err := st.Release(ctx, "acct:none", lockout.Entry{Key: "acct:none", WindowStart: now}, now, p); err != nil {
		t.Fatal(err)
	}
	if es := get(t, st, "acct:none"); len(es) != 0 {
		t.Fatalf("Release made %v", es)
	}
}

// Many attempts at once, through one store or two on one database: exactly the threshold are
// granted, every other one sees the lock; releasing some lets as many more through.
func testConcurrentAttempts(t *testing.T, a, b lockout.Store) {
	ctx := context.Background()
	p := lockout.Policy{MaxFailures: 20, BaseDelay: time.Hour, MaxDelay: time.Hour, Window: time.Hour}
	const key, n = "acct:alice", 200
	attempt := func(n int) []lockout.Entry {
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			granted []lockout.Entry
		)
		for i := range n {
			wg.Go(func() {
				st := a
				if i%2 == 1 {
					st = b
				}
				e, ok, err := st.Attempt(ctx, key, base.Add(time.Duration(i)*time.Microsecond), p)
				if err != nil {
					t.Error(err)
					return
				}
				if !ok && !e.LockedUntil.After(base.Add(time.Duration(i)*time.Microsecond)) {
					t.Errorf("refused without a lock: %+v", e)
				}
				if ok {
					mu.Lock()
					granted = append(granted, e)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return granted
	}
	granted := attempt(n)
	if len(granted) != p.MaxFailures {
		t.Fatalf("%d of %d concurrent attempts granted, want %d", len(granted), n, p.MaxFailures)
	}
	var wg sync.WaitGroup
	for i, e := range granted[:5] {
		wg.Go(func() {
			st := a
			if i%2 == 1 {
				st = b
			}
			if err := st.Release(ctx, key, e, base.Add(time.Second), p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := get(t, a, key)[key]; got.Failures != p.MaxFailures-5 || got.LockedUntil.After(base.Add(time.Second)) {
		t.Fatalf("after 5 releases: %+v, want %d failures and no lock", got, p.MaxFailures-5)
	}
	// The clock of these attempts is before the releases'; what matters is the count.
	if more := attempt(n); len(more) != 5 {
		t.Fatalf("%d more granted after 5 releases, want 5", len(more))
	}
}
