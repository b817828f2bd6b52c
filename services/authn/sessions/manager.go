package sessions

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/internal/lastuse"
)

// TokenPrefix starts every refresh token so secret scanners can recognize a leaked one.
const TokenPrefix = "pcr_"

// tokenBytes is the refresh token's entropy: 256 bits.
const tokenBytes = 32

// Defaults for Options fields left zero.
const (
	DefaultIdleTTL       = 30 * 24 * time.Hour
	DefaultMaxTTL        = 90 * 24 * time.Hour
	DefaultFlushInterval = time.Second
	// gcInterval is how often the flush loop deletes expired sessions.
	gcInterval = time.Hour
)

// Options configure a Manager. Zero values get the defaults above.
type Options struct {
	IdleTTL, MaxTTL time.Duration
	Now             func() time.Time
	Logger          *slog.Logger
	// FlushInterval is how often recorded last uses are written to the store in one batch.
	FlushInterval time.Duration
}

// Manager issues and checks refresh tokens over a Store.
//
// Lookup always reads the store, so a revocation (by any replica sharing the database) takes
// effect at the next request. Only "last used" is kept in memory, and written in batches, so a
// token request costs one indexed read and no write.
type Manager struct {
	st      Store
	o       Options
	lastUse *lastuse.Writer[Touch] // last use per session id not yet written

	mu     sync.Mutex
	lastGC time.Time
}

// NewManager starts the background loop that flushes last uses; Close stops it.
func NewManager(st Store, o Options) *Manager {
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultIdleTTL
	}
	if o.MaxTTL <= 0 {
		o.MaxTTL = DefaultMaxTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	m := &Manager{st: st, o: o, lastGC: o.Now()}
	m.lastUse = lastuse.New(lastuse.Options[Touch]{Write: st.Touch, Interval: o.FlushInterval, OnTick: m.gc, What: "session", Logger: o.Logger})
	return m
}

// Store is the store under the manager, for the admin API.
func (m *Manager) Store() Store { return m.st }

// Issue creates a session and returns its refresh token: "pcr_" + base64url(32 random bytes).
// The token is returned once; only its hash is stored. fingerprint is the account's credential
// fingerprint at login (identity.Fingerprint), which every refresh compares.
func (m *Manager) Issue(ctx context.Context, subject, backend, fingerprint, service, clientID, remoteAddr string) (string, Session, error) {
	return m.IssueUntil(ctx, subject, backend, fingerprint, service, clientID, remoteAddr, 0)
}

// IssueUntil is Issue with a session that lives at most maxTTL: a sign-in whose own lifetime
// is shorter than the manager's (sso.session_max_ttl) ends at the earlier of the two. maxTTL
// ≤ 0 or above Options.MaxTTL is Options.MaxTTL: a caller cannot extend sessions.max_ttl.
func (m *Manager) IssueUntil(ctx context.Context, subject, backend, fingerprint, service, clientID, remoteAddr string, maxTTL time.Duration) (string, Session, error) {
	if maxTTL <= 0 || maxTTL > m.o.MaxTTL {
		maxTTL = m.o.MaxTTL
	}
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", Session{}, fmt.Errorf("sessions: random token: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	var idb [16]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", Session{}, fmt.Errorf("sessions: random id: %w", err)
	}
	now := m.o.Now().UTC().Truncate(time.Microsecond)
	s := Session{
		ID:             "ses_" + base64.RawURLEncoding.EncodeToString(idb[:]),
		TokenHash:      HashToken(token),
		Subject:        subject,
		Backend:        backend,
		Service:        service,
		ClientID:       clientID,
		CreatedAt:      now,
		LastUsedAt:     now,
		LastRemoteAddr: remoteAddr,
		ExpiresAt:      now.Add(maxTTL),
		Fingerprint:    fingerprint,
		FingerprintSet: true,
	}
	s.IdleExpiresAt = minTime(now.Add(m.o.IdleTTL), s.ExpiresAt)
	if err := m.st.Create(ctx, s); err != nil {
		return "", Session{}, fmt.Errorf("sessions: create: %w", err)
	}
	return token, s, nil
}

// Lookup finds the live session of token for service and records its use. Malformed, unknown,
// expired (idle or absolute) and other-service tokens are all ErrInvalidToken; a store failure
// is returned wrapped. clientID is recorded nowhere on purpose: clients refresh under another
// client_id than they logged in with (docker vs containerd-client), so it is not bound.
func (m *Manager) Lookup(ctx context.Context, token, service, clientID, remoteAddr string) (Session, error) {
	_ = clientID
	if !wellFormed(token) {
		return Session{}, ErrInvalidToken
	}
	h := HashToken(token)
	s, err := m.st.ByTokenHash(ctx, h)
	switch {
	case errors.Is(err, ErrNotFound):
		return Session{}, ErrInvalidToken
	case err != nil:
		return Session{}, fmt.Errorf("sessions: lookup: %w", err)
	}
	// The store found it by an index on the hash; comparing again in constant time costs nothing
	// and keeps a store bug from accepting another token.
	if subtle.ConstantTimeCompare(s.TokenHash[:], h[:]) != 1 {
		return Session{}, ErrInvalidToken
	}
	now := m.o.Now().UTC().Truncate(time.Microsecond)

	valid := false
	m.lastUse.Update(s.ID, func(p Touch, ok bool) (Touch, bool) {
		if ok && p.IdleExpiresAt.After(s.IdleExpiresAt) {
			// A use not yet flushed already extended the idle expiry.
			s.IdleExpiresAt, s.LastUsedAt, s.LastRemoteAddr = p.IdleExpiresAt, p.LastUsedAt, p.RemoteAddr
		}
		if !now.Before(s.ExpiresAt) || !now.Before(s.IdleExpiresAt) || s.Service != service {
			return p, false
		}
		valid = true
		t := Touch{ID: s.ID, LastUsedAt: now, RemoteAddr: remoteAddr, IdleExpiresAt: minTime(now.Add(m.o.IdleTTL), s.ExpiresAt)}
		s.LastUsedAt, s.LastRemoteAddr, s.IdleExpiresAt = t.LastUsedAt, t.RemoteAddr, t.IdleExpiresAt
		return t, !ok || !p.LastUsedAt.After(now)
	})
	if !valid {
		return Session{}, ErrInvalidToken
	}
	return s, nil
}

// Close stops the flush loop and writes the last uses still held. Safe to call more than once.
func (m *Manager) Close(ctx context.Context) error { return m.lastUse.Close(ctx) }

// gc deletes expired sessions once per gcInterval (of the injected clock).
func (m *Manager) gc(ctx context.Context) {
	now := m.o.Now()
	m.mu.Lock()
	due := now.Sub(m.lastGC) >= gcInterval
	if due {
		m.lastGC = now
	}
	m.mu.Unlock()
	if !due {
		return
	}
	n, err := m.st.DeleteExpired(ctx, now)
	if err != nil {
		m.o.Logger.Warn("deleting expired sessions failed", "err", err)
		return
	}
	if n > 0 {
		m.o.Logger.Info("deleted expired sessions", "count", n)
	}
}

// wellFormed checks the shape of a refresh token before any store read, so garbage costs nothing.
func wellFormed(token string) bool {
	body, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok || len(body) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(body)
	return err == nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
