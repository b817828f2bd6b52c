// Package patstest is the conformance suite every pats.Store runs (Run), and an in-memory
// Store for tests of what uses one (Memory), which runs the suite too.
package patstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
)

// Memory is a pats.Store in a map. Fail makes every call fail.
type Memory struct {
	mu   sync.Mutex
	pats map[string]pats.PAT // by id
	fail error
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{pats: map[string]pats.PAT{}} }

var _ pats.Store = (*Memory)(nil)

// Fail makes every later call return err (nil: work again).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

func (m *Memory) enter() error {
	m.mu.Lock()
	return m.fail
}

func clone(p pats.PAT) pats.PAT {
	p.Scopes = slices.Clone(p.Scopes)
	for i := range p.Scopes {
		p.Scopes[i].Actions = slices.Clone(p.Scopes[i].Actions)
	}
	return p
}

func (m *Memory) Create(_ context.Context, p pats.PAT) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	for _, o := range m.pats {
		if o.ID == p.ID || o.SecretHash == p.SecretHash || (o.Owner == p.Owner && o.Name == p.Name) {
			return pats.ErrExists
		}
	}
	m.pats[p.ID] = clone(p)
	return nil
}

func (m *Memory) ByHash(_ context.Context, h [32]byte) (pats.PAT, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return pats.PAT{}, err
	}
	for _, p := range m.pats {
		if p.SecretHash == h {
			return clone(p), nil
		}
	}
	return pats.PAT{}, pats.ErrNotFound
}

func (m *Memory) List(_ context.Context, owner string) ([]pats.PAT, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []pats.PAT
	for _, p := range m.pats {
		if p.Owner == owner {
			out = append(out, clone(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Memory) Delete(_ context.Context, id string) (pats.PAT, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return pats.PAT{}, err
	}
	p, ok := m.pats[id]
	if !ok {
		return pats.PAT{}, pats.ErrNotFound
	}
	delete(m.pats, id)
	return p, nil
}

func (m *Memory) DeleteOwner(_ context.Context, owner string) (int, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range slices.Collect(maps.Keys(m.pats)) {
		if m.pats[id].Owner == owner {
			delete(m.pats, id)
			n++
		}
	}
	return n, nil
}

func (m *Memory) Touch(_ context.Context, ts []pats.Touch) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	for _, t := range ts {
		if p, ok := m.pats[t.ID]; ok && !t.LastUsedAt.Before(p.LastUsedAt) {
			p.LastUsedAt = t.LastUsedAt.UTC().Truncate(time.Microsecond)
			m.pats[t.ID] = p
		}
	}
	return nil
}

// Open returns a new, empty store for one subtest; the suite does not close it.
type Open func(t *testing.T) pats.Store

// t0 is a time the stores keep exactly: UTC, whole microseconds.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// token is owner's token named name whose id and hash derive from both.
func token(owner, name string) pats.PAT {
	return pats.PAT{ID: "pid_" + owner + "_" + name, Owner: owner, Name: name,
		SecretHash: pats.HashSecret("pat_" + owner + "_" + name), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
}

// Same reports how got differs from want, or "" (times compared with Equal).
func Same(got, want pats.PAT) string {
	switch {
	case got.ID != want.ID, got.Owner != want.Owner, got.Name != want.Name, got.SecretHash != want.SecretHash:
		return fmt.Sprintf("id/owner/name/hash %s %s %s %x, want %s %s %s %x", got.ID, got.Owner, got.Name, got.SecretHash[:4],
			want.ID, want.Owner, want.Name, want.SecretHash[:4])
	case pats.EncodeScopes(got.Scopes) != pats.EncodeScopes(want.Scopes) || (got.Scopes == nil) != (want.Scopes == nil):
		return fmt.Sprintf("scopes %#v, want %#v", got.Scopes, want.Scopes)
	}
	for _, c := range []struct {
		what      string
		got, want time.Time
	}{{"created", got.CreatedAt, want.CreatedAt}, {"expires", got.ExpiresAt, want.ExpiresAt}, {"last used", got.LastUsedAt, want.LastUsedAt}} {
		if !c.got.Equal(c.want) || c.got.IsZero() != c.want.IsZero() {
			return fmt.Sprintf("%s at %v, want %v", c.what, c.got, c.want)
		}
	}
	return ""
}

// Run checks the Store contract.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	mustCreate := func(t *testing.T, st pats.Store, ps ...pats.PAT) {
		t.Helper()
		for _, p := range ps {
			if err := st.Create(ctx, p); err != nil {
				t.Fatalf("Create %s: %v", p.ID, err)
			}
		}
	}
	t.Run("CreateThenFind", func(t *testing.T) {
		st := open(t)
		p := token("alice", "ci")
		p.Scopes = []scope.Scope{{Type: "repository", Name: "alice/*", Actions: []string{"pull", "push"}},
			{Type: "repository", Class: "plugin", Name: "x", Actions: []string{"*"}}}
		mustCreate(t, st, p)
		got, err := st.ByHash(ctx, p.SecretHash)
		if err != nil {
			t.Fatalf("ByHash: %v", err)
		}
		if d := Same(got, p); d != "" {
			t.Errorf("ByHash: %s", d)
		}
		if _, err := st.ByHash(ctx, pats.HashSecret("pat_other")); !errors.Is(err, pats.ErrNotFound) {
			t.Errorf("ByHash of an unknown hash: %v, want ErrNotFound", err)
		}
	})
	t.Run("NamesUniquePerOwner", func(t *testing.T) {
		st := open(t)
		mustCreate(t, st, token("alice", "ci"), token("bob", "ci"))
		dup := token("alice", "ci")
		dup.ID, dup.SecretHash = "pid_other", pats.HashSecret("pat_other")
		for _, c := range []struct {
			name string
			p    pats.PAT
		}{
			{"same owner and name", dup},
			{"same id", func() pats.PAT { p := token("carol", "x"); p.ID = "pid_alice_ci"; return p }()},
			{"same hash", func() pats.PAT { p := token("carol", "y"); p.SecretHash = token("alice", "ci").SecretHash; return p }()},
		} {
			if err := st.Create(ctx, c.p); !errors.Is(err, pats.ErrExists) {
				t.Errorf("%s: Create: %v, want ErrExists", c.name, err)
			}
		}
		got, err := st.ByHash(ctx, token("alice", "ci").SecretHash)
		if err != nil || got.ID != "pid_alice_ci" {
			t.Errorf("the first token after the refused ones: %s, %v", got.ID, err)
		}
	})
	t.Run("ListByOwner", func(t *testing.T) {
		st := open(t)
		mustCreate(t, st, token("alice", "zeta"), token("alice", "alpha"), token("bob", "beta"), token("alice", "mid"))
		got, err := st.List(ctx, "alice")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
		}
		if want := []string{"alpha", "mid", "zeta"}; !slices.Equal(names, want) {
			t.Errorf("List(alice) = %v, want %v", names, want)
		}
		if got, err := st.List(ctx, "nobody"); err != nil || len(got) != 0 {
			t.Errorf("List(nobody) = %v, %v; want none", got, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		p := token("alice", "ci")
		mustCreate(t, st, p, token("alice", "other"))
		got, err := st.Delete(ctx, p.ID)
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if d := Same(got, p); d != "" {
			t.Errorf("Delete returned %s", d)
		}
		if _, err := st.ByHash(ctx, p.SecretHash); !errors.Is(err, pats.ErrNotFound) {
			t.Errorf("ByHash after Delete: %v, want ErrNotFound", err)
		}
		if _, err := st.Delete(ctx, p.ID); !errors.Is(err, pats.ErrNotFound) {
			t.Errorf("Delete again: %v, want ErrNotFound", err)
		}
		mustCreate(t, st, p) // the name is free again
	})
	t.Run("DeleteOwner", func(t *testing.T) {
		st := open(t)
		mustCreate(t, st, token("alice", "a"), token("alice", "b"), token("bob", "a"))
		n, err := st.DeleteOwner(ctx, "alice")
		if err != nil || n != 2 {
			t.Fatalf("DeleteOwner = %d, %v; want 2", n, err)
		}
		if got, _ := st.List(ctx, "alice"); len(got) != 0 {
			t.Errorf("alice's tokens after DeleteOwner: %d", len(got))
		}
		if got, _ := st.List(ctx, "bob"); len(got) != 1 {
			t.Errorf("bob's tokens after alice's DeleteOwner: %d, want 1", len(got))
		}
		if n, err := st.DeleteOwner(ctx, "alice"); err != nil || n != 0 {
			t.Errorf("DeleteOwner again = %d, %v; want 0", n, err)
		}
	})
	t.Run("Touch", func(t *testing.T) {
		st := open(t)
		p := token("alice", "ci")
		mustCreate(t, st, p)
		t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
		steps := []struct {
			ts   []pats.Touch
			want time.Time
		}{
			{[]pats.Touch{{ID: p.ID, LastUsedAt: t2}, {ID: "pid_gone", LastUsedAt: t2}}, t2},
			{[]pats.Touch{{ID: p.ID, LastUsedAt: t1}}, t2}, // older: ignored
			{nil, t2},
		}
		for i, s := range steps {
			if err := st.Touch(ctx, s.ts); err != nil {
				t.Fatalf("step %d: Touch: %v", i, err)
			}
			got, err := st.ByHash(ctx, p.SecretHash)
			if err != nil || !got.LastUsedAt.Equal(s.want) {
				t.Errorf("step %d: last used %v (%v), want %v", i, got.LastUsedAt, err, s.want)
			}
		}
	})
}
