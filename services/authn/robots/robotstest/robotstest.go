// Package robotstest is the conformance suite every robots.Store runs (Run), and an in-memory
// Store for tests of what uses one (Memory), which runs the suite too.
package robotstest

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

	"github.com/portcullis-dev/portcullis/services/authn/robots"
)

// Memory is a robots.Store in a map. Fail makes every call fail; Calls counts them.
type Memory struct {
	mu     sync.Mutex
	robots map[string]robots.Robot // by name
	fail   error
	calls  int
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory { return &Memory{robots: map[string]robots.Robot{}} }

var _ robots.Store = (*Memory)(nil)

// Fail makes every later call return err (nil: work again).
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// Calls is the number of calls so far.
func (m *Memory) Calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// enter locks m and counts a call; the caller unlocks.
func (m *Memory) enter() error {
	m.mu.Lock()
	m.calls++
	return m.fail
}

// clone keeps callers from sharing the stored slices and maps.
func clone(r robots.Robot) robots.Robot {
	r.Groups = slices.Clone(r.Groups)
	r.Labels = maps.Clone(r.Labels)
	return r
}

func (m *Memory) Create(_ context.Context, r robots.Robot) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	if old, ok := m.robots[r.Name]; ok && old.RevokedAt.IsZero() {
		return robots.ErrExists
	}
	for name, o := range m.robots {
		if name != r.Name && (o.ID == r.ID || o.KeyHash == r.KeyHash) {
			return robots.ErrExists
		}
	}
	m.robots[r.Name] = clone(r)
	return nil
}

func (m *Memory) ByKeyHash(_ context.Context, h [32]byte) (robots.Robot, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return robots.Robot{}, err
	}
	for _, r := range m.robots {
		if r.KeyHash == h {
			return clone(r), nil
		}
	}
	return robots.Robot{}, robots.ErrNotFound
}

func (m *Memory) Get(_ context.Context, name string) (robots.Robot, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return robots.Robot{}, err
	}
	r, ok := m.robots[name]
	if !ok {
		return robots.Robot{}, robots.ErrNotFound
	}
	return clone(r), nil
}

func (m *Memory) List(_ context.Context, o robots.ListOptions) ([]robots.Robot, string, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	after, paged, err := robots.DecodePageToken(o.PageToken)
	if err != nil {
		return nil, "", err
	}
	names := slices.Sorted(maps.Keys(m.robots))
	var out []robots.Robot
	size := robots.PageSize(o.PageSize)
	for _, n := range names {
		if paged && n <= after {
			continue
		}
		if len(out) == size {
			return out, robots.EncodePageToken(out[size-1].Name), nil
		}
		out = append(out, clone(m.robots[n]))
	}
	return out, "", nil
}

func (m *Memory) Revoke(_ context.Context, name string, at time.Time) (robots.Robot, bool, error) {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return robots.Robot{}, false, err
	}
	r, ok := m.robots[name]
	if !ok {
		return robots.Robot{}, false, robots.ErrNotFound
	}
	if !r.RevokedAt.IsZero() {
		return clone(r), false, nil
	}
	r.RevokedAt = at.UTC().Truncate(time.Microsecond)
	m.robots[name] = r
	return clone(r), true, nil
}

func (m *Memory) Touch(_ context.Context, ts []robots.Touch) error {
	err := m.enter()
	defer m.mu.Unlock()
	if err != nil {
		return err
	}
	for _, t := range ts {
		for name, r := range m.robots {
			if r.ID == t.ID && !t.LastUsedAt.Before(r.LastUsedAt) {
				r.LastUsedAt = t.LastUsedAt.UTC().Truncate(time.Microsecond)
				m.robots[name] = r
			}
		}
	}
	return nil
}

// Open returns a new, empty store for one subtest; the suite does not close it (register
// closing with t.Cleanup).
type Open func(t *testing.T) robots.Store

// t0 is a time the stores keep exactly: UTC, whole microseconds.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// robot is a robot named name whose id and key hash derive from seq.
func robot(name string, seq int) robots.Robot {
	return robots.Robot{ID: fmt.Sprintf("rob_%s_%d", name, seq), Name: name, KeyHash: robots.HashKey(fmt.Sprintf("pcp_%s_%d", name, seq)), CreatedAt: t0}
}

// Same reports how got differs from want, or "" (times compared with Equal).
func Same(got, want robots.Robot) string {
	switch {
	case got.ID != want.ID, got.Name != want.Name, got.KeyHash != want.KeyHash:
		return fmt.Sprintf("id/name/hash %s %s %x, want %s %s %x", got.ID, got.Name, got.KeyHash[:4], want.ID, want.Name, want.KeyHash[:4])
	case !slices.Equal(got.Groups, want.Groups) || (got.Groups == nil) != (want.Groups == nil):
		return fmt.Sprintf("groups %#v, want %#v", got.Groups, want.Groups)
	case !maps.Equal(got.Labels, want.Labels) || (got.Labels == nil) != (want.Labels == nil):
		return fmt.Sprintf("labels %#v, want %#v", got.Labels, want.Labels)
	}
	for _, c := range []struct {
		what      string
		got, want time.Time
	}{{"created", got.CreatedAt, want.CreatedAt}, {"expires", got.ExpiresAt, want.ExpiresAt},
		{"last used", got.LastUsedAt, want.LastUsedAt}, {"revoked", got.RevokedAt, want.RevokedAt}} {
		if !c.got.Equal(c.want) || c.got.IsZero() != c.want.IsZero() {
			return fmt.Sprintf("%s at %v, want %v", c.what, c.got, c.want)
		}
	}
	return ""
}

// Run checks the Store contract.
func Run(t *testing.T, open Open) {
	t.Helper()
	ctx := context.Background()
	mustCreate := func(t *testing.T, st robots.Store, r robots.Robot) {
		t.Helper()
		if err := st.Create(ctx, r); err != nil {
			t.Fatalf("Create(%s): %v", r.Name, err)
		}
	}
	mustGet := func(t *testing.T, st robots.Store, name string) robots.Robot {
		t.Helper()
		r, err := st.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%s): %v", name, err)
		}
		return r
	}

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		full := robot("ci-builder", 1)
		full.Groups = []string{"ci", "pushers", "ünïcode group"}
		full.Labels = map[string]string{"team": "platform", "empty": "", "quote\"d": "a'b"}
		full.ExpiresAt = t0.Add(720 * time.Hour)
		bare := robot("x", 1)
		for _, want := range []robots.Robot{full, bare} {
			mustCreate(t, st, want)
			if d := Same(mustGet(t, st, want.Name), want); d != "" {
				t.Errorf("Get(%s): %s", want.Name, d)
			}
			got, err := st.ByKeyHash(ctx, want.KeyHash)
			if err != nil {
				t.Fatalf("ByKeyHash(%s): %v", want.Name, err)
			}
			if d := Same(got, want); d != "" {
				t.Errorf("ByKeyHash(%s): %s", want.Name, d)
			}
		}
		// What the caller holds is not the store's.
		got := mustGet(t, st, full.Name)
		got.Groups[0], got.Labels["team"] = "changed", "changed"
		if d := Same(mustGet(t, st, full.Name), full); d != "" {
			t.Errorf("after changing a returned robot: %s", d)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		mustCreate(t, st, robot("known", 1))
		if _, err := st.Get(ctx, "unknown"); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
		if _, err := st.ByKeyHash(ctx, robots.HashKey("pcp_unknown")); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("ByKeyHash(unknown) = %v, want ErrNotFound", err)
		}
		if _, _, err := st.Revoke(ctx, "unknown", t0); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
		}
	})

	t.Run("NameIsUnique", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		first := robot("ci", 1)
		first.ExpiresAt = t0.Add(time.Second) // expired by now, and still holding the name
		mustCreate(t, st, first)
		if err := st.Create(ctx, robot("ci", 2)); !errors.Is(err, robots.ErrExists) {
			t.Fatalf("Create(ci again) = %v, want ErrExists", err)
		}
		if d := Same(mustGet(t, st, "ci"), first); d != "" {
			t.Errorf("the first ci after a refused second: %s", d)
		}
		if _, err := st.ByKeyHash(ctx, robot("ci", 2).KeyHash); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("the refused robot's key is stored: %v", err)
		}
	})

	t.Run("Revoke", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		want := robot("deployer", 1)
		want.Groups = []string{"deploy"}
		mustCreate(t, st, want)
		at := t0.Add(time.Hour)
		got, revoked, err := st.Revoke(ctx, "deployer", at)
		want.RevokedAt = at
		if err != nil || !revoked {
			t.Fatalf("Revoke = %v, %v; want revoked", revoked, err)
		}
		if d := Same(got, want); d != "" {
			t.Errorf("Revoke returned: %s", d)
		}
		// Revoked robots are still found, by name and by key, so refusals can say why.
		if d := Same(mustGet(t, st, "deployer"), want); d != "" {
			t.Errorf("Get after revoke: %s", d)
		}
		if got, err := st.ByKeyHash(ctx, want.KeyHash); err != nil || got.RevokedAt.IsZero() {
			t.Errorf("ByKeyHash after revoke = %+v, %v; want the revoked robot", got, err)
		}
		got, revoked, err = st.Revoke(ctx, "deployer", at.Add(time.Hour))
		if err != nil || revoked || !got.RevokedAt.Equal(at) {
			t.Errorf("Revoke again = %v, %v, %v; want not revoked again, first revocation kept", got.RevokedAt, revoked, err)
		}
	})

	t.Run("RevokedNameIsReused", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		old := robot("mirror", 1)
		mustCreate(t, st, old)
		if _, _, err := st.Revoke(ctx, "mirror", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		repl := robot("mirror", 2)
		repl.CreatedAt = t0.Add(2 * time.Minute)
		mustCreate(t, st, repl)
		if d := Same(mustGet(t, st, "mirror"), repl); d != "" {
			t.Errorf("Get after re-creating: %s", d)
		}
		if _, err := st.ByKeyHash(ctx, old.KeyHash); !errors.Is(err, robots.ErrNotFound) {
			t.Errorf("the revoked robot's key after its name was reused: %v, want ErrNotFound", err)
		}
		// A late last use of the old robot does not land on the new one.
		if err := st.Touch(ctx, []robots.Touch{{ID: old.ID, LastUsedAt: t0.Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, st, "mirror"); !got.LastUsedAt.IsZero() {
			t.Errorf("the new robot got the old one's last use: %v", got.LastUsedAt)
		}
	})

	t.Run("Touch", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		a, b := robot("a", 1), robot("b", 1)
		mustCreate(t, st, a)
		mustCreate(t, st, b)
		t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second)
		if err := st.Touch(ctx, []robots.Touch{{ID: a.ID, LastUsedAt: t2}, {ID: b.ID, LastUsedAt: t1}, {ID: "rob_gone", LastUsedAt: t1}}); err != nil {
			t.Fatalf("Touch: %v", err)
		}
		if err := st.Touch(ctx, []robots.Touch{{ID: a.ID, LastUsedAt: t1}}); err != nil { // older: ignored
			t.Fatalf("Touch: %v", err)
		}
		if err := st.Touch(ctx, nil); err != nil {
			t.Fatalf("Touch(nothing): %v", err)
		}
		for name, want := range map[string]time.Time{"a": t2, "b": t1} {
			if got := mustGet(t, st, name).LastUsedAt; !got.Equal(want) {
				t.Errorf("%s last used %v, want %v", name, got, want)
			}
		}
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		names := []string{"m", "a", "z9", "b.c", "b-c", "b_c", "zz"}
		for i, n := range names {
			mustCreate(t, st, robot(n, i))
		}
		if _, _, err := st.Revoke(ctx, "zz", t0); err != nil { // revoked robots are listed
			t.Fatal(err)
		}
		want := slices.Clone(names)
		sort.Strings(want)
		for _, size := range []int{1, 3, 7, 100} {
			var got []string
			tok, pages := "", 0
			for {
				rs, next, err := st.List(ctx, robots.ListOptions{PageSize: size, PageToken: tok})
				if err != nil {
					t.Fatalf("List(size %d, page %d): %v", size, pages, err)
				}
				pages++
				if len(rs) > size || (next != "" && len(rs) != size) {
					t.Fatalf("List(size %d) page %d has %d robots, next %q", size, pages, len(rs), next)
				}
				for _, r := range rs {
					got = append(got, r.Name)
				}
				if tok = next; tok == "" {
					break
				}
				if pages > len(names) {
					t.Fatalf("List(size %d) does not end", size)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("List(size %d) = %v, want %v", size, got, want)
			}
			if wantPages := max(1, (len(names)+size-1)/size); pages != wantPages {
				t.Errorf("List(size %d) took %d pages, want %d", size, pages, wantPages)
			}
		}
		for _, tok := range []string{"AAAA", "not base64!", robots.EncodePageToken("")} {
			if _, _, err := st.List(ctx, robots.ListOptions{PageSize: 2, PageToken: tok}); !errors.Is(err, robots.ErrBadPageToken) {
				t.Errorf("List(page token %q) = %v, want ErrBadPageToken", tok, err)
			}
		}
		if rs, next, err := open(t).List(ctx, robots.ListOptions{PageSize: 10}); err != nil || len(rs) != 0 || next != "" {
			t.Errorf("List of an empty store = %v, %q, %v", rs, next, err)
		}
	})

	// Replicas creating the same name at once: one wins, the others are told it exists.
	t.Run("ConcurrentCreate", func(t *testing.T) {
		t.Parallel()
		st := open(t)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = st.Create(ctx, robot("racer", i)) })
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, robots.ErrExists):
				t.Errorf("Create #%d: %v, want nil or ErrExists", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d creates of one name succeeded, want 1", won)
		}
	})
}
