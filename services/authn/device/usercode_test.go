package device

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRandomUserCodeAlphabetAndDistribution(t *testing.T) {
	const codes = 20000
	counts := map[rune]int{}
	seen := map[string]bool{}
	for range codes {
		c, err := randomUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != userCodeLen {
			t.Fatalf("code %q: length %d", c, len(c))
		}
		for _, r := range c {
			if !strings.ContainsRune(UserCodeAlphabet, r) {
				t.Fatalf("code %q: %q is not in the alphabet", c, r)
			}
			counts[r]++
		}
		seen[c] = true
	}
	if len(seen) < codes-1 {
		t.Errorf("%d distinct codes of %d", len(seen), codes)
	}
	// 160000 letters over 20: 8000 each, standard deviation ≈ 87. A modulo bias over 256
	// byte values would put the first 16 letters about 17% above the last 4.
	want := codes * userCodeLen / len(UserCodeAlphabet)
	for _, r := range UserCodeAlphabet {
		if n := counts[r]; n < want*95/100 || n > want*105/100 {
			t.Errorf("letter %q drawn %d times, want about %d", r, n, want)
		}
	}
}

func TestNewUserCodeSkipsBiasedBytes(t *testing.T) {
	// 240..255 would favour the first 16 letters under %20: they are skipped.
	in := []byte{255, 0, 240, 19, 20, 239, 241, 1, 2, 3, 250, 4, 5, 6, 7, 8, 9}
	got, err := newUserCode(bytes.NewReader(append(in, make([]byte, 32)...)))
	if err != nil {
		t.Fatal(err)
	}
	a := UserCodeAlphabet
	want := string([]byte{a[0], a[19], a[0], a[239%20], a[1], a[2], a[3], a[4]})
	if got != want {
		t.Errorf("newUserCode = %q, want %q", got, want)
	}
	// A reader that only gives biased bytes runs dry: an error, not a short or biased code.
	if _, err := newUserCode(bytes.NewReader(bytes.Repeat([]byte{255}, 64))); err == nil {
		t.Error("newUserCode over biased bytes only: no error")
	}
	boom := errors.New("boom")
	if _, err := newUserCode(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("newUserCode over a failing reader = %v, want %v", err, boom)
	}
}

func TestNormalizeUserCode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"WDJB-MJHT", "WDJBMJHT", true},
		{"WDJBMJHT", "WDJBMJHT", true},
		{"wdjb-mjht", "WDJBMJHT", true},
		{" wdjb mjht ", "WDJBMJHT", true},
		{"W-D-J-B-M-J-H-T", "WDJBMJHT", true},
		{"WdJb--MjHt", "WDJBMJHT", true},
		{"", "", false},
		{"----", "", false},
		{"WDJB-MJH", "", false},                            // too short
		{"WDJB-MJHTX", "", false},                          // too long
		{"WDJB-MJHA", "", false},                           // a vowel
		{"WDJB-MJH1", "", false},                           // a digit
		{"WDJB_MJHT", "", false},                           // another separator
		{"WDJB\tMJHT", "", false},                          // a tab is not a space
		{"WDJB-MJHŤ", "", false},                           // not ASCII
		{"WDJB-MJHT\x00", "", false},                       // NUL
		{strings.Repeat(" ", 100) + "WDJBMJHT", "", false}, // longer than anyone types
	} {
		got, ok := NormalizeUserCode(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("NormalizeUserCode(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFormatUserCode(t *testing.T) {
	for in, want := range map[string]string{
		"WDJBMJHT": "WDJB-MJHT",
		"":         "",
		"ABC":      "ABC",
	} {
		if got := FormatUserCode(in); got != want {
			t.Errorf("FormatUserCode(%q) = %q, want %q", in, got, want)
		}
	}
	for range 100 {
		c, err := randomUserCode()
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := NormalizeUserCode(FormatUserCode(c)); !ok || n != c {
			t.Fatalf("NormalizeUserCode(FormatUserCode(%q)) = %q, %v", c, n, ok)
		}
	}
}
