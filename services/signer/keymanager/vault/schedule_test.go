package vault

import (
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P, R := 10*time.Minute, 6*time.Minute // propagation delay; token lifetime + leeway
	v1 := Version{1, t0}
	v2 := Version{2, t0.Add(time.Hour)}
	v3 := Version{3, t0.Add(time.Hour + time.Minute)}
	cases := []struct {
		name     string
		versions []Version
		now      time.Time
		want     []State
	}{
		{"new key signs at once", []Version{v1}, t0, []State{StateActive}},
		{"rotated: new version published, old still signs", []Version{v1, v2}, v2.Created.Add(time.Second), []State{StateActive, StatePublished}},
		{"just before activation", []Version{v2, v1}, v2.Created.Add(P - time.Nanosecond), []State{StateActive, StatePublished}},
		{"activated: old one retiring", []Version{v1, v2}, v2.Created.Add(P), []State{StateRetiring, StateActive}},
		{"retired after token lifetime + leeway", []Version{v1, v2}, v2.Created.Add(P + R), []State{StateRetired, StateActive}},
		{"two quick rotations activate in order", []Version{v1, v2, v3}, v2.Created.Add(P), []State{StateRetiring, StateActive, StatePublished}},
		{"two quick rotations, later", []Version{v1, v2, v3}, v3.Created.Add(P), []State{StateRetiring, StateRetiring, StateActive}},
		{"no versions", nil, t0, []State{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Schedule(tc.versions, tc.now, P, R)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d slots, want %d", len(got), len(tc.want))
			}
			for i, s := range got {
				if s.State != tc.want[i] {
					t.Errorf("version %d: %s, want %s", s.Number, s.State, tc.want[i])
				}
			}
		})
	}
}

// Whatever the clock, exactly one version signs, and it is never one a verifier can lack:
// it was published at least the propagation delay ago, or it is the very first version.
func TestScheduleInvariants(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P := 10 * time.Minute
	vs := []Version{{1, t0}, {2, t0.Add(3 * time.Minute)}, {3, t0.Add(5 * time.Minute)}, {4, t0.Add(40 * time.Minute)}}
	for now := t0; now.Before(t0.Add(2 * time.Hour)); now = now.Add(30 * time.Second) {
		active := 0
		for _, s := range Schedule(vs, now, P, time.Minute) {
			if s.State == StateActive {
				active++
				if s.Number != 1 && now.Sub(s.Created) < P {
					t.Fatalf("at %s version %d signs only %s after publication", now, s.Number, now.Sub(s.Created))
				}
			}
		}
		if active != 1 {
			t.Fatalf("at %s %d active versions", now, active)
		}
	}
}
