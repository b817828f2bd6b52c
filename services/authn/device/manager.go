package device

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/internal/secret"
	"github.com/portcullis-dev/portcullis/services/authn/internal/textlimit"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
)

var (
	// ErrInvalidGrant: the device code is unknown, malformed, spent, or another client's.
	ErrInvalidGrant = errors.New("device: invalid grant")
	// ErrExpired: the flow's time ran out before it was approved.
	ErrExpired = errors.New("device: expired")
	// ErrSlowDown: polled sooner than the interval after the previous poll.
	ErrSlowDown = errors.New("device: slow down")
	// ErrPending: nobody has approved or denied the flow yet.
	ErrPending = errors.New("device: authorization pending")
	// ErrDenied: the person denied the flow.
	ErrDenied = errors.New("device: access denied")
	// ErrRateLimited: too many wrong user codes from the caller's address.
	ErrRateLimited = errors.New("device: too many wrong user codes")
	// ErrAccountEnded is what an IssueFunc returns (wrapped or not) when the person who
	// approved the flow can no longer sign in: their account is gone or disabled. The device
	// is then answered access_denied.
	ErrAccountEnded = errors.New("device: account can no longer sign in")
)

// InvalidError is a request the manager refuses as malformed. Msg is written for the caller
// and safe to return to them.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return "device: " + e.Msg }

// Limits of what a device may ask for; they bound what the store keeps per flow.
const (
	maxClientIDLen  = 128
	maxServiceLen   = 255
	maxScopes       = 32
	maxScopeLen     = 512
	maxUserAgentLen = 256
	maxClientAddr   = 256
)

const (
	deviceCodePrefix = "pcd_"
	deviceCodeBytes  = 32
	// createAttempts: a user code collision among live flows is rare (2.56e10 codes); a few
	// fresh draws make a repeated one vanishingly unlikely.
	createAttempts = 5
	// sweepEvery is how often Start deletes expired flows; each one is already refused by
	// its ExpiresAt, the sweep only keeps the table small.
	sweepEvery = time.Minute
	// limiterEntries bounds the wrong-code limiter's memory under a flood of addresses.
	limiterEntries = 100_000
)

// Options tune a Manager; zero values take the defaults.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the audit lines (log_type=audit) and failures (default: discarded).
	Logger *slog.Logger
	// ExpiresIn is how long a flow lives (default 10m).
	ExpiresIn time.Duration
	// Interval is the least time between two polls (default 5s).
	Interval time.Duration
	// MaxWrongCodes is how many wrong user codes an address may send per WrongCodeWindow
	// (default 10) before Lookup and Decide answer ErrRateLimited.
	MaxWrongCodes int
	// WrongCodeWindow is the limiter's window (default 10m).
	WrongCodeWindow time.Duration
	// MaxStarts is how many flows an address may start per WrongCodeWindow (default 30)
	// before Start answers ErrRateLimited: starting needs no credential, and every flow is a
	// row in the shared store until it expires.
	MaxStarts int
	// KnownService, when set, says whether Start may start a flow for a registry service;
	// an unknown one is an InvalidError. Nil: any service.
	KnownService func(service string) bool
}

// StartRequest is what a device sends to start a flow.
type StartRequest struct {
	ClientID, Service     string
	Scopes                []string
	ClientAddr, UserAgent string
}

// Approver is the signed-in person who decides a flow: the session is issued for their
// subject, at their backend, with the credential fingerprint they signed in with.
type Approver struct {
	Subject, Backend, Fingerprint string
}

// Manager runs device flows over a Store: it makes the codes, enforces the poll interval,
// expiry and single use, and limits wrong user codes per address.
type Manager struct {
	st    Store
	o     Options
	log   *slog.Logger
	audit *slog.Logger

	mu        sync.Mutex
	lastSweep time.Time
	wrong     *limiter
	starts    *limiter
}

// NewManager returns a manager over st.
func NewManager(st Store, o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ExpiresIn <= 0 {
		o.ExpiresIn = 10 * time.Minute
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.MaxWrongCodes <= 0 {
		o.MaxWrongCodes = 10
	}
	if o.WrongCodeWindow <= 0 {
		o.WrongCodeWindow = 10 * time.Minute
	}
	if o.MaxStarts <= 0 {
		o.MaxStarts = 30
	}
	return &Manager{st: st, o: o, log: o.Logger, audit: o.Logger.With("log_type", "audit"),
		wrong:  newLimiter(o.MaxWrongCodes, o.WrongCodeWindow, limiterEntries),
		starts: newLimiter(o.MaxStarts, o.WrongCodeWindow, limiterEntries)}
}

// now is the clock in UTC to the microsecond, as the SQL stores keep times, so a flow read
// back compares the same as the one written.
func (m *Manager) now() time.Time { return m.o.Now().UTC().Truncate(time.Microsecond) }

// Start makes a new flow and returns its device code (the only time it exists in the clear)
// and the flow as stored.
func (m *Manager) Start(ctx context.Context, r StartRequest) (string, Authorization, error) {
	if err := m.validate(r); err != nil {
		return "", Authorization{}, err
	}
	now := m.now()
	key := limiterKey(r.ClientAddr)
	m.mu.Lock()
	limited := m.starts.limited(key, now)
	if !limited {
		m.starts.add(key, now)
	}
	m.mu.Unlock()
	if limited {
		return "", Authorization{}, ErrRateLimited
	}
	a := Authorization{
		ClientID: r.ClientID, Service: r.Service, Scopes: append([]string(nil), r.Scopes...),
		ClientAddr: textlimit.Truncate(r.ClientAddr, maxClientAddr), UserAgent: textlimit.Truncate(r.UserAgent, maxUserAgentLen),
		CreatedAt: now, ExpiresAt: now.Add(m.o.ExpiresIn), Interval: m.o.Interval, State: Pending,
	}
	var code string
	for attempt := 1; ; attempt++ {
		var err error
		if code, err = newDeviceCode(); err != nil {
			return "", Authorization{}, err
		}
		if a.UserCode, err = randomUserCode(); err != nil {
			return "", Authorization{}, err
		}
		a.DeviceCodeHash = HashCode(code)
		err = m.st.Create(ctx, a)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrExists) || attempt == createAttempts {
			return "", Authorization{}, fmt.Errorf("device: create flow: %w", err)
		}
	}
	m.audit.InfoContext(ctx, "device flow started", "client_id", a.ClientID, "service", a.Service,
		"scopes", a.Scopes, "remote_addr", a.ClientAddr)
	m.sweep(ctx, now)
	return code, a, nil
}

func (m *Manager) validate(r StartRequest) error {
	switch {
	case len(r.ClientID) > maxClientIDLen:
		return &InvalidError{Msg: fmt.Sprintf("client_id is longer than %d bytes", maxClientIDLen)}
	case r.Service == "":
		return &InvalidError{Msg: "service is required"}
	case len(r.Service) > maxServiceLen:
		return &InvalidError{Msg: fmt.Sprintf("service is longer than %d bytes", maxServiceLen)}
	case len(r.Scopes) > maxScopes:
		return &InvalidError{Msg: fmt.Sprintf("more than %d scopes", maxScopes)}
	}
	for _, s := range r.Scopes {
		if len(s) > maxScopeLen {
			return &InvalidError{Msg: fmt.Sprintf("a scope is longer than %d bytes", maxScopeLen)}
		}
	}
	if m.o.KnownService != nil && !m.o.KnownService(r.Service) {
		return &InvalidError{Msg: "unknown service"}
	}
	return nil
}

// sweep deletes expired flows at most once per sweepEvery per replica. A failure is logged,
// not returned: the flow was started, and expired flows are refused whether swept or not.
func (m *Manager) sweep(ctx context.Context, now time.Time) {
	m.mu.Lock()
	due := m.lastSweep.IsZero() || now.Sub(m.lastSweep) >= sweepEvery
	if due {
		m.lastSweep = now
	}
	m.mu.Unlock()
	if !due {
		return
	}
	if _, err := m.st.DeleteExpired(ctx, now); err != nil {
		m.log.WarnContext(ctx, "device: deleting expired flows failed", "error", err)
	}
}

// Poll is the device asking whether its flow was decided. An approved flow is returned once:
// it is deleted by this poll, and a concurrent poll that loses the race gets ErrInvalidGrant.
func (m *Manager) Poll(ctx context.Context, deviceCode, clientID string) (Authorization, error) {
	if !wellFormedDeviceCode(deviceCode) {
		return Authorization{}, ErrInvalidGrant
	}
	h := HashCode(deviceCode)
	now := m.now()
	a, err := m.st.Poll(ctx, h, now)
	switch {
	case errors.Is(err, ErrNotFound):
		return Authorization{}, ErrInvalidGrant
	case err != nil:
		return Authorization{}, fmt.Errorf("device: poll: %w", err)
	}
	// Another client holding this device code learns nothing of the flow's state.
	if a.ClientID != clientID {
		return Authorization{}, ErrInvalidGrant
	}
	if !now.Before(a.ExpiresAt) {
		m.drop(ctx, h)
		return Authorization{}, ErrExpired
	}
	switch a.State {
	case Pending:
		// slow_down is "a variant of authorization_pending" (RFC 8628 §3.5): only a flow
		// still pending is answered so, a decided one is answered at once. The store records
		// every poll, so a client that keeps polling too fast keeps getting slow_down.
		if !a.LastPollAt.IsZero() && now.Sub(a.LastPollAt) < a.Interval {
			return Authorization{}, ErrSlowDown
		}
		return Authorization{}, ErrPending
	case Denied:
		m.drop(ctx, h)
		return Authorization{}, ErrDenied
	case Approved:
		got, err := m.st.Delete(ctx, h)
		switch {
		case errors.Is(err, ErrNotFound):
			return Authorization{}, ErrInvalidGrant
		case err != nil:
			return Authorization{}, fmt.Errorf("device: consume flow: %w", err)
		case got.State != Approved:
			return Authorization{}, ErrInvalidGrant
		}
		return got, nil
	default:
		return Authorization{}, fmt.Errorf("device: flow in unknown state %q", a.State)
	}
}

// drop deletes a flow that is over (expired, denied); a concurrent poll may have done it.
func (m *Manager) drop(ctx context.Context, h [32]byte) {
	if _, err := m.st.Delete(ctx, h); err != nil && !errors.Is(err, ErrNotFound) {
		m.log.WarnContext(ctx, "device: deleting a finished flow failed", "error", err)
	}
}

// Lookup finds a pending flow by a user code as a person typed it, for the approval page.
// Unknown, expired and decided codes are all ErrNotFound and count as wrong codes for addr.
func (m *Manager) Lookup(ctx context.Context, userCode, addr string) (Authorization, error) {
	now := m.now()
	key := limiterKey(addr)
	if m.limited(key, now) {
		return Authorization{}, ErrRateLimited
	}
	return m.pending(ctx, userCode, key, now)
}

// pending is the flow a typed user code names if it is pending and live; otherwise the code
// is counted against key and the answer is ErrNotFound.
func (m *Manager) pending(ctx context.Context, userCode, key string, now time.Time) (Authorization, error) {
	n, ok := NormalizeUserCode(userCode)
	if !ok {
		return Authorization{}, m.wrongCode(key, now)
	}
	a, err := m.st.ByUserCode(ctx, n)
	switch {
	case errors.Is(err, ErrNotFound):
		return Authorization{}, m.wrongCode(key, now)
	case err != nil:
		return Authorization{}, fmt.Errorf("device: find flow: %w", err)
	case a.State != Pending || !now.Before(a.ExpiresAt):
		return Authorization{}, m.wrongCode(key, now)
	}
	return a, nil
}

// Decide approves or denies a pending flow as who, from addr. The rules of Lookup apply: a
// code that is unknown, expired or already decided is ErrNotFound and counts as wrong.
func (m *Manager) Decide(ctx context.Context, userCode, addr string, approve bool, who Approver) (Authorization, error) {
	if who.Subject == "" {
		// The approval page always has a signed-in person; a decision by nobody is a bug.
		return Authorization{}, errors.New("device: decision without a subject")
	}
	now := m.now()
	key := limiterKey(addr)
	if m.limited(key, now) {
		return Authorization{}, ErrRateLimited
	}
	// The store's Decide does not look at ExpiresAt: reading the flow first keeps an expired
	// flow from being approved.
	a, err := m.pending(ctx, userCode, key, now)
	if err != nil {
		return Authorization{}, err
	}
	a, err = m.st.Decide(ctx, a.UserCode, Decision{Approve: approve, Subject: who.Subject,
		Backend: who.Backend, Fingerprint: who.Fingerprint, At: now, Addr: addr})
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNotPending):
		return Authorization{}, m.wrongCode(key, now)
	case err != nil:
		return Authorization{}, fmt.Errorf("device: decide flow: %w", err)
	}
	msg := "device flow denied"
	if approve {
		msg = "device flow approved"
	}
	m.audit.InfoContext(ctx, msg, "subject", who.Subject, "backend", who.Backend,
		"client_id", a.ClientID, "service", a.Service, "scopes", a.Scopes,
		"remote_addr", addr, "device_addr", a.ClientAddr)
	return a, nil
}

func (m *Manager) limited(key string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.wrong.limited(key, now)
}

// wrongCode counts a wrong code for key and returns ErrNotFound.
func (m *Manager) wrongCode(key string, now time.Time) error {
	m.mu.Lock()
	m.wrong.add(key, now)
	m.mu.Unlock()
	return ErrNotFound
}

func newDeviceCode() (string, error) {
	code, err := secret.New(deviceCodePrefix, deviceCodeBytes)
	if err != nil {
		return "", fmt.Errorf("device: device code: %w", err)
	}
	return code, nil
}

// wellFormedDeviceCode spares the store a lookup for what cannot be a device code.
func wellFormedDeviceCode(s string) bool {
	return secret.WellFormed(s, deviceCodePrefix, deviceCodeBytes)
}

// limiterKey is the address wrong codes and starts are counted against: lockout's rule (the
// IP without its port, an IPv6 address by its /64), so an address is one client to both.
func limiterKey(addr string) string { return lockout.ClientAddr(addr) }

// limiter counts wrong user codes per address in fixed windows. It is in memory, per
// replica: behind N replicas an address gets up to N times the limit, which still leaves
// guessing one of 20^8 codes in a flow's ten minutes hopeless. It holds at most max
// addresses; at the cap the one whose window started first is forgotten. Checking and
// counting are two steps, so concurrent requests from one address can overshoot the limit
// by how many are in flight. Not safe for concurrent use: Manager.mu guards it.
type limiter struct {
	limit  int
	window time.Duration
	max    int
	byKey  map[string]*list.Element
	// order holds *limiterEntry oldest window first, so expired entries and the eviction
	// victim are at the front.
	order *list.List
}

type limiterEntry struct {
	key   string
	start time.Time
	count int
}

func newLimiter(limit int, window time.Duration, max int) *limiter {
	return &limiter{limit: limit, window: window, max: max, byKey: map[string]*list.Element{}, order: list.New()}
}

func (l *limiter) limited(key string, now time.Time) bool {
	el, ok := l.byKey[key]
	if !ok {
		return false
	}
	e := el.Value.(*limiterEntry)
	return now.Sub(e.start) < l.window && e.count >= l.limit
}

func (l *limiter) add(key string, now time.Time) {
	l.prune(now)
	if el, ok := l.byKey[key]; ok {
		e := el.Value.(*limiterEntry)
		if now.Sub(e.start) < l.window {
			e.count++
			return
		}
		e.start, e.count = now, 1
		l.order.MoveToBack(el)
		return
	}
	for l.order.Len() >= l.max {
		l.remove(l.order.Front())
	}
	l.byKey[key] = l.order.PushBack(&limiterEntry{key: key, start: now, count: 1})
}

// prune forgets the windows that are over.
func (l *limiter) prune(now time.Time) {
	for el := l.order.Front(); el != nil; el = l.order.Front() {
		if now.Sub(el.Value.(*limiterEntry).start) < l.window {
			return
		}
		l.remove(el)
	}
}

func (l *limiter) remove(el *list.Element) {
	delete(l.byKey, el.Value.(*limiterEntry).key)
	l.order.Remove(el)
}
