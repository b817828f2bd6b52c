// Package lockout slows down password guessing. Failed logins are counted per (account,
// client address), per client address (an IPv6 client's /64) and per wider IPv6 prefix (a /56,
// a /48), in a Store every replica of authn shares; a key with too many failures is locked with
// exponential back-off, and a locked caller is refused before any backend runs (no bcrypt, no
// LDAP bind).
//
// Every attempt is counted before its credentials are checked (Store.Attempt, atomic in the
// store) and taken back when it proves not to be a wrong guess: a success, a backend that could
// not answer, a full bcrypt queue. So however many guesses arrive at once, on however many
// replicas, no more than a key's threshold are checked before it locks; the rest are refused
// as locked at once instead of queueing for bcrypt.
//
// Credentials nobody can guess (a robot key, a workload JWT: whatever a backend claims by its
// shape, see Options.Unguessable) are never held off by a lock, so that a flood of wrong
// passwords from one address (every client behind a proxy the gateway does not trust) cannot
// keep a CI job out; a wrong one still counts toward its address. A personal access token
// (Options.AccountBound) is unguessable too, but speaks for a person: it counts toward, and is
// held off by, its (account, address) key like the person's password.
//
// An account is never locked on its own: that would let anyone lock its real user out from
// everywhere. Unknown accounts are counted like known ones, so a lock tells nothing about
// who exists.
//
// It wraps the chain twice (see Guard and Gate):
//
//	Gate → Cache → Guard → Chain
//
// Guard counts every credential check the cache does not answer in the store, before it
// runs. Gate, in front of the cache, refuses callers this process knows to be locked from
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

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// Key kinds, as metrics and audit events name them.
const (
	KindAccountAddress = "account_address"
	KindAddress        = "address" // an IPv4 address, or an IPv6 client's /64
	KindPrefix         = "prefix"  // a wider IPv6 network (Options.Prefixes)
)

// Kinds are every key kind, for metrics to start each series at 0.
var Kinds = []string{KindAccountAddress, KindAddress, KindPrefix}

// Defaults for Options fields left zero.
const (
	DefaultGCInterval = 10 * time.Minute
	DefaultMemoSize   = 100000
)

// PrefixPolicy locks an IPv6 network of Bits (below 64) whatever address in it tries.
type PrefixPolicy struct {
	Bits   int
	Policy Policy
}

// sharedAddrEvery is how often at most the warning about one private address is logged, and
// the span over which failures are counted for it.
const sharedAddrEvery = time.Minute

// sharedAddrMin is how many failures a minute it takes before the warning is considered.
const sharedAddrMin = 20

// recordTimeout bounds the writes after a failed check. They run without the request's
// cancellation: a client that hangs up once it has its answer must still be counted.
const recordTimeout = 5 * time.Second

// Options configure a Lockout.
type Options struct {
	Store Store
	// AccountAddress locks one account from one client address; Address locks a client
	// address whatever account it tries, which catches spraying one password over many.
	AccountAddress, Address Policy
	// Prefixes are the wider IPv6 networks counted too, beside the /64 (nil: none). A
	// customer is commonly given a /56 or a /48: 256 or 65,536 /64s to rotate through.
	Prefixes []PrefixPolicy
	// Unguessable says whether a credential cannot be guessed (a backend claims it by its
	// shape: a robot key, a workload JWT). Such a credential is never refused by a lock; a
	// wrong one counts toward its address keys only. nil: every credential is a password.
	Unguessable func(ctx context.Context, cr authn.Credentials) bool
	// AccountBound says, of an unguessable credential, whether it speaks for a person's
	// account like their password (a personal access token): its attempts count toward the
	// (account, address) key and a lock there refuses it, as a password's would; the address
	// keys still only count its failures and never hold it off. nil: none is.
	AccountBound func(ctx context.Context, cr authn.Credentials) bool
	// WarnSharedAddress logs a warning (once a minute at most) when most failures come from
	// one private or loopback address: set it when the gateway trusts no proxy, because then
	// a proxy in front of it makes every client that one address, and its lock everyone's.
	WarnSharedAddress bool
	Now               func() time.Time
	Logger            *slog.Logger
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
	st          Store
	acct, adr   Policy
	prefixes    []PrefixPolicy
	unguessable func(context.Context, authn.Credentials) bool
	acctBound   func(context.Context, authn.Credentials) bool
	shared      *sharedAddr // nil: no warning
	now         func() time.Time
	log         *slog.Logger
	audit       *slog.Logger
	memoSize    int

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
	for _, pp := range o.Prefixes {
		if pp.Bits < 1 || pp.Bits >= 64 {
			errs = append(errs, fmt.Errorf("lockout prefix /%d: an IPv6 prefix must be shorter than the /64 the address key counts", pp.Bits))
		}
		for _, err := range pp.Policy.Validate() {
			errs = append(errs, fmt.Errorf("lockout prefix /%d: %w", pp.Bits, err))
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
	if o.Unguessable == nil {
		o.Unguessable = func(context.Context, authn.Credentials) bool { return false }
	}
	if o.AccountBound == nil {
		o.AccountBound = func(context.Context, authn.Credentials) bool { return false }
	}
	l := &Lockout{st: o.Store, acct: o.AccountAddress, adr: o.Address, now: o.Now, log: o.Logger,
		prefixes: append([]PrefixPolicy(nil), o.Prefixes...), unguessable: o.Unguessable,
		acctBound: o.AccountBound,
		audit:     o.Logger.With("log_type", "audit"), memoSize: o.MemoSize, memo: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{}),
		locked: o.Locked, refused: o.Refused, storeError: o.StoreError}
	if o.WarnSharedAddress {
		l.shared = &sharedAddr{by: map[netip.Addr]int{}}
	}
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

// Guard returns next behind the lockout: each attempt is counted against every key before
// next runs, and a locked caller is refused without calling next; a wrong password (or unknown
// user) stays counted; a success clears the (account, address) count and takes back the
// address keys' one; any other outcome takes back them all. Place it right before the chain,
// behind the cache.
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
	ks := l.keysOf(cr)
	if l.unguessable(ctx, cr) {
		if !l.acctBound(ctx, cr) {
			return g.next.Authenticate(ctx, cr)
		}
		ks = ks[:1] // an account-bound credential: its (account, address) key only
	}
	now := l.now()
	if k, until, ok := l.memoLocked(ks, now); ok {
		return identity.Identity{}, l.refuse(ctx, cr, k, until, now)
	}
	return g.next.Authenticate(ctx, cr)
}

// held is one key's attempt that Attempt granted (counted), or that the store could not count.
type held struct {
	k       key
	e       Entry
	counted bool
}

func (g guard) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	l := g.l
	ks := l.keysOf(cr)
	var after []key // keys that only count a failure: never attempted, never refusing
	if l.unguessable(ctx, cr) {
		if !l.acctBound(ctx, cr) {
			id, err := g.next.Authenticate(ctx, cr)
			if credentialFailure(err) {
				l.noteShared(ctx, cr)
				l.recordFailures(ctx, cr, ks[1:]) // the address keys; ks[0] is (account, address)
			}
			return id, err
		}
		// A personal access token: the account's key as for a password, the address keys
		// as for any unguessable credential.
		ks, after = ks[:1], ks[1:]
	}
	now := l.now()
	if k, until, ok := l.memoLocked(ks, now); ok {
		return identity.Identity{}, l.refuse(ctx, cr, k, until, now)
	}
	// Count the attempt against every key before the check, most specific first (the key a
	// targeted guesser locks); a locked key refuses it and the counts already taken go back.
	hs := make([]held, 0, len(ks))
	for _, k := range ks {
		e, granted, err := l.st.Attempt(ctx, k.key, now, k.policy)
		if err != nil {
			// Open, not closed: the store being down must not stop every login, and bcrypt's
			// limiter still bounds guessing meanwhile. The metric and the log say it happened.
			if ctx.Err() != nil {
				l.release(ctx, hs, now)
				return identity.Identity{}, ctx.Err()
			}
			l.storeFailed(ctx, "counting a login attempt", err)
			hs = append(hs, held{k: k})
			continue
		}
		if !granted {
			l.remember(k.key, e.LockedUntil)
			l.release(ctx, hs, now)
			return identity.Identity{}, l.refuse(ctx, cr, k, e.LockedUntil, now)
		}
		hs = append(hs, held{k: k, e: e, counted: true})
	}
	id, err := g.next.Authenticate(ctx, cr)
	switch {
	case err == nil:
		// A success clears the (account, address) count and takes back the address keys'
		// attempt: many users behind one NAT logging in lock nobody.
		l.forget(ks[0].key)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
		defer cancel()
		if err := l.st.Reset(rctx, ks[0].key); err != nil {
			l.storeFailed(ctx, "clearing a login failure count", err)
		}
		l.release(ctx, hs[1:], now)
		return id, nil
	case credentialFailure(err):
		l.failed(ctx, cr, hs, now)
		if len(after) > 0 {
			l.recordFailures(ctx, cr, after)
		}
		return id, err
	}
	// Not a guess: the backend could not answer, the bcrypt queue was full, the caller gave
	// up. The attempt goes back; but a caller whose key locked meanwhile (failures elsewhere
	// while it queued) is told so, with when to retry, rather than to retry at once.
	l.release(ctx, hs, now)
	if errors.Is(err, authn.ErrBusy) || errors.Is(err, context.DeadlineExceeded) {
		if k, until, ok := l.lockedNow(ctx, ks); ok {
			return identity.Identity{}, l.refuse(ctx, cr, k, until, l.now())
		}
	}
	return id, err
}

// credentialFailure says whether err is a wrong credential (or an unknown user): a guess.
func credentialFailure(err error) bool {
	return errors.Is(err, authn.ErrInvalidCredentials) || errors.Is(err, authn.ErrNoMatch)
}

// release takes back the attempts of hs that were counted. It runs without the request's
// cancellation: a client that hangs up must not leave its attempt counted.
func (l *Lockout) release(ctx context.Context, hs []held, at time.Time) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := l.now()
	if now.Before(at) {
		now = at
	}
	for _, h := range hs {
		if !h.counted {
			continue
		}
		if err := l.st.Release(ctx, h.k.key, h.e, now, h.k.policy); err != nil {
			l.storeFailed(ctx, "taking back a login attempt", err)
		}
	}
}

// lockedNow reads ks from the store and reports the lock that ends last, if any.
func (l *Lockout) lockedNow(ctx context.Context, ks []key) (k key, until time.Time, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.key
	}
	es, err := l.st.Get(ctx, names)
	if err != nil {
		l.storeFailed(ctx, "reading login failure counts", err)
		return key{}, time.Time{}, false
	}
	now := l.now()
	for _, e := range es {
		if !e.LockedAt(now) || !e.LockedUntil.After(until) {
			continue
		}
		for _, c := range ks {
			if c.key == e.Key {
				k, until, ok = c, e.LockedUntil, true
				l.remember(e.Key, e.LockedUntil)
			}
		}
	}
	return k, until, ok
}

// InvalidUnguessable counts a wrong unguessable credential checked elsewhere (a refresh token
// that leads to no live session) toward the address keys of remoteAddr; it is never refused.
func (l *Lockout) InvalidUnguessable(ctx context.Context, remoteAddr string) {
	cr := authn.Credentials{RemoteAddr: remoteAddr}
	l.noteShared(ctx, cr)
	l.recordFailures(ctx, cr, l.keysOf(cr)[1:])
}

// failed finishes the attempts of a wrong guess: they are counted already; a lock one of them
// set is announced; a key the store could not count at the attempt is counted now.
func (l *Lockout) failed(ctx context.Context, cr authn.Credentials, hs []held, at time.Time) {
	l.noteShared(ctx, cr)
	var late []key
	for _, h := range hs {
		if !h.counted {
			late = append(late, h.k)
			continue
		}
		if h.e.LockedAt(at) { // granted, so unlocked before: this attempt set the lock
			l.lockedKey(ctx, cr, h.k, h.e, at)
		}
	}
	if len(late) > 0 {
		l.recordFailures(ctx, cr, late)
	}
}

// recordFailures counts a failure checked without an attempt (an unguessable credential, or
// a key the store failed to count before the check) against ks.
func (l *Lockout) recordFailures(ctx context.Context, cr authn.Credentials, ks []key) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	now := l.now() // after the check, which may have waited for bcrypt
	for _, k := range ks {
		e, err := l.st.RecordFailure(ctx, k.key, now, k.policy)
		if err != nil {
			l.storeFailed(ctx, "counting a failed login", err)
			continue
		}
		if e.LockedAt(now) {
			l.lockedKey(ctx, cr, k, e, now)
		}
	}
}

// lockedKey remembers, counts and audits a lock that a failure set (or lengthened).
func (l *Lockout) lockedKey(ctx context.Context, cr authn.Credentials, k key, e Entry, now time.Time) {
	l.remember(k.key, e.LockedUntil)
	l.locked(k.kind)
	l.audit.InfoContext(ctx, "login locked", "result", "locked", "reason", "too_many_failures", "key", k.kind,
		"key_address", k.addr, "username", cr.Username, "remote_addr", cr.RemoteAddr, "service", cr.Service, "client_id", cr.ClientID,
		"failures", e.Failures, "locked_until", e.LockedUntil.UTC(), "lock_seconds", e.LockedUntil.Sub(now).Seconds())
}

func (l *Lockout) refuse(ctx context.Context, cr authn.Credentials, k key, until, now time.Time) error {
	retry := until.Sub(now)
	l.refused(k.kind)
	l.audit.InfoContext(ctx, "login refused", "result", "refused", "reason", "locked", "key", k.kind,
		"key_address", k.addr, "username", cr.Username, "remote_addr", cr.RemoteAddr, "service", cr.Service, "client_id", cr.ClientID,
		"retry_after_seconds", retry.Seconds())
	return &authn.LockedError{RetryAfter: retry}
}

func (l *Lockout) storeFailed(ctx context.Context, what string, err error) {
	l.storeError()
	l.log.WarnContext(ctx, "lockout store: "+what+" failed", "error", err)
}

// memoLocked reports the lock of ks that ends last, if any is known to last past now.
func (l *Lockout) memoLocked(ks []key, now time.Time) (k key, until time.Time, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range ks {
		if u, found := l.memo[c.key]; found && u.After(now) && u.After(until) {
			k, until, ok = c, u, true
		}
	}
	return k, until, ok
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

// key is one store key of an attempt: its kind, the address or network it counts (what the
// audit event names; for the (account, address) key the address part), and its policy.
type key struct {
	kind, key, addr string
	policy          Policy
}

// keysOf derives the keys of cr: (account, address) first, then the address, then the wider
// IPv6 prefixes. The address key is the client address (an IPv6 client's /64: one host
// commonly holds a whole /64, and per-address counts would be worthless if each of its
// addresses counted apart). The (account, address) key is a hash: users type passwords into
// the user name field, and the store should not keep them. Accounts are compared without
// case, which only ever makes a count stricter.
func (l *Lockout) keysOf(cr authn.Credentials) []key {
	addr := ClientAddr(cr.RemoteAddr)
	user := strings.ToLower(cr.Username)
	// Built on the stack (every login runs this twice): the hashed bytes are what they always
	// were, so the stored keys do not change.
	var stack [256]byte
	b := binary.BigEndian.AppendUint64(stack[:0], uint64(len(user))) // length prefix: ("ab","c") and ("a","bc") must not collide
	b = append(append(b, user...), addr...)
	sum := sha256.Sum256(b)
	const acctPrefix = "acct:"
	var acct [len(acctPrefix) + 43]byte // 43: unpadded base64 of 32 bytes
	copy(acct[:], acctPrefix)
	base64.RawURLEncoding.Encode(acct[len(acctPrefix):], sum[:])
	ks := make([]key, 2, 2+len(l.prefixes))
	ks[0] = key{kind: KindAccountAddress, key: string(acct[:]), addr: addr, policy: l.acct}
	ks[1] = key{kind: KindAddress, key: "addr:" + addr, addr: addr, policy: l.adr}
	if p, err := netip.ParsePrefix(addr); err == nil && p.Addr().Is6() {
		for _, pp := range l.prefixes {
			wide, _ := p.Addr().Prefix(pp.Bits) // cannot fail: Bits is checked in New
			ks = append(ks, key{kind: KindPrefix, key: "addr:" + wide.String(), addr: wide.String(), policy: pp.Policy})
		}
	}
	return ks
}

// ClientAddr is the address a client is counted under: an IPv4 address as it is, an IPv6
// one's /64. A port is dropped. What does not parse (no client address known, an in-process
// peer) is kept as given, so such callers share one count.
func ClientAddr(remote string) string {
	a, ok := parseAddr(remote)
	if !ok {
		if len(remote) > 128 {
			remote = remote[:128]
		}
		return remote
	}
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64) // cannot fail for a 128-bit address
	return p.String()
}

// parseAddr reads an address, with or without a port, unmapped and without a zone.
func parseAddr(remote string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(remote)
	if err != nil {
		ap, perr := netip.ParseAddrPort(remote)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// sharedAddr counts failures per private address over the last minute or so, for the
// warning that a proxy the gateway does not trust stands in front of it.
type sharedAddr struct {
	mu       sync.Mutex
	start    time.Time
	total    int
	by       map[netip.Addr]int
	lastWarn time.Time
}

// sharedAddrMax bounds the addresses counted per minute: past it new ones are not tracked
// (they are many, so none of them has most failures anyway).
const sharedAddrMax = 1024

// noteShared counts a failure from cr's address and warns when one private (or loopback)
// address has most of this minute's failures, at most once a minute.
func (l *Lockout) noteShared(ctx context.Context, cr authn.Credentials) {
	w := l.shared
	if w == nil {
		return
	}
	a, ok := parseAddr(cr.RemoteAddr)
	now := l.now()
	w.mu.Lock()
	if now.Sub(w.start) >= sharedAddrEvery || now.Before(w.start) {
		w.start, w.total = now, 0
		clear(w.by)
	}
	w.total++
	n := 0
	if ok && (a.IsPrivate() || a.IsLoopback()) {
		if _, seen := w.by[a]; seen || len(w.by) < sharedAddrMax {
			w.by[a]++
			n = w.by[a]
		}
	}
	total := w.total
	warn := w.total >= sharedAddrMin && 2*n > w.total &&
		(w.lastWarn.IsZero() || now.Sub(w.lastWarn) >= sharedAddrEvery || now.Before(w.lastWarn))
	if warn {
		w.lastWarn = now
	}
	w.mu.Unlock()
	if warn {
		l.log.WarnContext(ctx, "most failed logins come from one private address while gateway.trusted_proxies is empty: "+
			"if a proxy or load balancer forwards to the gateway, every client has its address and one client's failures lock "+
			"everyone out; list it in gateway.trusted_proxies", "address", a.String(), "failures", n, "of", total)
	}
}
