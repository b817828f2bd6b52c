package robots_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// syncBuffer is a log sink safe for the flush goroutine and the test.
type syncBuffer struct{ testutil.Buffer }

// events are the log lines decoded.
func (s *syncBuffer) events(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// touchCounter is a Memory store that records every Touch batch.
type touchCounter struct {
	*robotstest.Memory
	mu      sync.Mutex
	batches [][]robots.Touch
	fail    error
	failed  int
}

func (s *touchCounter) Touch(ctx context.Context, ts []robots.Touch) error {
	s.mu.Lock()
	fail := s.fail
	if fail == nil {
		s.batches = append(s.batches, append([]robots.Touch(nil), ts...))
	} else {
		s.failed++
	}
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.Memory.Touch(ctx, ts)
}

func (s *touchCounter) Batches() [][]robots.Touch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]robots.Touch(nil), s.batches...)
}

type fixture struct {
	m      *robots.Manager
	st     *touchCounter
	clk    *testutil.Clock
	log    *syncBuffer
	events map[string]int
	mu     sync.Mutex
}

// newFixture is a Manager over a Memory store with a fake clock whose flush loop never fires
// by itself (an hour): tests flush with Close.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{st: &touchCounter{Memory: robotstest.NewMemory()}, clk: newClock(), log: &syncBuffer{}, events: map[string]int{}}
	f.m = robots.NewManager(f.st, robots.Options{Now: f.clk.Now, Logger: slog.New(slog.NewJSONHandler(f.log, nil)),
		FlushInterval: time.Hour, Event: func(e string) {
			f.mu.Lock()
			f.events[e]++
			f.mu.Unlock()
		}})
	t.Cleanup(func() { _ = f.m.Close(context.Background()) })
	return f
}

func (f *fixture) count(e string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events[e]
}

func (f *fixture) create(t *testing.T, spec robots.Spec) (string, robots.Robot) {
	t.Helper()
	key, r, err := f.m.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.Name, err)
	}
	return key, r
}

func TestCreate(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	key, r := f.create(t, robots.Spec{Name: "ci", Groups: []string{"ci"}, Labels: map[string]string{"team": "platform"}, ExpiresIn: 720 * time.Hour})
	if !robots.WellFormed(key) || r.KeyHash != robots.HashKey(key) || !strings.HasPrefix(r.ID, "rob_") {
		t.Fatalf("Create = %q, %+v", key, r)
	}
	if !r.CreatedAt.Equal(f.clk.Now()) || !r.ExpiresAt.Equal(f.clk.Now().Add(720*time.Hour)) || !r.LastUsedAt.IsZero() || !r.RevokedAt.IsZero() {
		t.Fatalf("times: %+v", r)
	}
	stored, err := f.st.Get(ctx, "ci")
	if err != nil || robotstest.Same(stored, r) != "" {
		t.Fatalf("stored %+v, %v; want %+v", stored, err, r)
	}
	if _, _, err := f.m.Create(ctx, robots.Spec{Name: "ci"}); !errors.Is(err, robots.ErrExists) {
		t.Fatalf("second ci: %v, want ErrExists", err)
	}
	var inv *robots.InvalidError
	if _, _, err := f.m.Create(ctx, robots.Spec{Name: "Bad Name"}); !errors.As(err, &inv) {
		t.Fatalf("bad name: %v, want InvalidError", err)
	}
	if f.count(robots.EventCreated) != 1 {
		t.Fatalf("created events: %d, want 1", f.count(robots.EventCreated))
	}
	// The audit event names the robot; the key appears nowhere in the log.
	evs := f.log.events(t)
	if len(evs) != 1 || evs[0]["msg"] != "robot created" || evs[0]["log_type"] != "audit" || evs[0]["robot"] != "ci" || evs[0]["subject"] != "robot:ci" {
		t.Fatalf("audit events: %v", evs)
	}
	if strings.Contains(f.log.String(), key) || strings.Contains(f.log.String(), key[4:]) {
		t.Fatal("the key was logged")
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	good, goodR := f.create(t, robots.Spec{Name: "ci", Groups: []string{"ci"}, Labels: map[string]string{"team": "platform"}})
	soon, _ := f.create(t, robots.Spec{Name: "short", ExpiresIn: 500*time.Millisecond + time.Second})
	expired, _ := f.create(t, robots.Spec{Name: "old", ExpiresIn: time.Second})
	revoked, _ := f.create(t, robots.Spec{Name: "gone"})
	if _, _, err := f.m.Revoke(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(time.Second) // "old" has expired, "short" has half a second left
	unknown, _ := robots.NewKey()
	now := f.clk.Now()

	for _, tc := range []struct {
		name, user, key string
		reason          string // "" = accepted
		validUntil      time.Time
	}{
		{"good key", "ci", good, "", now.Add(robots.DefaultRecheckAfter)},
		{"expiring within the recheck interval", "short", soon, "", now.Add(500 * time.Millisecond)},
		{"unknown key", "ci", unknown, "unknown key", time.Time{}},
		{"malformed key", "ci", "pcp_short", "malformed key", time.Time{}},
		{"another robot's name", "short", good, "user name is not the robot's name", time.Time{}},
		{"the subject is not the name", "robot:ci", good, "user name is not the robot's name", time.Time{}},
		{"expired", "old", expired, "expired", time.Time{}},
		{"revoked", "gone", revoked, "revoked", time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.count(robots.EventRefused)
			r, until, err := f.m.Check(ctx, tc.user, tc.key, "192.0.2.7:1234")
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if !until.Equal(tc.validUntil) {
					t.Errorf("validUntil = %v, want %v", until, tc.validUntil)
				}
				if !r.LastUsedAt.Equal(now) {
					t.Errorf("LastUsedAt = %v, want now", r.LastUsedAt)
				}
				return
			}
			if !errors.Is(err, robots.ErrRefused) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Check = %+v, %v; want refused (%s)", r, err, tc.reason)
			}
			if f.count(robots.EventRefused) != before+1 {
				t.Errorf("refused events: %d, want %d", f.count(robots.EventRefused), before+1)
			}
			evs := f.log.events(t)
			last := evs[len(evs)-1]
			if last["msg"] != "robot login refused" || last["reason"] != tc.reason || last["log_type"] != "audit" ||
				last["remote_addr"] != "192.0.2.7:1234" || last["user"] != tc.user {
				t.Errorf("audit event: %v", last)
			}
			if strings.Contains(f.log.String(), tc.key) {
				t.Error("a key was logged")
			}
		})
	}
	// What Check returns is the stored robot, used now.
	r, _, err := f.m.Check(ctx, "ci", good, "")
	goodR.LastUsedAt = now
	if d := robotstest.Same(r, goodR); err != nil || d != "" {
		t.Fatalf("Check(ci) = %v, %s", err, d)
	}
}

// A store that cannot be read is not a refusal: the caller must be able to answer 503.
func TestCheckStoreDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key, _ := f.create(t, robots.Spec{Name: "ci"})
	f.st.Memory.Fail(errors.New("connection refused"))
	_, _, err := f.m.Check(context.Background(), "ci", key, "")
	if err == nil || errors.Is(err, robots.ErrRefused) || f.count(robots.EventRefused) != 0 {
		t.Fatalf("Check with the store down = %v (refused events %d), want a store error", err, f.count(robots.EventRefused))
	}
}

// Every Check reads the store: a revocation through the store (as another replica would make
// it) is seen by the next Check.
func TestCheckSeesRevocationAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	key, _ := f.create(t, robots.Spec{Name: "ci"})
	if _, _, err := f.m.Check(ctx, "ci", key, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.st.Revoke(ctx, "ci", f.clk.Now()); err != nil { // behind the manager's back
		t.Fatal(err)
	}
	if _, _, err := f.m.Check(ctx, "ci", key, ""); !errors.Is(err, robots.ErrRefused) {
		t.Fatalf("Check after revocation: %v, want refused", err)
	}
}

// Many logins of a robot are one write: the last use of each robot, in one batch.
func TestLastUseIsCoalesced(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	a, ar := f.create(t, robots.Spec{Name: "a"})
	b, br := f.create(t, robots.Spec{Name: "b"})
	var last time.Time
	for range 50 {
		f.clk.Add(time.Millisecond)
		last = f.clk.Now()
		for user, key := range map[string]string{"a": a, "b": b} {
			if _, _, err := f.m.Check(ctx, user, key, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(f.st.Batches()); n != 0 {
		t.Fatalf("%d writes before the flush", n)
	}
	if err := f.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	bs := f.st.Batches()
	if len(bs) != 1 || len(bs[0]) != 2 {
		t.Fatalf("Touch batches %v, want one with one entry per robot", bs)
	}
	for _, r := range []robots.Robot{ar, br} {
		got, _ := f.st.Get(ctx, r.Name)
		if !got.LastUsedAt.Equal(last) {
			t.Errorf("%s last used %v, want %v", r.Name, got.LastUsedAt, last)
		}
	}
}

// A failed write is retried at the next flush, unless a newer use replaced it.
func TestLastUseRetried(t *testing.T) {
	t.Parallel()
	st := &touchCounter{Memory: robotstest.NewMemory(), fail: errors.New("disk full")}
	clk := newClock()
	m := robots.NewManager(st, robots.Options{Now: clk.Now, FlushInterval: 10 * time.Millisecond})
	ctx := context.Background()
	key, _, err := m.Create(ctx, robots.Spec{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Check(ctx, "ci", key, ""); err != nil {
		t.Fatal(err)
	}
	for { // until the flush loop has failed to write it at least once
		st.mu.Lock()
		failed := st.failed
		if failed > 0 {
			st.fail = nil
		}
		st.mu.Unlock()
		if failed > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, _ := st.Get(ctx, "ci"); !got.LastUsedAt.Equal(clk.Now()) {
		t.Fatalf("last used %v after the store recovered, want %v", got.LastUsedAt, clk.Now())
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.create(t, robots.Spec{Name: "ci"})
	r, revoked, err := f.m.Revoke(ctx, "ci")
	if err != nil || !revoked || !r.RevokedAt.Equal(f.clk.Now()) {
		t.Fatalf("Revoke = %+v, %v, %v", r, revoked, err)
	}
	f.clk.Add(time.Hour)
	r, revoked, err = f.m.Revoke(ctx, "ci")
	if err != nil || revoked || !r.RevokedAt.Equal(f.clk.Now().Add(-time.Hour)) {
		t.Fatalf("Revoke again = %+v, %v, %v; want the first revocation, unchanged", r, revoked, err)
	}
	for _, name := range []string{"nobody", "Not A Name", ""} {
		if _, _, err := f.m.Revoke(ctx, name); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("Revoke(%q) = %v, want ErrNotFound", name, err)
		}
		if _, err := f.m.Get(ctx, name); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", name, err)
		}
	}
	if f.count(robots.EventRevoked) != 1 {
		t.Fatalf("revoked events: %d, want 1", f.count(robots.EventRevoked))
	}
	// The name is free again; the new robot is another one.
	_, r2 := f.create(t, robots.Spec{Name: "ci"})
	if r2.ID == r.ID || !r2.RevokedAt.IsZero() {
		t.Fatalf("re-created ci = %+v, old %+v", r2, r)
	}
}

// lyingStore answers every ByKeyHash with the robot of one fixed key hash, as a store whose
// index or query were broken would: Check must not take its word for the match.
type lyingStore struct {
	*touchCounter
	always [32]byte
}

func (l lyingStore) ByKeyHash(ctx context.Context, _ [32]byte) (robots.Robot, error) {
	return l.touchCounter.ByKeyHash(ctx, l.always)
}

// TestCheckRechecksTheStoredHash: the constant-time re-compare after the store's lookup is
// what refuses a key the store matched to another robot.
func TestCheckRechecksTheStoredHash(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	key, r := f.create(t, robots.Spec{Name: "ci"})
	m := robots.NewManager(lyingStore{touchCounter: f.st, always: r.KeyHash}, robots.Options{Now: f.clk.Now, FlushInterval: time.Hour})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	ctx := context.Background()
	if _, _, err := m.Check(ctx, "ci", key, ""); err != nil {
		t.Fatalf("Check with the robot's own key: %v", err)
	}
	other, _ := robots.NewKey()
	if got, _, err := m.Check(ctx, "ci", other, ""); !errors.Is(err, robots.ErrRefused) || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("Check with another key that the store matched to ci = %+v, %v; want refused (unknown key)", got, err)
	}
}
