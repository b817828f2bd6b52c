package vault

import (
	"sort"
	"time"
)

// State is where a key version is in its life.
type State string

// A version is published (in the JWKS, not yet signing), active (signing), retiring (no longer
// signing, still published so tokens it signed keep verifying) or retired (gone from the JWKS).
const (
	StatePublished State = "published"
	StateActive    State = "active"
	StateRetiring  State = "retiring"
	StateRetired   State = "retired"
)

// Version is one transit key version as Vault reports it.
type Version struct {
	Number  int
	Created time.Time
}

// Slot is a version's computed place in the rotation.
type Slot struct {
	Version
	State State
	// ActiveFrom is when the version starts (or started) signing; RetiredAt when it leaves
	// the JWKS. Zero when not (yet) known.
	ActiveFrom time.Time
	RetiredAt  time.Time
}

// Schedule decides every version's state from Vault's creation times alone, so every signer
// replica reaches the same answer without talking to the others. A version becomes active
// `propagate` after it was created (verifiers have refreshed their JWKS by then); the version
// it replaces stays published for `retireAfter` (token lifetime + the registry's leeway).
// When no version has matured yet (a brand-new key) the oldest one signs at once: there is no
// earlier key any verifier could be relying on.
func Schedule(versions []Version, now time.Time, propagate, retireAfter time.Duration) []Slot {
	return schedule(versions, now, propagate, retireAfter, nil)
}

// ScheduleCertified is Schedule in x5c mode, where a version can sign only once the
// certifier has given it a leaf: certifiedAt holds when each version's first leaf was
// issued (the zero time for one certified before that was recorded). A version becomes
// active at the later of its scheduled time and its certification, so ActiveFrom is when it
// really started signing and the version it replaces retires a token lifetime after that.
// A version not in certifiedAt has not started: no ActiveFrom, and it stays published (or,
// once a later version signs, retired: it never signed anything).
func ScheduleCertified(versions []Version, now time.Time, propagate, retireAfter time.Duration, certifiedAt map[int]time.Time) []Slot {
	if certifiedAt == nil {
		certifiedAt = map[int]time.Time{}
	}
	return schedule(versions, now, propagate, retireAfter, certifiedAt)
}

func schedule(versions []Version, now time.Time, propagate, retireAfter time.Duration, certifiedAt map[int]time.Time) []Slot {
	if certifiedAt != nil {
		return scheduleX5C(versions, now, propagate, retireAfter, certifiedAt)
	}
	vs := append([]Version(nil), versions...)
	sort.Slice(vs, func(i, j int) bool { return vs[i].Number < vs[j].Number })
	slots := make([]Slot, len(vs))
	for i, v := range vs {
		slots[i] = Slot{Version: v, ActiveFrom: v.Created.Add(propagate)}
	}
	if len(slots) == 0 {
		return slots
	}
	// The oldest version is active from its creation when nothing older exists to sign before it.
	slots[0].ActiveFrom = slots[0].Created
	// A later version only activates after the one before it: creation times could be out of order.
	for i := 1; i < len(slots); i++ {
		if slots[i].ActiveFrom.Before(slots[i-1].ActiveFrom) {
			slots[i].ActiveFrom = slots[i-1].ActiveFrom
		}
	}
	active := 0
	for i := range slots {
		if !now.Before(slots[i].ActiveFrom) {
			active = i
		}
	}
	for i := range slots {
		switch {
		case i == active:
			slots[i].State = StateActive
		case i > active:
			slots[i].State = StatePublished
		default:
			// Version i stopped signing when version i+1 became active.
			slots[i].RetiredAt = slots[i+1].ActiveFrom.Add(retireAfter)
			if now.Before(slots[i].RetiredAt) {
				slots[i].State = StateRetiring
			} else {
				slots[i].State = StateRetired
			}
		}
	}
	return slots
}

func scheduleX5C(versions []Version, now time.Time, propagate, retireAfter time.Duration, certifiedAt map[int]time.Time) []Slot {
	slots := Schedule(versions, now, propagate, retireAfter)
	// Activation times: the scheduled one, not before certification, and in order among the
	// versions that can activate at all.
	var prev time.Time
	for i := range slots {
		c, ok := certifiedAt[slots[i].Number]
		if !ok {
			slots[i].ActiveFrom = time.Time{}
			continue
		}
		af := slots[i].ActiveFrom
		if c.After(af) {
			af = c
		}
		if af.Before(prev) {
			af = prev
		}
		slots[i].ActiveFrom, prev = af, af
	}
	active := -1
	for i := range slots {
		if !slots[i].ActiveFrom.IsZero() && !now.Before(slots[i].ActiveFrom) {
			active = i
		}
	}
	for i := range slots {
		slots[i].RetiredAt = time.Time{}
		switch {
		case i == active:
			slots[i].State = StateActive
		case i > active || active < 0:
			slots[i].State = StatePublished
		case slots[i].ActiveFrom.IsZero():
			slots[i].State = StateRetired // skipped: it never signed
		default:
			// It stopped signing when the next version that activated did.
			next := i + 1
			for slots[next].ActiveFrom.IsZero() {
				next++
			}
			slots[i].RetiredAt = slots[next].ActiveFrom.Add(retireAfter)
			slots[i].State = StateRetiring
			if !now.Before(slots[i].RetiredAt) {
				slots[i].State = StateRetired
			}
		}
	}
	return slots
}
