// Package ssoaccountstest is the conformance suite every ssoaccounts.Store runs (Run), and an
// in-memory Store for tests of what uses one (Memory), which runs the suite too.
package ssoaccountstest

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
)

// Memory is an ssoaccounts.Store in a map. It keeps what the SQL stores keep: times in UTC to
// the microsecond; empty Groups, Labels and SealedRefreshToken read back as nil. Fail makes
// every call fail.
type Memory struct {
	mu       sync.Mutex
	accounts map[string]ssoaccounts.Account // by subject
	fail     error
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{accounts: map[string]ssoaccounts.Account{}} }

var _ ssoaccounts.Store = (*Memory)(nil)

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

// normalize is an account as a SQL store reads it back; it also keeps callers from sharing
// the stored slices and maps.
func normalize(a ssoaccounts.Account) ssoaccounts.Account {
	a.Groups = slices.Clone(a.Groups)
	if len(a.Groups) == 0 {
		a.Groups = nil
	}
	if len(a.Labels) == 0 {
		a.Labels = nil
	} else {
		a.Labels = maps.Clone(a.Labels)
		for k, v := range a.Labels {
			a.Labels[k] = slices.Clone(v)
		}
	}
	if len(a.SealedRefreshToken) == 0 {
		a.SealedRefreshToken = nil
	} else {
		a.SealedRefreshToken = bytes.Clone(a.SealedRefreshToken)
	}
	a.CreatedAt, a.RevalidatedAt = a.CreatedAt.UTC().Truncate(time.Microsecond), a.RevalidatedAt.UTC().Truncate(time.Microsecond)
	return a
}

func (m *Memory) Put(_ context.Context, a ssoaccounts.Account) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	a = normalize(a)
	if old, ok := m.accounts[a.Subject]; ok {
		a.CreatedAt = old.CreatedAt
	}
	m.accounts[a.Subject] = a
	return nil
}

func (m *Memory) Get(_ context.Context, subject string) (ssoaccounts.Account, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return ssoaccounts.Account{}, err
	}
	a, ok := m.accounts[subject]
	if !ok {
		return ssoaccounts.Account{}, ssoaccounts.ErrNotFound
	}
	return normalize(a), nil
}

// ByIDPSubject returns the accounts ordered by subject, as the SQL stores do.
func (m *Memory) ByIDPSubject(_ context.Context, sub string) ([]ssoaccounts.Account, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []ssoaccounts.Account
	for _, a := range m.accounts {
		if a.IDPSubject == sub {
			out = append(out, normalize(a))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subject < out[j].Subject })
	return out, nil
}

func (m *Memory) Delete(_ context.Context, subject string) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	if _, ok := m.accounts[subject]; !ok {
		return ssoaccounts.ErrNotFound
	}
	delete(m.accounts, subject)
	return nil
}
