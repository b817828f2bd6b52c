package storetest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// Memory is an in-memory sessions.Store for tests; it keeps the contract Run checks (the
// same microsecond precision and uniqueness as the SQL stores).
type Memory struct {
	mu   sync.Mutex
	byID map[string]sessions.Session
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{byID: map[string]sessions.Session{}} }

var _ sessions.Store = (*Memory)(nil)

// errDuplicate is what a second session with the same id or token hash gets, as the SQL
// stores' unique constraints refuse it.
var errDuplicate = errors.New("storetest: duplicate session id or token hash")

// us keeps what the SQL stores keep: UTC, whole microseconds.
func us(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()).UTC() }

func (m *Memory) Create(_ context.Context, s sessions.Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.byID {
		if o.ID == s.ID || o.TokenHash == s.TokenHash {
			return errDuplicate
		}
	}
	s.CreatedAt, s.LastUsedAt, s.IdleExpiresAt, s.ExpiresAt = us(s.CreatedAt), us(s.LastUsedAt), us(s.IdleExpiresAt), us(s.ExpiresAt)
	if !s.FingerprintSet {
		s.Fingerprint = ""
	}
	m.byID[s.ID] = s
	return nil
}

func (m *Memory) ByTokenHash(_ context.Context, h [32]byte) (sessions.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.byID {
		if s.TokenHash == h {
			return s, nil
		}
	}
	return sessions.Session{}, sessions.ErrNotFound
}

func (m *Memory) Get(_ context.Context, id string) (sessions.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.byID[id]
	if !ok {
		return sessions.Session{}, sessions.ErrNotFound
	}
	return s, nil
}

func (m *Memory) List(_ context.Context, o sessions.ListOptions) ([]sessions.Session, string, error) {
	after, afterID, paged, err := sessions.DecodePageToken(o)
	if err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	var all []sessions.Session
	for _, s := range m.byID {
		if o.Subject != "" && s.Subject != o.Subject {
			continue
		}
		if paged && (s.CreatedAt.Before(after) || s.CreatedAt.Equal(after) && s.ID <= afterID) {
			continue
		}
		all = append(all, s)
	}
	m.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if !all[i].CreatedAt.Equal(all[j].CreatedAt) {
			return all[i].CreatedAt.Before(all[j].CreatedAt)
		}
		return all[i].ID < all[j].ID
	})
	size := sessions.PageSize(o.PageSize)
	if len(all) <= size {
		return all, "", nil
	}
	all = all[:size]
	return all, sessions.EncodePageToken(o, all[size-1]), nil
}

func (m *Memory) Touch(_ context.Context, ts []sessions.Touch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range ts {
		s, ok := m.byID[t.ID]
		if !ok || us(t.LastUsedAt).Before(s.LastUsedAt) {
			continue
		}
		s.LastUsedAt, s.LastRemoteAddr, s.IdleExpiresAt = us(t.LastUsedAt), t.RemoteAddr, us(t.IdleExpiresAt)
		m.byID[t.ID] = s
	}
	return nil
}

func (m *Memory) Revoke(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[id]; !ok {
		return sessions.ErrNotFound
	}
	delete(m.byID, id)
	return nil
}

func (m *Memory) RevokeSubject(_ context.Context, subject string) (int, error) {
	return m.deleteIf(func(s sessions.Session) bool { return s.Subject == subject }), nil
}

func (m *Memory) RecordFingerprint(_ context.Context, id, fingerprint string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.byID[id]; ok && !s.FingerprintSet {
		s.Fingerprint, s.FingerprintSet = fingerprint, true
		m.byID[id] = s
	}
	return nil
}

func (m *Memory) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	now = us(now)
	return m.deleteIf(func(s sessions.Session) bool { return !s.ExpiresAt.After(now) || !s.IdleExpiresAt.After(now) }), nil
}

func (m *Memory) deleteIf(f func(sessions.Session) bool) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for id, s := range m.byID {
		if f(s) {
			delete(m.byID, id)
			n++
		}
	}
	return n
}

func (m *Memory) Close(context.Context) error { return nil }
