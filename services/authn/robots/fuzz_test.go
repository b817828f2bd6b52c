package robots_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/robots"
)

// The key shape check reads every password with the prefix: it must not panic, and what it
// accepts must be routed to the robot backend and hash as itself.
func FuzzWellFormed(f *testing.F) {
	k, _ := robots.NewKey()
	for _, s := range []string{k, "pcp_", "pcp_" + strings.Repeat("=", 43), "alice", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if robots.WellFormed(s) && (!robots.LooksLikeKey(s) || len(s) != len(k)) {
			t.Fatalf("WellFormed(%q) but not a key's shape", s)
		}
	})
}

// Page tokens come from admin callers: anything decodes to an error or to a name that encodes
// back to a token meaning the same.
func FuzzDecodePageToken(f *testing.F) {
	for _, s := range []string{robots.EncodePageToken("ci"), "AAAA", "e30", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		after, ok, err := robots.DecodePageToken(s)
		if err != nil || !ok {
			return
		}
		again, ok, err := robots.DecodePageToken(robots.EncodePageToken(after))
		if err != nil || !ok || again != after {
			t.Fatalf("%q decodes to %q, which does not round-trip: %q %v %v", s, after, again, ok, err)
		}
	})
}
