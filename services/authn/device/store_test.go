package device

import (
	"context"
	"slices"
	"sync"
	"time"
)

// memStore is a small in-memory Store for this package's tests; the real stores run the
// storage conformance suite.
type memStore struct {
	mu     sync.Mutex
	byHash map[[32]byte]Authorization

	// createErrs are returned by the next Create calls, one each, before storing anything.
	createErrs []error
	// sweeps counts DeleteExpired calls.
	sweeps int
}

func newMemStore() *memStore { return &memStore{byHash: map[[32]byte]Authorization{}} }

func clone(a Authorization) Authorization {
	a.Scopes = slices.Clone(a.Scopes)
	return a
}

func (s *memStore) Create(_ context.Context, a Authorization) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.createErrs) > 0 {
		err := s.createErrs[0]
		s.createErrs = s.createErrs[1:]
		return err
	}
	if _, ok := s.byHash[a.DeviceCodeHash]; ok {
		return ErrExists
	}
	for _, b := range s.byHash {
		if b.UserCode == a.UserCode {
			return ErrExists
		}
	}
	s.byHash[a.DeviceCodeHash] = clone(a)
	return nil
}

func (s *memStore) ByUserCode(_ context.Context, userCode string) (Authorization, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.byHash {
		if a.UserCode == userCode {
			return clone(a), nil
		}
	}
	return Authorization{}, ErrNotFound
}

func (s *memStore) Poll(_ context.Context, h [32]byte, at time.Time) (Authorization, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byHash[h]
	if !ok {
		return Authorization{}, ErrNotFound
	}
	b := a
	b.LastPollAt = at
	s.byHash[h] = b
	return clone(a), nil
}

func (s *memStore) Decide(_ context.Context, userCode string, d Decision) (Authorization, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, a := range s.byHash {
		if a.UserCode != userCode {
			continue
		}
		if a.State != Pending {
			return Authorization{}, ErrNotPending
		}
		a.State = Denied
		if d.Approve {
			a.State = Approved
		}
		a.Subject, a.Backend, a.Fingerprint = d.Subject, d.Backend, d.Fingerprint
		a.DecidedAt, a.DecidedAddr = d.At, d.Addr
		s.byHash[h] = a
		return clone(a), nil
	}
	return Authorization{}, ErrNotFound
}

func (s *memStore) Delete(_ context.Context, h [32]byte) (Authorization, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.byHash[h]
	if !ok {
		return Authorization{}, ErrNotFound
	}
	delete(s.byHash, h)
	return a, nil
}

func (s *memStore) DeleteExpired(_ context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweeps++
	n := 0
	for h, a := range s.byHash {
		if !a.ExpiresAt.After(now) {
			delete(s.byHash, h)
			n++
		}
	}
	return n, nil
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byHash)
}
