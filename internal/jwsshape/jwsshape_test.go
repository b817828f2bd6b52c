package jwsshape

import "testing"

func TestShape(t *testing.T) {
	t.Parallel()
	const hdr = "eyJhbGciOiJFUzI1NiJ9" // {"alg":"ES256"}
	cases := []struct {
		s               string
		compact, hasAlg bool
	}{
		{hdr + ".eyJzdWIiOiJhIn0.c2ln", true, true},
		{hdr + ".eyJzdWIiOiJhIn0.", true, true},   // alg none's empty signature: a shape, refused later
		{"e30.eyJzdWIiOiJhIn0.c2ln", true, false}, // {} has no alg
		{"bm90IGpzb24.eyJzdWIiOiJhIn0.c2ln", true, false},
		{".eyJzdWIiOiJhIn0.c2ln", false, false},
		{hdr + "..c2ln", false, false},
		{hdr + ".eyJzdWIiOiJhIn0", false, false},
		{hdr + ".eyJzdWIiOiJhIn0.c2ln.x", false, false},
		{hdr + ".eyJzdWIiOiJhIn0=.c2ln", false, false},
		{"alice", false, false},
		{"", false, false},
	}
	for _, tc := range cases {
		if got := Compact(tc.s); got != tc.compact {
			t.Errorf("Compact(%q) = %v", tc.s, got)
		}
		if got := WithAlg(tc.s); got != tc.hasAlg {
			t.Errorf("WithAlg(%q) = %v", tc.s, got)
		}
	}
}
