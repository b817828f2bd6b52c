package authn_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

// gate is a backend whose calls block until release is closed (or their context ends);
// entered receives one value per call as it starts.
type gate struct {
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
	subject atomic.Value // string answered
}

func newGate() *gate {
	g := &gate{entered: make(chan struct{}, 64), release: make(chan struct{})}
	g.subject.Store("alice")
	return g
}

func (g *gate) Authenticate(ctx context.Context, _ authn.Credentials) (identity.Identity, error) {
	g.calls.Add(1)
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return identity.Identity{Subject: g.subject.Load().(string)}, nil
	case <-ctx.Done():
		return identity.Identity{}, ctx.Err()
	}
}

var aliceCreds = authn.Credentials{Username: "alice", Password: "pw"}

func TestCacheCoalescesConcurrentMisses(t *testing.T) {
	t.Parallel()
	const n = 8
	g := newGate()
	c := authn.NewCache(g, time.Minute, 10, time.Now)
	var misses atomic.Int32
	allMissed := make(chan struct{})
	c.Miss = func() {
		if misses.Add(1) == n {
			close(allMissed)
		}
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := c.Authenticate(context.Background(), aliceCreds)
			if err != nil || id.Subject != "alice" {
				t.Errorf("id = %+v, err = %v", id, err)
			}
		}()
	}
	<-allMissed // every caller has looked in the cache and found nothing
	// Give every caller the chance to reach the backend before it answers (a broken cache
	// shows as more calls; a working one never makes them, however long we yield).
	for i := 0; i < 10000 && g.calls.Load() < n; i++ {
		runtime.Gosched()
	}
	close(g.release)
	wg.Wait()
	if got := g.calls.Load(); got != 1 {
		t.Fatalf("%d concurrent misses for one credential made %d backend calls, want 1", n, got)
	}
}

// htpasswd reloads call Purge; a check that was already asking the backend may have read the
// old file and must not put its answer in the cache after the purge.
func TestCacheMissInFlightDuringPurgeIsNotCached(t *testing.T) {
	t.Parallel()
	g := newGate()
	c := authn.NewCache(g, time.Minute, 10, time.Now)
	done := make(chan error, 1)
	go func() {
		_, err := c.Authenticate(context.Background(), aliceCreds)
		done <- err
	}()
	<-g.entered
	c.Purge()
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatalf("answer from before the purge was cached (%d entries)", c.Len())
	}
	if _, err := c.Authenticate(context.Background(), aliceCreds); err != nil {
		t.Fatal(err)
	}
	if got := g.calls.Load(); got != 2 {
		t.Fatalf("backend calls = %d, want 2 (the next check asks the backend again)", got)
	}
}

// After a purge, a new check must not join a call that started before it.
func TestCacheCheckAfterPurgeDoesNotJoinOlderCall(t *testing.T) {
	t.Parallel()
	g := newGate()
	c := authn.NewCache(g, time.Minute, 10, time.Now)
	first := make(chan error, 1)
	go func() {
		_, err := c.Authenticate(context.Background(), aliceCreds)
		first <- err
	}()
	<-g.entered
	c.Purge()
	second := make(chan error, 1)
	go func() {
		_, err := c.Authenticate(context.Background(), aliceCreds)
		second <- err
	}()
	select {
	case <-g.entered: // the second check asked the backend itself
	case <-time.After(10 * time.Second): // only reached when it joined the first call
		t.Fatal("a check after the purge joined a backend call from before it")
	}
	close(g.release)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}

// A caller that joined another's backend call must not fail because that caller went away.
func TestCacheSharedCallOutlivesItsFirstCaller(t *testing.T) {
	t.Parallel()
	g := newGate()
	c := authn.NewCache(g, time.Minute, 10, time.Now)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	leader := make(chan error, 1)
	go func() {
		_, err := c.Authenticate(leaderCtx, aliceCreds)
		leader <- err
	}()
	<-g.entered
	missed := make(chan struct{})
	c.Miss = func() { close(missed) }
	follower := make(chan error, 1)
	go func() {
		_, err := c.Authenticate(context.Background(), aliceCreds)
		follower <- err
	}()
	<-missed
	cancelLeader()
	if err := <-leader; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: err = %v, want Canceled", err)
	}
	select {
	case <-g.entered: // the follower asks again, under its own context
	case err := <-follower:
		t.Fatalf("follower ended with the leader's call: %v", err)
	}
	close(g.release)
	if err := <-follower; err != nil {
		t.Fatalf("follower: %v", err)
	}
}

// Logged-in users keep getting tokens while a flood of wrong passwords saturates bcrypt.
func TestCacheHitsDoNotWaitForBcrypt(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(1, 0)
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: string(h)}}}).Open(context.Background(), authn.Deps{Bcrypt: lim})
	if err != nil {
		t.Fatal(err)
	}
	c := authn.NewCache(authn.NewChain([]authn.Member{{Name: "s", Backend: a}}, lim), time.Minute, 10, time.Now)
	if _, err := c.Authenticate(context.Background(), aliceCreds); err != nil {
		t.Fatal(err)
	}
	defer backendtest.Hold(t, lim)()
	if id, err := c.Authenticate(context.Background(), aliceCreds); err != nil || id.Subject != "alice" {
		t.Fatalf("cached credential while bcrypt is saturated: id = %+v, err = %v", id, err)
	}
	if _, err := c.Authenticate(context.Background(), authn.Credentials{Username: "alice", Password: "guess"}); !errors.Is(err, authn.ErrBusy) {
		t.Fatalf("uncached credential while bcrypt is saturated: err = %v, want ErrBusy", err)
	}
}

// expiring is a backend whose credentials stop proving anything at until (a workload JWT).
type expiring struct {
	until time.Time
	calls int
}

func (e *expiring) Authenticate(context.Context, authn.Credentials) (identity.Identity, error) {
	e.calls++
	return identity.Identity{Subject: "ci", ValidUntil: e.until}, nil
}

// A cached identity never outlives the credential behind it: the entry ends at the
// credential's ValidUntil when that comes before the TTL.
func TestCacheEntryEndsWithTheCredential(t *testing.T) {
	t.Parallel()
	start := time.Unix(5000, 0)
	cases := []struct {
		name      string
		until     time.Time // zero: a password, which does not expire by itself
		lastHit   time.Duration
		firstMiss time.Duration
		stored    bool
	}{
		{"password: the TTL", time.Time{}, time.Minute - time.Nanosecond, time.Minute, true},
		{"credential valid past the TTL: the TTL", start.Add(time.Hour), time.Minute - time.Nanosecond, time.Minute, true},
		{"credential ending within the TTL: its end", start.Add(10 * time.Second), 10*time.Second - time.Nanosecond, 10 * time.Second, true},
		{"credential ending now: not cached", start, 0, 0, false},
		{"credential already over: not cached", start.Add(-time.Second), 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := start
			b := &expiring{until: tc.until}
			c := authn.NewCache(b, time.Minute, 10, func() time.Time { return now })
			auth := func() {
				t.Helper()
				if _, err := c.Authenticate(context.Background(), aliceCreds); err != nil {
					t.Fatal(err)
				}
			}
			auth()
			if got := c.Len() == 1; got != tc.stored {
				t.Fatalf("stored = %v, want %v", got, tc.stored)
			}
			if !tc.stored {
				return
			}
			now = start.Add(tc.lastHit)
			auth()
			if b.calls != 1 {
				t.Fatalf("at +%v: backend asked again, want a hit", tc.lastHit)
			}
			now = start.Add(tc.firstMiss)
			auth()
			if b.calls != 2 {
				t.Fatalf("at +%v: answered from the cache, want the backend asked", tc.firstMiss)
			}
		})
	}
}
