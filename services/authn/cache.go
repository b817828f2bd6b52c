package authn

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Cache remembers verified credentials for a short time so a warm client does not pay a
// bcrypt comparison per token. Entries are keyed by an HMAC of (user, password) under a
// per-process random key: a memory dump shows neither, and the key dies with the process.
// Only successes are cached; failures always reach the backends.
type Cache struct {
	next    Authenticator
	ttl     time.Duration
	max     int
	now     func() time.Time
	hmacKey []byte
	pool    sync.Pool

	mu      sync.Mutex
	entries map[[32]byte]cacheEntry

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
	c.pool.New = func() any { return hmac.New(sha256.New, c.hmacKey) }
	return c
}

var _ Authenticator = (*Cache)(nil)

// Authenticate implements Authenticator.
func (c *Cache) Authenticate(ctx context.Context, cr Credentials) (identity.Identity, error) {
	if c.ttl <= 0 {
		return c.next.Authenticate(ctx, cr)
	}
	k := c.key(cr)
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		c.Hit()
		return e.id, nil
	}
	c.Miss()
	id, err := c.next.Authenticate(ctx, cr)
	if err != nil {
		return id, err
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = cacheEntry{id: id, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return id, nil
}

// Purge drops every entry; backends call it (through Deps.Changed) when their data changes.
func (c *Cache) Purge() {
	c.mu.Lock()
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

func (c *Cache) key(cr Credentials) [32]byte {
	h := c.pool.Get().(hash.Hash)
	h.Reset()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(cr.Username)))
	h.Write(n[:]) // length prefix: ("ab","c") and ("a","bc") must not collide
	h.Write([]byte(cr.Username))
	h.Write([]byte(cr.Password))
	var out [32]byte
	h.Sum(out[:0])
	c.pool.Put(h)
	return out
}
