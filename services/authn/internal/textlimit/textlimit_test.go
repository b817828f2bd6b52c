package textlimit

import "testing"

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"curl/8", 10, "curl/8"},
		{"curl/8", 4, "curl"},
		{"aü", 2, "a"}, // ü is two bytes: not cut in half
		{"üü", 3, "ü"},
		{"", 0, ""},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
