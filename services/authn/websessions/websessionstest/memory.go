// Package websessionstest is the conformance suite every websessions.Store runs (Run), and an
// in-memory Store for tests of what uses one (Memory), which runs the suite too.
package websessionstest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

// Memory is a websessions.Store in a map. It keeps times as the SQL stores do: UTC, to the
// microsecond. Fail makes every call fail.
type Memory struct {
	mu       sync.Mutex
	sessions map[string]websessions.Session // by id
	fail     error
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{sessions: map[string]websessions.Session{}} }

var _ websessions.Store = (*Memory)(nil)

// errExists is Create's refusal; the interface names no sentinel for it.
var errExists = errors.New("websessions: id or token hash in use")

// Fail makes every later call return err (nil: work again).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// enter locks m; the caller unlocks.
func (m *Memory) enter() error {
	m.mu.Lock()
	return m.fail
}

func (m *Memory) Create(_ context.Context, s websessions.Session) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	for _, o := range m.sessions {
		if o.ID == s.ID || o.TokenHash == s.TokenHash {
			return errExists
		}
	}
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC().Truncate(time.Microsecond), s.ExpiresAt.UTC().Truncate(time.Microsecond)
	m.sessions[s.ID] = s
	return nil
}

func (m *Memory) ByTokenHash(_ context.Context, h [32]byte) (websessions.Session, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return websessions.Session{}, err
	}
	for _, s := range m.sessions {
		if s.TokenHash == h {
			return s, nil
		}
	}
	return websessions.Session{}, websessions.ErrNotFound
}

func (m *Memory) Delete(_ context.Context, id string) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	if _, ok := m.sessions[id]; !ok {
		return websessions.ErrNotFound
	}
	delete(m.sessions, id)
	return nil
}

// deleteIf removes the sessions del picks and says how many.
func (m *Memory) deleteIf(del func(websessions.Session) bool) (int, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for id, s := range m.sessions {
		if del(s) {
			delete(m.sessions, id)
			n++
		}
	}
	return n, nil
}

func (m *Memory) SubjectsByIDPSession(_ context.Context, sid string) ([]string, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range m.sessions {
		if sid != "" && s.IDPSessionID == sid && !slices.Contains(out, s.Subject) {
			out = append(out, s.Subject)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (m *Memory) DeleteSubject(_ context.Context, subject string) (int, error) {
	return m.deleteIf(func(s websessions.Session) bool { return s.Subject == subject })
}

func (m *Memory) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	return m.deleteIf(func(s websessions.Session) bool { return !s.ExpiresAt.After(now) })
}
