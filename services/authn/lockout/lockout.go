// Package lockout slows down password guessing. Failed logins are counted per (account,
// client address) and per client address, in a Store every replica of authn shares; a key
// with too many failures is locked with exponential back-off, and a locked caller is refused
// before any backend runs (no bcrypt, no LDAP bind).
//
// An account is never locked on its own: that would let anyone lock its real user out from
// everywhere. Unknown accounts are counted like known ones, so a lock tells nothing about
// who exists.
//
// It wraps the chain twice (see Guard and Gate):
//
//	Gate → Cache → Guard → Chain
//
// Guard reads the store on every credential check the cache does not answer and counts the
// failures. Gate, in front of the cache, refuses callers this process knows to be locked from
// memory, so a warm cache hit costs no store read and still cannot be used by a locked caller.
package lockout

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// Key kinds, as metrics and audit events name them.
const (
	KindAccountAddress = "account_address"
	KindAddress        = "address"
)

// Defaults for Options fields left zero.
const (
	DefaultGCInterval = 10 * time.Minute
	DefaultMemoSize   = 100000
)

// recordTimeout bounds the writes after a failed check. They run without the request's
// cancellation: a client that hangs up once it has its answer must still be counted.
const recordTimeout = 5 * time.Second

// Options configure a Lockout.
type Options struct {
	Store Store
	// AccountAddress locks one account from one client address; Address locks a client
	// address whatever account it tries, which catches spraying one password over many.
	AccountAddress, Address Policy
	Now                     func() time.Time
	Logger                  *slog.Logger
	// GCInterval is how often expired entries are deleted from the store.
	GCInterval time.Duration
	// MemoSize bounds the locks remembered in memory for Gate (and to spare store reads).
	MemoSize int
	// Locked is called when a failure locks (or lengthens the lock of) a key, Refused when a
	// locked caller is turned away, each with the key's kind; StoreError when the store
	// fails. Metrics hook in here; nil: nothing.
	Locked, Refused func(kind string)
	StoreError      func()
}

// Lockout counts failed logins and refuses locked callers. Close stops its GC loop.
type Lockout struct {
	st        Store
	acct, adr Policy
	now       func() time.Time
	log       *slog.Logger
	audit     *slog.Logger
	memoSize  int

	mu   sync.Mutex
	memo map[string]time.Time // key → end of a lock seen in the store or set here

	stop chan struct{}
	done chan struct{}
	once sync.Once

	locked, refused func(kind string)
	storeError      func()
}

// New validates the policies and starts the loop that deletes expired entries.
func New(o Options) (*Lockout, error) {
	var errs []error
	if o.Store == nil {
		errs = append(errs, errors.New("lockout: no store"))
	}
	for _, p := range []struct {
		name string
		p    Policy
	}{{KindAccountAddress, o.AccountAddress}, {KindAddress, o.Address}} {
		for _, err := range p.p.Validate() {
			errs = append(errs, fmt.Errorf("lockout %s: %w", p.name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.GCInterval <= 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.MemoSize <= 0 {
		o.MemoSize = DefaultMemoSize
	}
	if o.Locked == nil {
		o.Locked = func(string) {}
	}
	if o.Refused == nil {
		o.Refused = func(string) {}
	}
	if o.StoreError == nil {
		o.StoreError = func() {}
	}
	l := &Lockout{st: o.Store, acct: o.AccountAddress, adr: o.Address, now: o.Now, log: o.Logger,
		audit: o.Logger.With("log_type", "audit"), memoSize: o.MemoSize, memo: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{}),
		locked: o.Locked, refused: o.Refused, storeError: o.StoreError}
	go l.loop(o.GCInterval)
	return l, nil
}

// Close stops the GC loop. Safe to call more than once.
func (l *Lockout) Close(context.Context) error {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	return nil
}

func (l *Lockout) loop(every time.Duration) {
	defer close(l.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if _, err := l.GC(ctx); err != nil {
				l.log.Warn("deleting expired login failure counts failed", "error", err)
			}
			cancel()
		}
	}
}

// GC deletes the store's expired entries (the loop calls it every GCInterval) and forgets
// locks that ended.
func (l *Lockout) GC(ctx context.Context) (int, error) {
	now := l.now()
	l.mu.Lock()
	for k, until := range l.memo {
		if !until.After(now) {
			delete(l.memo, k)
		}
	}
	l.mu.Unlock()
	n, err := l.st.DeleteExpired(ctx, now)
	if err != nil {
		l.storeError()
		return 0, err
	}
	return n, nil
}

// Guard returns next behind the lockout: a locked caller is refused without calling next;
// a wrong password (or unknown user) is counted against both keys; a success clears the
// (account, address) count. Place it right before the chain, behind the cache.
func (l *Lockout) Guard(next authn.Authenticator) authn.Authenticator { return guard{l, next} }

// Gate returns next behind a check of the locks this process has seen, from memory only. Place
// it in front of the cache: a locked caller presenting a password that is cached (from its
// real user's login elsewhere) must be refused too, or the cache would tell a guess right
// from wrong at full speed while every wrong one is refused.
func (l *Lockout) Gate(next authn.Authenticator) authn.Authenticator { return gate{l, next} }

type guard struct {
	l    *Lockout
	next authn.Authenticator
}

type gate struct {
	l    *Lockout
	next authn.Authenticator
}

var (
	_ authn.Authenticator = guard{}
	_ authn.Authenticator = gate{}
)

func (g gate) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	l := g.l
	now := l.now()
	k := keysOf(cr)
	if kind, until, ok := l.memoLocked(k, now); ok {
		return identity.Identity{}, l.refuse(ctx, cr, kind, until, now)
	}
	return g.next.Authenticate(ctx, cr)
}

func (g guard) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	l := g.l
	now := l.now()
	k := keysOf(cr)
	if kind, until, ok := l.memoLocked(k, now); ok {
		return identity.Identity{}, l.refuse(ctx, cr, kind, until, now)
	}
	entries, err := l.st.Get(ctx, []string{k.acct, k.addr})
	if err != nil {
		// Open, not closed: the store being down must not stop every login, and bcrypt's
		// limiter still bounds guessing meanwhile. The metric and the log say it happened.
		if ctx.Err() != nil {
			return identity.Identity{}, ctx.Err()
		}
		l.storeFailed(ctx, "reading login failure counts", err)
	}
	counted := false // the (account, address) key has failures to clear on success
	kind, until := "", now
	for _, e := range entries {
		if e.LockedUntil.After(until) {
			kind, until = k.kind(e.Key), e.LockedUntil
		}
		if e.LockedUntil.After(now) {
			l.remember(e.Key, e.LockedUntil)
		}
		if e.Key == k.acct && now.Before(e.ExpiresAt) {
			counted = true
		}
	}
	if kind != "" {
		return identity.Identity{}, l.refuse(ctx, cr, kind, until, now)
	}
	id, err := g.next.Authenticate(ctx, cr)
	switch {
	case err == nil:
		if counted {
			l.forget(k.acct)
			if err := l.st.Reset(ctx, k.acct); err != nil {
				l.storeFailed(ctx, "clearing a login failure count", err)
			}
		}
		return id, nil
	case errors.Is(err, authn.ErrInvalidCredentials), errors.Is(err, authn.ErrNoMatch):
		l.recordFailure(ctx, cr, k)
	}
	return id, err
}

// recordFailure counts a failure against both keys; the answer to this attempt stays
// "invalid credentials", the next one is refused if a key is now locked.
func (l *Lockout) recordFailure(ctx context.Context, cr authn.Credentials, k keys) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := l.now() // after the check, which may have waited for bcrypt
	for _, p := range []struct {
		kind, key string
		policy    Policy
	}{{KindAccountAddress, k.acct, l.acct}, {KindAddress, k.addr, l.adr}} {
		e, err := l.st.RecordFailure(ctx, p.key, now, p.policy)
		if err != nil {
			l.storeFailed(ctx, "counting a failed login", err)
			continue
		}
		if !e.LockedUntil.After(now) {
			continue
		}
		l.remember(p.key, e.LockedUntil)
		l.locked(p.kind)
		l.audit.InfoContext(ctx, "login locked", "result", "locked", "reason", "too_many_failures", "key", p.kind,
			"username", cr.Username, "remote_addr", cr.RemoteAddr, "service", cr.Service, "client_id", cr.ClientID,
			"failures", e.Failures, "locked_until", e.LockedUntil.UTC(), "lock_seconds", e.LockedUntil.Sub(now).Seconds())
	}
}

func (l *Lockout) refuse(ctx context.Context, cr authn.Credentials, kind string, until, now time.Time) error {
	retry := until.Sub(now)
	l.refused(kind)
	l.audit.InfoContext(ctx, "login refused", "result", "refused", "reason", "locked", "key", kind,
		"username", cr.Username, "remote_addr", cr.RemoteAddr, "service", cr.Service, "client_id", cr.ClientID,
		"retry_after_seconds", retry.Seconds())
	return &authn.LockedError{RetryAfter: retry}
}

func (l *Lockout) storeFailed(ctx context.Context, what string, err error) {
	l.storeError()
	l.log.WarnContext(ctx, "lockout store: "+what+" failed", "error", err)
}

// memoLocked reports the lock of k's keys that ends last, if any is known to last past now.
func (l *Lockout) memoLocked(k keys, now time.Time) (kind string, until time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range []struct{ kind, key string }{{KindAccountAddress, k.acct}, {KindAddress, k.addr}} {
		if u, found := l.memo[c.key]; found && u.After(now) && u.After(until) {
			kind, until, ok = c.kind, u, true
		}
	}
	return kind, until, ok
}

// remember keeps a lock in memory until it ends. A full memo drops the locks that ended;
// if it is still full the new one is not remembered (Guard still finds it in the store), so
// a flood of locks from many addresses cannot push out the ones already held.
func (l *Lockout) remember(key string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u, ok := l.memo[key]; ok {
		if until.After(u) {
			l.memo[key] = until
		}
		return
	}
	if len(l.memo) >= l.memoSize {
		now := l.now()
		for k, u := range l.memo {
			if !u.After(now) {
				delete(l.memo, k)
			}
		}
		if len(l.memo) >= l.memoSize {
			return
		}
	}
	l.memo[key] = until
}

func (l *Lockout) forget(key string) {
	l.mu.Lock()
	delete(l.memo, key)
	l.mu.Unlock()
}

// keys are the store keys of one attempt.
type keys struct{ acct, addr string }

func (k keys) kind(key string) string {
	if key == k.acct {
		return KindAccountAddress
	}
	return KindAddress
}

// keysOf derives the keys of cr. The address key is the client address (an IPv6 client's /64:
// one host commonly holds a whole /64, and per-address counts would be worthless if each of
// its addresses counted apart). The (account, address) key is a hash: users type passwords
// into the user name field, and the store should not keep them. Accounts are compared without
// case, which only ever makes a count stricter.
func keysOf(cr authn.Credentials) keys {
	addr := ClientAddr(cr.RemoteAddr)
	h := sha256.New()
	user := strings.ToLower(cr.Username)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	h.Write(n[:]) // length prefix: ("ab","c") and ("a","bc") must not collide
	h.Write([]byte(user))
	h.Write([]byte(addr))
	return keys{
		acct: "acct:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)),
		addr: "addr:" + addr,
	}
}

// ClientAddr is the address a client is counted under: an IPv4 address as it is, an IPv6
// one's /64. A port is dropped. What does not parse (no client address known, an in-process
// peer) is kept as given, so such callers share one count.
func ClientAddr(remote string) string {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		ap, perr := netip.ParseAddrPort(remote)
		if perr != nil {
			if len(remote) > 128 {
				remote = remote[:128]
			}
			return remote
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64) // cannot fail for a 128-bit address
	return p.String()
}
