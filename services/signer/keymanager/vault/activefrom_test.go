package vault

import (
	"testing"
	"time"
)

// keys list and keys certify use one vocabulary, and ACTIVE FROM is when a version really
// started signing: a due version without a leaf is published with no ACTIVE FROM (it has
// not started), not "active from" a time already past.
func TestDueVersionWithoutLeafHasNotStarted(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P, R := 10*time.Minute, 6*time.Minute
	vs := []Version{{1, t0}, {2, t0.Add(time.Hour)}}
	now := t0.Add(time.Hour + P + time.Minute) // version 2 was due a minute ago
	slots := Schedule(vs, now, P, R)
	signing, due := certified(slots, func(n int) bool { return n == 1 })
	if slots[signing].Number != 1 || slots[due].Number != 2 {
		t.Fatalf("signing v%d, due v%d; want v1 signing in place of v2", slots[signing].Number, slots[due].Number)
	}
	if s := slots[due]; s.State != StatePublished || !s.ActiveFrom.IsZero() {
		t.Fatalf("version 2 without a leaf: %s, active from %s; want published with no ACTIVE FROM (it does not sign yet)", s.State, s.ActiveFrom)
	}
}

func TestScheduleCertified(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P, R := 10*time.Minute, 6*time.Minute
	v1, v2, v3 := Version{1, t0}, Version{2, t0.Add(time.Hour)}, Version{3, t0.Add(2 * time.Hour)}
	due2 := v2.Created.Add(P)
	late := due2.Add(3 * time.Minute) // version 2's leaf came after it was due
	type want struct {
		state              State
		activeFrom, retire time.Time // zero: none
	}
	cases := []struct {
		name      string
		versions  []Version
		certified map[int]time.Time
		now       time.Time
		want      []want
	}{
		{"a new key signs once certified", []Version{v1}, map[int]time.Time{1: t0.Add(time.Minute)}, t0.Add(2 * time.Minute),
			[]want{{StateActive, t0.Add(time.Minute), time.Time{}}}},
		{"nothing certified: nothing active", []Version{v1}, nil, t0.Add(time.Minute),
			[]want{{StatePublished, time.Time{}, time.Time{}}}},
		{"certified before due: active at the scheduled time", []Version{v1, v2}, map[int]time.Time{1: t0, 2: v2.Created.Add(time.Minute)}, due2,
			[]want{{StateRetiring, t0, due2.Add(R)}, {StateActive, due2, time.Time{}}}},
		{"due, not certified: published, no ACTIVE FROM", []Version{v1, v2}, map[int]time.Time{1: t0}, late,
			[]want{{StateActive, t0, time.Time{}}, {StatePublished, time.Time{}, time.Time{}}}},
		{"certified late: active from then, the old one retires R after", []Version{v1, v2}, map[int]time.Time{1: t0, 2: late}, late.Add(time.Second),
			[]want{{StateRetiring, t0, late.Add(R)}, {StateActive, late, time.Time{}}}},
		{"certified late, R later: the old one retired", []Version{v1, v2}, map[int]time.Time{1: t0, 2: late}, late.Add(R),
			[]want{{StateRetired, t0, late.Add(R)}, {StateActive, late, time.Time{}}}},
		{"certified before records (zero time): as scheduled", []Version{v1, v2}, map[int]time.Time{1: {}, 2: {}}, due2,
			[]want{{StateRetiring, t0, due2.Add(R)}, {StateActive, due2, time.Time{}}}},
		{"a version never certified is skipped", []Version{v1, v2, v3}, map[int]time.Time{1: t0, 3: v3.Created}, v3.Created.Add(P),
			[]want{{StateRetiring, t0, v3.Created.Add(P + R)}, {StateRetired, time.Time{}, time.Time{}}, {StateActive, v3.Created.Add(P), time.Time{}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := ScheduleCertified(tc.versions, tc.now, P, R, tc.certified)
			if len(got) != len(tc.want) {
				t.Fatalf("%d slots, want %d", len(got), len(tc.want))
			}
			for i, s := range got {
				w := tc.want[i]
				if s.State != w.state || !s.ActiveFrom.Equal(w.activeFrom) || !s.RetiredAt.Equal(w.retire) {
					t.Errorf("version %d: %s from %s retiring %s; want %s from %s retiring %s", s.Number, s.State, s.ActiveFrom, s.RetiredAt, w.state, w.activeFrom, w.retire)
				}
			}
		})
	}
}

// Whatever the clock and the certification times, at most one version signs, never before
// its certification nor (but the first) before the propagation delay, and a version that
// stopped signing stays published a token lifetime after its successor started.
func TestScheduleCertifiedInvariants(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P, R := 10*time.Minute, 7*time.Minute
	vs := []Version{{1, t0}, {2, t0.Add(3 * time.Minute)}, {3, t0.Add(5 * time.Minute)}, {4, t0.Add(40 * time.Minute)}}
	certified := map[int]time.Time{1: t0.Add(time.Minute), 2: t0.Add(30 * time.Minute), 4: t0.Add(41 * time.Minute)} // 3 never
	for now := t0; now.Before(t0.Add(2 * time.Hour)); now = now.Add(30 * time.Second) {
		known := map[int]time.Time{}
		for n, c := range certified {
			if !c.After(now) { // the store holds only what was certified by now
				known[n] = c
			}
		}
		slots := ScheduleCertified(vs, now, P, R, known)
		active := 0
		for i, s := range slots {
			switch s.State {
			case StateActive:
				active++
				c, ok := known[s.Number]
				if !ok || now.Before(c) || (s.Number != 1 && now.Sub(s.Created) < P) || now.Before(s.ActiveFrom) {
					t.Fatalf("at %s version %d signs (certified %v at %s, active from %s)", now, s.Number, ok, c, s.ActiveFrom)
				}
			case StateRetiring, StateRetired:
				if s.ActiveFrom.IsZero() {
					if s.State != StateRetired {
						t.Fatalf("at %s version %d never signed but is %s", now, s.Number, s.State)
					}
					continue
				}
				next := slots[i+1:]
				for len(next) > 0 && next[0].ActiveFrom.IsZero() {
					next = next[1:]
				}
				if len(next) == 0 || s.RetiredAt.Before(next[0].ActiveFrom.Add(R)) {
					t.Fatalf("at %s version %d retires at %s, before its successor's start + R", now, s.Number, s.RetiredAt)
				}
			}
		}
		if active > 1 || (active == 0 && len(known) > 0) {
			t.Fatalf("at %s %d active versions (%d certified)", now, active, len(known))
		}
	}
}
