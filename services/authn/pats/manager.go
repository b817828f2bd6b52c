package pats

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/lastuse"
)

// Token events, as passed to Options.Event; metrics hook in there.
const (
	EventCreated = "created"
	EventRevoked = "revoked"
	EventRefused = "refused"
	// EventOwnerEnded: an owner's tokens were deleted because the account ended.
	EventOwnerEnded = "owner_ended"
)

// Backend is the identity.Backend of a login with a token, what policies see.
const Backend = "pat"

// Defaults for Options fields left zero.
const (
	DefaultRecheckAfter  = time.Second
	DefaultFlushInterval = time.Second
)

// Options configure a Manager. Zero values get the defaults.
type Options struct {
	Now func() time.Time
	// Logger gets the audit events and store warnings; never a secret.
	Logger *slog.Logger
	// Event is called once per event (EventCreated, …).
	Event func(event string)
	// MaxTTL caps a token's lifetime (sso.pat.max_ttl); 0: DefaultMaxTTL.
	MaxTTL time.Duration
	// Owner re-reads the account a subject names in the authn backends, as a session refresh
	// does: ErrNoOwner (wrapped or not) when it is gone or disabled, another error when that
	// cannot be told now. It is asked at creation and at every login the cache does not
	// answer. nil: every owner is ErrNoOwner.
	Owner func(ctx context.Context, subject string) (identity.Identity, error)
	// RecheckAfter bounds how long a login's answer may be relied on (the login cache).
	RecheckAfter time.Duration
	// FlushInterval is how often recorded last uses are written in one batch.
	FlushInterval time.Duration
}

// Manager creates, checks and revokes tokens over a Store. Login always reads the store and
// the owner's account; only "last used" is kept in memory and written in batches.
type Manager struct {
	st      Store
	o       Options
	audit   *slog.Logger
	lastUse *lastuse.Writer[Touch]
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
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.Owner == nil {
		o.Owner = func(context.Context, string) (identity.Identity, error) { return identity.Identity{}, ErrNoOwner }
	}
	if o.RecheckAfter <= 0 {
		o.RecheckAfter = DefaultRecheckAfter
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	return &Manager{st: st, o: o, audit: o.Logger.With("log_type", "audit"),
		lastUse: lastuse.New(lastuse.Options[Touch]{Write: st.Touch, Interval: o.FlushInterval, What: "personal access token", Logger: o.Logger})}
}

// Now is the manager's clock, truncated to the stores' precision.
func (m *Manager) Now() time.Time { return m.o.Now().UTC().Truncate(time.Microsecond) }

// MaxTTL is the longest lifetime a token may be given.
func (m *Manager) MaxTTL() time.Duration { return m.o.MaxTTL }

// Spec is what is asked for in a new token.
type Spec struct {
	Owner     string
	Name      string
	ExpiresIn time.Duration // required, at most Options.MaxTTL
	Scopes    []string      // narrowing, ParseScope's form; none: no narrowing
}

// Create makes a token for an owner the backends know and returns its secret, which exists
// nowhere else: only its hash is stored.
func (m *Manager) Create(ctx context.Context, spec Spec) (string, PAT, error) {
	var errs []string
	for _, err := range []error{ValidateOwner(spec.Owner), ValidateName(spec.Name)} {
		var inv *InvalidError
		if errors.As(err, &inv) {
			errs = append(errs, inv.Msg)
		}
	}
	switch {
	case spec.ExpiresIn == 0:
		errs = append(errs, "expires_in is required")
	case spec.ExpiresIn < minExpiresIn:
		errs = append(errs, "expires_in must be at least 1s")
	case spec.ExpiresIn > m.o.MaxTTL:
		errs = append(errs, fmt.Sprintf("expires_in must be at most %s (sso.pat.max_ttl)", m.o.MaxTTL))
	}
	scopes, err := ParseScopes(spec.Scopes)
	if inv := (*InvalidError)(nil); errors.As(err, &inv) {
		errs = append(errs, inv.Msg)
	}
	if len(errs) > 0 {
		return "", PAT{}, &InvalidError{strings.Join(errs, "; ")}
	}
	if _, err := m.owner(ctx, spec.Owner); err != nil {
		return "", PAT{}, err
	}
	existing, err := m.st.List(ctx, spec.Owner)
	if err != nil {
		return "", PAT{}, err
	}
	if len(existing) >= MaxPerOwner {
		return "", PAT{}, &InvalidError{fmt.Sprintf("the owner has %d tokens already, the most allowed: revoke one first", MaxPerOwner)}
	}
	secret, err := NewSecret()
	if err != nil {
		return "", PAT{}, err
	}
	id, err := newID()
	if err != nil {
		return "", PAT{}, err
	}
	now := m.Now()
	p := PAT{ID: id, Owner: spec.Owner, Name: spec.Name, SecretHash: HashSecret(secret), Scopes: scopes,
		CreatedAt: now, ExpiresAt: now.Add(spec.ExpiresIn).Truncate(time.Microsecond)}
	if err := m.st.Create(ctx, p); err != nil {
		return "", PAT{}, err
	}
	m.o.Event(EventCreated)
	m.audit.InfoContext(ctx, "personal access token created", "owner", p.Owner, "pat", p.Name, "pat_id", p.ID,
		"scopes", EncodeScopes(p.Scopes), "expires_at", p.ExpiresAt)
	return secret, p, nil
}

// owner asks Options.Owner about subject; a gone or disabled account is ErrNoOwner.
func (m *Manager) owner(ctx context.Context, subject string) (identity.Identity, error) {
	id, err := m.o.Owner(ctx, subject)
	switch {
	case errors.Is(err, ErrNoOwner):
		return identity.Identity{}, ErrNoOwner
	case err != nil:
		return identity.Identity{}, fmt.Errorf("pats: reading the owner's account: %w", err)
	case id.Subject != subject: // a resolver must not turn one person into another
		return identity.Identity{}, ErrNoOwner
	}
	return id, nil
}

// List returns an owner's tokens by name.
func (m *Manager) List(ctx context.Context, owner string) ([]PAT, error) {
	if err := ValidateOwner(owner); err != nil {
		return nil, err
	}
	return m.st.List(ctx, owner)
}

// Revoke deletes a token by id (ErrNotFound) and returns it as it was.
func (m *Manager) Revoke(ctx context.Context, id string) (PAT, error) {
	if id == "" || len(id) > maxIDLen {
		return PAT{}, ErrNotFound
	}
	p, err := m.st.Delete(ctx, id)
	if err != nil {
		return PAT{}, err
	}
	m.o.Event(EventRevoked)
	m.audit.InfoContext(ctx, "personal access token revoked", "owner", p.Owner, "pat", p.Name, "pat_id", p.ID)
	return p, nil
}

// Login checks a secret presented under user and returns the identity it logs in as: the
// owner's, as the backends resolve it now, with Backend "pat", the token's name and its
// narrowing. The answer holds until validUntil. Every refusal is ErrRefused with an audit
// event saying why; a store or backend failure is returned wrapped. An owner whose account
// ended has every token deleted.
func (m *Manager) Login(ctx context.Context, user, secret, remoteAddr string) (_ identity.Identity, validUntil time.Time, err error) {
	now := m.Now()
	refuse := func(reason string, attrs ...any) (identity.Identity, time.Time, error) {
		m.o.Event(EventRefused)
		attrs = append(attrs, "result", "refused", "reason", reason, "user", user, "remote_addr", remoteAddr)
		m.audit.InfoContext(ctx, "personal access token login refused", attrs...)
		return identity.Identity{}, time.Time{}, fmt.Errorf("%w: %s", ErrRefused, reason)
	}
	if !WellFormed(secret) {
		return refuse("malformed token")
	}
	h := HashSecret(secret)
	p, err := m.st.ByHash(ctx, h)
	switch {
	case errors.Is(err, ErrNotFound):
		return refuse("unknown token")
	case err != nil:
		return identity.Identity{}, time.Time{}, fmt.Errorf("pats: lookup: %w", err)
	}
	// Found by an index on the hash; comparing again in constant time keeps a store bug from
	// accepting another secret.
	if subtle.ConstantTimeCompare(p.SecretHash[:], h[:]) != 1 {
		return refuse("unknown token")
	}
	attrs := []any{"owner", p.Owner, "pat", p.Name, "pat_id", p.ID}
	// The user name must be the owner's: a token pasted under another name is a mistake or a
	// theft, and logging in as its owner anyway would hide which.
	if user != p.Owner {
		return refuse("user name is not the token's owner", attrs...)
	}
	if p.Expired(now) {
		return refuse("expired", attrs...)
	}
	owner, err := m.owner(ctx, p.Owner)
	if errors.Is(err, ErrNoOwner) {
		m.EndOwner(ctx, p.Owner)
		return refuse("the owner's account ended", attrs...)
	}
	if err != nil {
		return identity.Identity{}, time.Time{}, err
	}
	validUntil = now.Add(m.o.RecheckAfter)
	if p.ExpiresAt.Before(validUntil) {
		validUntil = p.ExpiresAt
	}
	m.lastUse.Update(p.ID, func(t Touch, ok bool) (Touch, bool) {
		if ok && t.LastUsedAt.After(now) {
			return t, false
		}
		return Touch{ID: p.ID, LastUsedAt: now}, true
	})
	return identity.Identity{Subject: owner.Subject, Groups: slices.Clone(owner.Groups), Labels: owner.Labels,
		Backend: Backend, ValidUntil: validUntil, PATName: p.Name, PATScopes: p.Scopes}, validUntil, nil
}

// EndOwner deletes every token of an owner whose account ended: "revoked automatically when
// the person's account ends". A failure is logged; the next login tries again.
func (m *Manager) EndOwner(ctx context.Context, owner string) {
	n, err := m.st.DeleteOwner(context.WithoutCancel(ctx), owner)
	if err != nil {
		m.o.Logger.WarnContext(ctx, "deleting the tokens of an ended account failed", "owner", owner, "error", err)
		return
	}
	m.o.Event(EventOwnerEnded)
	m.audit.InfoContext(ctx, "personal access tokens revoked: the owner's account ended", "owner", owner, "count", n)
}

// Close stops the flush loop and writes the last uses still held. Safe to call more than once.
func (m *Manager) Close(ctx context.Context) error { return m.lastUse.Close(ctx) }
