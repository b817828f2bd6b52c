package robots

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/portcullis-dev/portcullis/internal/lastuse"
)

// Robot events, as passed to Options.Event; metrics hook in there.
const (
	EventCreated = "created"
	EventRevoked = "revoked"
	EventRefused = "refused"
)

// Defaults for Options fields left zero.
const (
	// DefaultRecheckAfter is how long a verified key may be remembered (by the authn login
	// cache, through Identity.ValidUntil) before the store is read again: a revocation, by
	// any replica sharing the store, is effective everywhere within it.
	DefaultRecheckAfter  = time.Second
	DefaultFlushInterval = time.Second
)

// ErrRefused is a key that does not log in: malformed, unknown, revoked, expired, or
// presented under another robot's name. Why is in the audit log, not in the error a caller
// sees.
var ErrRefused = errors.New("robots: key refused")

// Options configure a Manager. Zero values get the defaults.
type Options struct {
	Now func() time.Time
	// Logger gets the audit events (created, revoked, refused) and store warnings.
	Logger *slog.Logger
	// Event is called once per EventCreated, EventRevoked and EventRefused.
	Event func(event string)
	// RecheckAfter bounds how long a Check's answer may be relied on (its validUntil).
	RecheckAfter time.Duration
	// FlushInterval is how often recorded last uses are written to the store in one batch.
	FlushInterval time.Duration
}

// Manager creates, checks and revokes robots over a Store; the robot backend and the admin
// API of one process share it.
//
// Check always reads the store, so a revocation takes effect at the next uncached login.
// Only "last used" is kept in memory and written in batches, at most one write per robot per
// FlushInterval, so a login costs one indexed read and no write.
type Manager struct {
	st      Store
	o       Options
	audit   *slog.Logger
	lastUse *lastuse.Writer[Touch] // last use per robot id not yet written
}

// NewManager starts the loop that writes last uses; Close stops it.
func NewManager(st Store, o Options) *Manager {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Event == nil {
		o.Event = func(string) {}
	}
	if o.RecheckAfter <= 0 {
		o.RecheckAfter = DefaultRecheckAfter
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	return &Manager{st: st, o: o, audit: o.Logger.With("log_type", "audit"),
		lastUse: lastuse.New(lastuse.Options[Touch]{Write: st.Touch, Interval: o.FlushInterval, What: "robot", Logger: o.Logger})}
}

// Now is the manager's clock, truncated to the stores' precision.
func (m *Manager) Now() time.Time { return m.o.Now().UTC().Truncate(time.Microsecond) }

// Create makes a robot from spec and returns its key, which exists nowhere else: only its
// hash is stored.
func (m *Manager) Create(ctx context.Context, spec Spec) (string, Robot, error) {
	if err := spec.Validate(); err != nil {
		return "", Robot{}, err
	}
	key, err := NewKey()
	if err != nil {
		return "", Robot{}, err
	}
	id, err := newID()
	if err != nil {
		return "", Robot{}, err
	}
	now := m.Now()
	r := Robot{ID: id, Name: spec.Name, KeyHash: HashKey(key), CreatedAt: now}
	if len(spec.Groups) > 0 {
		r.Groups = append([]string(nil), spec.Groups...)
	}
	if len(spec.Labels) > 0 {
		r.Labels = make(map[string]string, len(spec.Labels))
		for k, v := range spec.Labels {
			r.Labels[k] = v
		}
	}
	if spec.ExpiresIn > 0 {
		r.ExpiresAt = now.Add(spec.ExpiresIn).Truncate(time.Microsecond)
	}
	if err := m.st.Create(ctx, r); err != nil {
		return "", Robot{}, err
	}
	m.o.Event(EventCreated)
	m.audit.InfoContext(ctx, "robot created", "robot", r.Name, "robot_id", r.ID, "subject", r.Subject(),
		"groups", r.Groups, "labels", r.Labels, "expires_at", r.ExpiresAt)
	return key, r, nil
}

// Get finds a robot by name, revoked or not (ErrNotFound).
func (m *Manager) Get(ctx context.Context, name string) (Robot, error) {
	if err := ValidateName(name); err != nil {
		return Robot{}, ErrNotFound // no robot can have it
	}
	return m.st.Get(ctx, name)
}

// List pages through every robot by name.
func (m *Manager) List(ctx context.Context, o ListOptions) ([]Robot, string, error) {
	o.PageSize = PageSize(o.PageSize)
	return m.st.List(ctx, o)
}

// Revoke ends a robot's key. Revoking a revoked robot changes nothing and is no error;
// revoked says whether this call did it.
func (m *Manager) Revoke(ctx context.Context, name string) (r Robot, revoked bool, err error) {
	if ValidateName(name) != nil {
		return Robot{}, false, ErrNotFound
	}
	r, revoked, err = m.st.Revoke(ctx, name, m.Now())
	if err != nil || !revoked {
		return r, false, err
	}
	m.o.Event(EventRevoked)
	m.audit.InfoContext(ctx, "robot revoked", "robot", r.Name, "robot_id", r.ID, "subject", r.Subject())
	return r, true, nil
}

// Check finds the robot whose key was presented under user, and records its use. The answer
// holds until validUntil (RecheckAfter from now, or the robot's expiry if sooner); whatever
// remembers it must not use it longer. Every refusal is ErrRefused, with an audit event
// saying why; a store failure is returned wrapped.
func (m *Manager) Check(ctx context.Context, user, key, remoteAddr string) (r Robot, validUntil time.Time, err error) {
	now := m.Now() // before the read: the answer reflects the store from now on
	refuse := func(reason string, attrs ...any) (Robot, time.Time, error) {
		m.o.Event(EventRefused)
		attrs = append(attrs, "result", "refused", "reason", reason, "user", user, "remote_addr", remoteAddr)
		m.audit.InfoContext(ctx, "robot login refused", attrs...)
		return Robot{}, time.Time{}, fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	if !WellFormed(key) {
		return refuse("malformed key")
	}
	h := HashKey(key)
	r, err = m.st.ByKeyHash(ctx, h)
	switch {
	case errors.Is(err, ErrNotFound):
		return refuse("unknown key")
	case err != nil:
		return Robot{}, time.Time{}, fmt.Errorf("robots: lookup: %w", err)
	}
	// The store found it by an index on the hash; comparing again in constant time costs
	// nothing and keeps a store bug from accepting another key.
	if subtle.ConstantTimeCompare(r.KeyHash[:], h[:]) != 1 {
		return refuse("unknown key")
	}
	attrs := []any{"robot", r.Name, "robot_id", r.ID}
	// docker login needs a user name; it must be the robot's, so a key pasted into the wrong
	// job's settings fails loudly instead of logging in as another robot.
	if user != r.Name {
		return refuse("user name is not the robot's name", attrs...)
	}
	switch r.StateAt(now) {
	case StateRevoked:
		return refuse("revoked", attrs...)
	case StateExpired:
		return refuse("expired", attrs...)
	}
	validUntil = now.Add(m.o.RecheckAfter)
	if !r.ExpiresAt.IsZero() && r.ExpiresAt.Before(validUntil) {
		validUntil = r.ExpiresAt
	}
	m.lastUse.Update(r.ID, func(p Touch, ok bool) (Touch, bool) {
		if ok && p.LastUsedAt.After(now) {
			return p, false
		}
		return Touch{ID: r.ID, LastUsedAt: now}, true
	})
	if r.LastUsedAt.Before(now) {
		r.LastUsedAt = now
	}
	return r, validUntil, nil
}

// Close stops the flush loop and writes the last uses still held. Safe to call more than once.
func (m *Manager) Close(ctx context.Context) error { return m.lastUse.Close(ctx) }
