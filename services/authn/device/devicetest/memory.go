// Package devicetest is the conformance suite every device.Store runs (Run), and an in-memory
// Store for tests of what uses one (Memory), which runs the suite too.
package devicetest

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/device"
)

// Memory is a device.Store in a map. It keeps what the SQL stores keep: times in UTC to the
// microsecond, an empty Scopes read back as nil. Fail makes every call fail.
type Memory struct {
	mu    sync.Mutex
	flows map[[32]byte]device.Authorization // by device code hash
	fail  error
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{flows: map[[32]byte]device.Authorization{}} }

var _ device.Store = (*Memory)(nil)

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

func us(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// normalize is a flow as a SQL store reads it back; it also keeps callers from sharing the
// stored Scopes.
func normalize(a device.Authorization) device.Authorization {
	if len(a.Scopes) == 0 {
		a.Scopes = nil
	}
	a.Scopes = slices.Clone(a.Scopes)
	a.CreatedAt, a.ExpiresAt, a.LastPollAt, a.DecidedAt = us(a.CreatedAt), us(a.ExpiresAt), us(a.LastPollAt), us(a.DecidedAt)
	a.Interval = a.Interval.Truncate(time.Microsecond)
	return a
}

func (m *Memory) Create(_ context.Context, a device.Authorization) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	for _, o := range m.flows {
		if o.DeviceCodeHash == a.DeviceCodeHash || o.UserCode == a.UserCode {
			return device.ErrExists
		}
	}
	m.flows[a.DeviceCodeHash] = normalize(a)
	return nil
}

func (m *Memory) byUserCode(userCode string) (device.Authorization, bool) {
	for _, a := range m.flows {
		if a.UserCode == userCode {
			return a, true
		}
	}
	return device.Authorization{}, false
}

func (m *Memory) ByUserCode(_ context.Context, userCode string) (device.Authorization, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return device.Authorization{}, err
	}
	a, ok := m.byUserCode(userCode)
	if !ok {
		return device.Authorization{}, device.ErrNotFound
	}
	return normalize(a), nil
}

func (m *Memory) Poll(_ context.Context, h [32]byte, at time.Time) (device.Authorization, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return device.Authorization{}, err
	}
	a, ok := m.flows[h]
	if !ok {
		return device.Authorization{}, device.ErrNotFound
	}
	was := normalize(a)
	a.LastPollAt = us(at)
	m.flows[h] = a
	return was, nil
}

func (m *Memory) Decide(_ context.Context, userCode string, d device.Decision) (device.Authorization, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return device.Authorization{}, err
	}
	a, ok := m.byUserCode(userCode)
	switch {
	case !ok:
		return device.Authorization{}, device.ErrNotFound
	case a.State != device.Pending:
		return device.Authorization{}, device.ErrNotPending
	}
	a.State = device.Denied
	if d.Approve {
		a.State = device.Approved
	}
	a.Subject, a.Backend, a.Fingerprint, a.DecidedAt, a.DecidedAddr = d.Subject, d.Backend, d.Fingerprint, us(d.At), d.Addr
	m.flows[a.DeviceCodeHash] = a
	return normalize(a), nil
}

func (m *Memory) Delete(_ context.Context, h [32]byte) (device.Authorization, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return device.Authorization{}, err
	}
	a, ok := m.flows[h]
	if !ok {
		return device.Authorization{}, device.ErrNotFound
	}
	delete(m.flows, h)
	return normalize(a), nil
}

func (m *Memory) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for h, a := range m.flows {
		if !a.ExpiresAt.After(now) {
			delete(m.flows, h)
			n++
		}
	}
	return n, nil
}
