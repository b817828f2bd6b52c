package secret

import (
	"strings"
	"testing"
)

func TestNewAndWellFormed(t *testing.T) {
	t.Parallel()
	s, err := New("pat_", 32)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New("pat_", 32)
	if s == other {
		t.Fatal("two secrets alike")
	}
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{s, true},
		{s[:len(s)-1], false},
		{s + "A", false},
		{"pcp_" + s[4:], false},
		{strings.Replace(s, s[5:6], "+", 1), false},
		{"pat_", false},
		{"", false},
	} {
		if got := WellFormed(tc.s, "pat_", 32); got != tc.want {
			t.Errorf("WellFormed(%q) = %v", tc.s, got)
		}
	}
}

func TestNameProblem(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"ci": true, "ci-bot.1": true, "a": true, "9_x": true,
		"": false, "CI": false, "-ci": false, "ci.": false, "c:i": false, "c i": false, strings.Repeat("a", 65): false,
	} {
		if got := NameProblem(name, 64) == ""; got != ok {
			t.Errorf("NameProblem(%q) = %q", name, NameProblem(name, 64))
		}
	}
}
