package devicetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/device"
)

// Open returns a new, empty store for one subtest; the suite does not close it.
type Open func(t *testing.T) device.Store

// t0 is a time the stores keep exactly: UTC, whole microseconds.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// flow is a pending flow whose device code and user code (8 upper-case letters, as the
// manager makes them; the store does not check) derive from the letter n.
func flow(n string) device.Authorization {
	return device.Authorization{
		DeviceCodeHash: device.HashCode("device-code-" + n), UserCode: "BCDFGHJ" + n,
		ClientID: "portcullis-cli", Service: "registry.example", Scopes: []string{"repository:alice/app:pull,push", "registry:catalog:*"},
		ClientAddr: "192.0.2.7", UserAgent: "portcullis/1.0", CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute),
		Interval: 5 * time.Second, State: device.Pending,
	}
}

// Same reports how got differs from want, or "" (times compared with Equal, a zero time
// only with a zero time; Scopes nil and empty are different).
func Same(got, want device.Authorization) string {
	for _, c := range []struct {
		what      string
		got, want time.Time
	}{{"created", got.CreatedAt, want.CreatedAt}, {"expires", got.ExpiresAt, want.ExpiresAt},
		{"last poll", got.LastPollAt, want.LastPollAt}, {"decided", got.DecidedAt, want.DecidedAt}} {
		if !c.got.Equal(c.want) || c.got.IsZero() != c.want.IsZero() {
			return fmt.Sprintf("%s at %v, want %v", c.what, c.got, c.want)
		}
	}
	got.CreatedAt, got.ExpiresAt, got.LastPollAt, got.DecidedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.CreatedAt, want.ExpiresAt, want.LastPollAt, want.DecidedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("\n got %+v\nwant %+v", got, want)
	}
	return ""
}

// Run checks the Store contract. Stores read an empty Scopes back as nil, and keep times in
// UTC to the microsecond (Interval too).
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	mustCreate := func(t *testing.T, st device.Store, as ...device.Authorization) {
		t.Helper()
		for _, a := range as {
			if err := st.Create(ctx, a); err != nil {
				t.Fatalf("Create %s: %v", a.UserCode, err)
			}
		}
	}
	t.Run("CreateThenFind", func(t *testing.T) {
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a, flow("L"))
		got, err := st.ByUserCode(ctx, a.UserCode)
		if err != nil {
			t.Fatalf("ByUserCode: %v", err)
		}
		if d := Same(got, a); d != "" {
			t.Errorf("ByUserCode: %s", d)
		}
		got, err = st.Poll(ctx, a.DeviceCodeHash, t0.Add(time.Second))
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if d := Same(got, a); d != "" {
			t.Errorf("Poll: %s", d)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		st := open(t)
		mustCreate(t, st, flow("K"))
		other := flow("M")
		for _, c := range []struct {
			name string
			call func() error
		}{
			{"ByUserCode", func() error { _, err := st.ByUserCode(ctx, other.UserCode); return err }},
			{"ByUserCode of a device code", func() error { _, err := st.ByUserCode(ctx, "device-code-K"); return err }},
			{"Poll", func() error { _, err := st.Poll(ctx, other.DeviceCodeHash, t0); return err }},
			{"Decide", func() error {
				_, err := st.Decide(ctx, other.UserCode, device.Decision{Approve: true, Subject: "alice", At: t0})
				return err
			}},
			{"Delete", func() error { _, err := st.Delete(ctx, other.DeviceCodeHash); return err }},
		} {
			if err := c.call(); !errors.Is(err, device.ErrNotFound) {
				t.Errorf("%s of an unknown flow: %v, want ErrNotFound", c.name, err)
			}
		}
	})
	t.Run("Exists", func(t *testing.T) {
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a)
		for _, c := range []struct {
			name string
			a    device.Authorization
		}{
			{"same user code", func() device.Authorization { b := flow("M"); b.UserCode = a.UserCode; return b }()},
			{"same device code hash", func() device.Authorization { b := flow("M"); b.DeviceCodeHash = a.DeviceCodeHash; return b }()},
			{"both", a},
		} {
			if err := st.Create(ctx, c.a); !errors.Is(err, device.ErrExists) {
				t.Errorf("%s: Create: %v, want ErrExists", c.name, err)
			}
		}
		got, err := st.ByUserCode(ctx, a.UserCode)
		if err != nil {
			t.Fatalf("ByUserCode: %v", err)
		}
		if d := Same(got, a); d != "" {
			t.Errorf("the first flow after the refused ones: %s", d)
		}
	})
	t.Run("Poll", func(t *testing.T) {
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a)
		// Each poll returns the one before it: the first none.
		polls := []time.Time{t0.Add(5 * time.Second), t0.Add(11 * time.Second), t0.Add(11*time.Second + 999)}
		prev := time.Time{}
		for i, at := range polls {
			got, err := st.Poll(ctx, a.DeviceCodeHash, at)
			if err != nil {
				t.Fatalf("poll %d: %v", i, err)
			}
			want := a
			want.LastPollAt = prev
			if d := Same(got, want); d != "" {
				t.Errorf("poll %d: %s", i, d)
			}
			prev = at.Truncate(time.Microsecond)
		}
		got, err := st.ByUserCode(ctx, a.UserCode)
		if err != nil || !got.LastPollAt.Equal(prev) {
			t.Errorf("ByUserCode after the polls: last poll %v (%v), want %v", got.LastPollAt, err, prev)
		}
	})
	t.Run("PollConcurrent", func(t *testing.T) {
		// Concurrent polls are serialized: each returns the poll before it, so every poll's
		// time (and the first's "none") is returned exactly once, the last by a final poll.
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a)
		const n = 8
		prevs := make([]time.Time, n+1)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				got, err := st.Poll(ctx, a.DeviceCodeHash, t0.Add(time.Duration(i+1)*time.Second))
				prevs[i], errs[i] = got.LastPollAt, err
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		got, err := st.Poll(ctx, a.DeviceCodeHash, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		prevs[n] = got.LastPollAt
		seen := map[int64]int{}
		for _, p := range prevs {
			if p.IsZero() {
				seen[0]++
			} else {
				seen[int64(p.Sub(t0)/time.Second)]++
			}
		}
		for i := range n + 1 {
			if seen[int64(i)] != 1 {
				t.Fatalf("previous polls returned %v: poll %d seen %d times, want once", prevs, i, seen[int64(i)])
			}
		}
	})
	t.Run("Decide", func(t *testing.T) {
		for _, c := range []struct {
			name string
			d    device.Decision
			want device.State
		}{
			{"approve", device.Decision{Approve: true, Subject: "alice", Backend: "sso", Fingerprint: "fp1", At: t0.Add(time.Minute), Addr: "198.51.100.1"}, device.Approved},
			{"deny", device.Decision{Subject: "bob", Backend: "htpasswd", At: t0.Add(time.Minute + 1500), Addr: "198.51.100.2"}, device.Denied},
		} {
			t.Run(c.name, func(t *testing.T) {
				st := open(t)
				a := flow("K")
				mustCreate(t, st, a, flow("L"))
				if _, err := st.Poll(ctx, a.DeviceCodeHash, t0.Add(5*time.Second)); err != nil {
					t.Fatal(err)
				}
				want := a
				want.LastPollAt = t0.Add(5 * time.Second)
				want.State, want.Subject, want.Backend, want.Fingerprint = c.want, c.d.Subject, c.d.Backend, c.d.Fingerprint
				want.DecidedAt, want.DecidedAddr = c.d.At.Truncate(time.Microsecond), c.d.Addr
				got, err := st.Decide(ctx, a.UserCode, c.d)
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if d := Same(got, want); d != "" {
					t.Errorf("Decide returned %s", d)
				}
				if got, err := st.ByUserCode(ctx, a.UserCode); err != nil || Same(got, want) != "" {
					t.Errorf("ByUserCode after Decide: %v %s", err, Same(got, want))
				}
				for _, again := range []device.Decision{{Approve: true, Subject: "mallory", At: t0.Add(2 * time.Minute)}, {Subject: "mallory", At: t0.Add(2 * time.Minute)}} {
					if _, err := st.Decide(ctx, a.UserCode, again); !errors.Is(err, device.ErrNotPending) {
						t.Errorf("Decide again (approve %v): %v, want ErrNotPending", again.Approve, err)
					}
				}
				if got, err := st.ByUserCode(ctx, a.UserCode); err != nil || Same(got, want) != "" {
					t.Errorf("ByUserCode after the refused Decides: %v %s", err, Same(got, want))
				}
				if got, err := st.ByUserCode(ctx, flow("L").UserCode); err != nil || got.State != device.Pending {
					t.Errorf("the other flow: %s, %v; want pending", got.State, err)
				}
			})
		}
	})
	t.Run("DecideConcurrent", func(t *testing.T) {
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a)
		const n = 8
		errs := make([]error, n)
		subjects := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var got device.Authorization
				got, errs[i] = st.Decide(ctx, a.UserCode, device.Decision{Approve: i%2 == 0, Subject: fmt.Sprint("user", i), At: t0})
				subjects[i] = got.Subject
			})
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("Decide succeeded for %d and %d", won, i)
			case err == nil:
				won = i
			case !errors.Is(err, device.ErrNotPending):
				t.Fatalf("Decide %d: %v, want nil or ErrNotPending", i, err)
			}
		}
		if won < 0 {
			t.Fatal("no Decide succeeded")
		}
		if got, err := st.ByUserCode(ctx, a.UserCode); err != nil || got.Subject != subjects[won] {
			t.Errorf("stored decision by %q (%v), want the winner's %q", got.Subject, err, subjects[won])
		}
	})
	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a, flow("L"))
		d, err := st.Decide(ctx, a.UserCode, device.Decision{Approve: true, Subject: "alice", Backend: "sso", Fingerprint: "fp", At: t0.Add(time.Minute), Addr: "198.51.100.1"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Delete(ctx, a.DeviceCodeHash)
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if diff := Same(got, d); diff != "" {
			t.Errorf("Delete returned %s", diff)
		}
		if _, err := st.ByUserCode(ctx, a.UserCode); !errors.Is(err, device.ErrNotFound) {
			t.Errorf("ByUserCode after Delete: %v, want ErrNotFound", err)
		}
		if _, err := st.Delete(ctx, a.DeviceCodeHash); !errors.Is(err, device.ErrNotFound) {
			t.Errorf("Delete again: %v, want ErrNotFound", err)
		}
		if _, err := st.ByUserCode(ctx, flow("L").UserCode); err != nil {
			t.Errorf("the other flow after Delete: %v", err)
		}
		mustCreate(t, st, a) // the user code is free again
	})
	t.Run("DeleteConcurrent", func(t *testing.T) {
		// An approved flow is consumed by exactly one of the polls racing for it.
		st := open(t)
		a := flow("K")
		mustCreate(t, st, a)
		if _, err := st.Decide(ctx, a.UserCode, device.Decision{Approve: true, Subject: "alice", At: t0}); err != nil {
			t.Fatal(err)
		}
		const n = 8
		errs := make([]error, n)
		got := make([]device.Authorization, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = st.Delete(ctx, a.DeviceCodeHash) })
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if got[i].Subject != "alice" || got[i].State != device.Approved {
					t.Errorf("Delete %d returned %+v, want alice's approved flow", i, got[i])
				}
			case !errors.Is(err, device.ErrNotFound):
				t.Errorf("Delete %d: %v, want nil or ErrNotFound", i, err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d concurrent Deletes got the flow, want exactly 1", won, n)
		}
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		st := open(t)
		exp := func(n string, at time.Time) device.Authorization { a := flow(n); a.ExpiresAt = at; return a }
		mustCreate(t, st, exp("K", t0.Add(-time.Microsecond)), exp("L", t0), exp("M", t0.Add(time.Microsecond)))
		steps := []struct {
			now  time.Time
			want int
			left []string
		}{
			{t0.Add(-2 * time.Microsecond), 0, []string{"K", "L", "M"}},
			{t0, 2, []string{"M"}}, // ExpiresAt not after now: gone
			{t0, 0, []string{"M"}},
			{t0.Add(time.Microsecond), 1, nil},
		}
		for i, s := range steps {
			n, err := st.DeleteExpired(ctx, s.now)
			if err != nil || n != s.want {
				t.Fatalf("step %d: DeleteExpired = %d, %v; want %d", i, n, err, s.want)
			}
			var left []string
			for _, c := range []string{"K", "L", "M"} {
				if _, err := st.ByUserCode(ctx, flow(c).UserCode); err == nil {
					left = append(left, c)
				}
			}
			if !slices.Equal(left, s.left) {
				t.Errorf("step %d: left %v, want %v", i, left, s.left)
			}
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		// What a store keeps of odd values: empty scopes read back nil, times in UTC to the
		// microsecond.
		east := time.FixedZone("east", 5*3600)
		for _, c := range []struct {
			name       string
			edit, want func(*device.Authorization)
		}{
			{"nil scopes", func(a *device.Authorization) { a.Scopes = nil }, func(a *device.Authorization) { a.Scopes = nil }},
			{"empty scopes", func(a *device.Authorization) { a.Scopes = []string{} }, func(a *device.Authorization) { a.Scopes = nil }},
			{"one scope", func(a *device.Authorization) { a.Scopes = []string{"repository:x:pull"} }, func(a *device.Authorization) { a.Scopes = []string{"repository:x:pull"} }},
			{"empty strings", func(a *device.Authorization) { a.ClientID, a.Service, a.ClientAddr, a.UserAgent = "", "", "", "" },
				func(a *device.Authorization) { a.ClientID, a.Service, a.ClientAddr, a.UserAgent = "", "", "", "" }},
			{"nanoseconds and zones", func(a *device.Authorization) {
				a.CreatedAt, a.ExpiresAt, a.Interval = t0.Add(999).In(east), t0.Add(time.Minute+1).In(east), 5*time.Second+1500
			}, func(a *device.Authorization) {
				a.CreatedAt, a.ExpiresAt, a.Interval = t0, t0.Add(time.Minute), 5*time.Second+time.Microsecond
			}},
		} {
			t.Run(c.name, func(t *testing.T) {
				st := open(t)
				a, want := flow("K"), flow("K")
				c.edit(&a)
				c.want(&want)
				mustCreate(t, st, a)
				got, err := st.ByUserCode(ctx, a.UserCode)
				if err != nil {
					t.Fatal(err)
				}
				if d := Same(got, want); d != "" {
					t.Error(d)
				}
				if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
					t.Errorf("times in %v and %v, want UTC", got.CreatedAt.Location(), got.ExpiresAt.Location())
				}
			})
		}
	})
}
