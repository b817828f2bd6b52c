package pats_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/pats"
)

// The secret shape check reads every password with the prefix: it must not panic, and what it
// accepts has a secret's shape.
func FuzzWellFormed(f *testing.F) {
	s, _ := pats.NewSecret()
	for _, v := range []string{s, "pat_", "pat_" + strings.Repeat("=", 43), "alice", ""} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if pats.WellFormed(v) && (!pats.LooksLikeSecret(v) || len(v) != len(s)) {
			t.Fatalf("WellFormed(%q) but not a secret's shape", v)
		}
	})
}

// Scopes come from admin callers and are stored as text: whatever parses formats back to text
// that parses to the same scope.
func FuzzParseScope(f *testing.F) {
	for _, v := range []string{"repository:alice/*:pull,push", "repository(plugin):x/[ab]*:*", "registry:catalog:*", "a:b", ""} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := pats.ParseScope(v)
		if err != nil {
			return
		}
		again, err := pats.ParseScope(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("%q parses to %q, which does not round-trip: %v", v, s.String(), err)
		}
	})
}
