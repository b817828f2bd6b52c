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
