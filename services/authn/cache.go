package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/internal/identity"
)

// Cache remembers verified credentials for a short time so a warm client does not pay a
// bcrypt comparison per token. Entries are keyed by an HMAC of (user, password) under a
// per-process random key: a memory dump shows neither, and the key dies with the process.
// Only successes are cached; failures always reach the backends. An entry never outlives the
// credential it remembers: a backend whose credentials expire (a workload JWT) says when in
// Identity.ValidUntil, and the entry ends then if that comes before the TTL. Concurrent
// misses for the same credential share one backend call, so a burst of identical requests (a
// client retrying, a parallel pull) costs one bcrypt comparison.
type Cache struct {
	next    Authenticator
	ttl     time.Duration
	max     int
	now     func() time.Time
	hmacKey []byte
	pool    sync.Pool

	mu      sync.Mutex
	entries map[[32]byte]cacheEntry
	// gen counts purges: a miss that started before a purge must not insert its answer,
	// which may come from the user data the purge was for.
	gen uint64

	flights singleflight.Group // keyed by HMAC key and generation

	// Hit and Miss are called per lookup; metrics hook in here.
	Hit, Miss func()
}

type cacheEntry struct {
	id      identity.Identity
	expires time.Time
}

// NewCache wraps next. ttl ≤ 0 disables caching.
func NewCache(next Authenticator, ttl time.Duration, maxEntries int, now func() time.Time) *Cache {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	if maxEntries <= 0 {
		maxEntries = 10000
	}
	c := &Cache{next: next, ttl: ttl, max: maxEntries, now: now, hmacKey: key, entries: map[[32]byte]cacheEntry{}, Hit: func() {}, Miss: func() {}}
	c.pool.New = func() any { return &keyHasher{h: hmac.New(sha256.New, c.hmacKey), buf: make([]byte, 0, 128)} }
	return c
}

var _ Authenticator = (*Cache)(nil)

// Authenticate implements Authenticator.
func (c *Cache) Authenticate(ctx context.Context, cr Credentials) (identity.Identity, error) {
	if c.ttl <= 0 {
		return c.next.Authenticate(ctx, cr)
	}
	k := c.key(cr)
	id, gen, ok := c.lookup(k)
	if ok {
		c.Hit()
		return id, nil
	}
	c.Miss()
	for {
		id, err := c.fill(ctx, k, gen, cr)
		if !errors.Is(err, errFlightAbandoned) {
			return id, err
		}
		// The call we shared ended with its first caller's context, not ours: go again,
		// leading a new call or joining one that started since.
		if id, gen, ok = c.lookup(k); ok {
			return id, nil
		}
	}
}

// errFlightAbandoned is fill's answer to a caller whose shared call failed because another
// caller's context ended; it never leaves the Cache.
var errFlightAbandoned = errors.New("authn: shared credential check abandoned")

func (c *Cache) lookup(k [32]byte) (identity.Identity, uint64, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	return e.id, c.gen, ok && now.Before(e.expires)
}

// fill asks the next Authenticator once per key and generation however many callers miss
// together. The call runs with its first caller's context (deadline and all); each caller
// stops waiting when its own context ends.
func (c *Cache) fill(ctx context.Context, k [32]byte, gen uint64, cr Credentials) (identity.Identity, error) {
	var fk [40]byte
	copy(fk[:], k[:])
	binary.BigEndian.PutUint64(fk[32:], gen) // after a purge, new callers do not join older calls
	leader := false
	ch := c.flights.DoChan(string(fk[:]), func() (any, error) {
		leader = true // read only after the result arrives on ch, which orders it
		// A call that just finished may have inserted what we are about to ask for.
		if id, g, ok := c.lookup(k); ok && g == gen {
			return id, nil
		}
		start := c.now()
		id, err := c.next.Authenticate(ctx, cr)
		if err == nil {
			c.store(k, gen, id, start)
		}
		return id, err
	})
	select {
	case <-ctx.Done():
		return identity.Identity{}, ctx.Err()
	case r := <-ch:
		id, _ := r.Val.(identity.Identity)
		if r.Err != nil && !leader && ctx.Err() == nil &&
			(errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, context.DeadlineExceeded)) {
			return identity.Identity{}, errFlightAbandoned
		}
		return id, r.Err
	}
}

func (c *Cache) store(k [32]byte, gen uint64, id identity.Identity, start time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen { // purged while the backend answered from data that may be gone
		return
	}
	expires := start.Add(c.ttl)
	if !id.ValidUntil.IsZero() && id.ValidUntil.Before(expires) {
		expires = id.ValidUntil
	}
	if !start.Before(expires) { // nothing left to remember
		return
	}
	if len(c.entries) >= c.max {
		c.evictLocked(start)
	}
	c.entries[k] = cacheEntry{id: id, expires: expires}
}

// Purge drops every entry, and any answer still on its way from before the purge;
// backends call it (through Deps.Changed) when their data changes.
func (c *Cache) Purge() {
	c.mu.Lock()
	c.gen++
	clear(c.entries)
	c.mu.Unlock()
}

// Len is the number of cached entries, expired ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	// Still full of live entries: start over rather than grow without bound.
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
}

// keyHasher is a pooled HMAC with a buffer for its input: writing the parts one by one
// through the hash.Hash interface moved each of them to the heap.
type keyHasher struct {
	h   hash.Hash
	buf []byte
}

func (c *Cache) key(cr Credentials) [32]byte {
	kh := c.pool.Get().(*keyHasher)
	kh.h.Reset()
	// length prefix: ("ab","c") and ("a","bc") must not collide
	b := binary.BigEndian.AppendUint64(kh.buf[:0], uint64(len(cr.Username)))
	b = append(b, cr.Username...)
	// A subject token and the same string as a password reach different backends.
	b = append(b, byte(cr.Kind))
	b = append(b, cr.Password...)
	kh.h.Write(b)
	var out [32]byte
	copy(out[:], kh.h.Sum(b[:0]))
	clear(b[:cap(b)]) // the password does not wait in the pool
	kh.buf = b[:0]
	if cap(b) > 1024 { // nor does a buffer grown for an outsized one
		kh.buf = make([]byte, 0, 128)
	}
	c.pool.Put(kh)
	return out
}
