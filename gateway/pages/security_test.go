package pages

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLocalPath(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"/ok?x=1", "/ok?x=1"},
		{"/device?user_code=WDJB-MJHT", "/device?user_code=WDJB-MJHT"},
		{"/a/b#frag", "/a/b#frag"},
		{"/%2F%2Fevil.com", "/%2F%2Fevil.com"}, // a path on this host: browsers do not decode it into one
		{"", "/"},
		{"//evil.com", "/"},
		{"///evil.com", "/"},
		{`/\evil.com`, "/"},
		{`/\\evil.com`, "/"},
		{`/ok\..\x`, "/"},
		{"https://evil.com", "/"},
		{"https:/evil.com", "/"},
		{"javascript:alert(1)", "/"},
		{"JavaScript:alert(1)", "/"},
		{"data:text/html,x", "/"},
		{"evil.com", "/"},
		{"./x", "/"},
		{"/\t/evil.com", "/"},
		{"/\n/evil.com", "/"},
		{"/\x00", "/"},
		{"/\x7f", "/"},
		{"/ok\r\nLocation: https://evil.com", "/"},
		{"/" + strings.Repeat("a", maxReturnTo), "/"},
		{"/%zz", "/"},
	}
	for _, tt := range tests {
		if got := localPath(tt.in); got != tt.want {
			t.Errorf("localPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzLocalPath: whatever comes in, what goes out is "/" or the input, and a browser resolving
// it against our origin stays on our origin.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "//evil.com", `/\evil.com`, "/ok?x=1", "https://evil.com", "/\t/x", "/%2F/x"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://auth.example.com/signin")
	f.Fuzz(func(t *testing.T, s string) {
		got := localPath(s)
		if got != "/" && got != s {
			t.Fatalf("localPath(%q) = %q", s, got)
		}
		// Browsers drop tabs and newlines and read a backslash as a slash before resolving.
		norm := strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(got)
		u, err := base.Parse(norm)
		if err != nil {
			return
		}
		if u.Host != base.Host || u.Scheme != base.Scheme {
			t.Fatalf("localPath(%q) = %q leaves for %s://%s", s, got, u.Scheme, u.Host)
		}
	})
}

func TestSigninURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/":                       "/signin?return_to=%2F",
		"//evil.com":              "/signin?return_to=%2F",
		"/device?user_code=A&b=c": "/signin?return_to=%2Fdevice%3Fuser_code%3DA%26b%3Dc",
	} {
		if got := signinURL(in); got != want {
			t.Errorf("signinURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSRFToken(t *testing.T) {
	t.Parallel()
	a, b := csrfFor("pcw_a"), csrfFor("pcw_b")
	if a == b || a != csrfFor("pcw_a") || len(a) != 43 {
		t.Fatalf("csrfFor: %q %q", a, b)
	}
	tests := []struct {
		session, got string
		ok           bool
	}{
		{"pcw_a", a, true},
		{"pcw_a", b, false},
		{"pcw_a", "", false},
		{"", csrfFor(""), false},
		{"pcw_a", a + "x", false},
		{"pcw_a", strings.ToUpper(a), false},
	}
	for _, tt := range tests {
		if got := validCSRF(tt.session, tt.got); got != tt.ok {
			t.Errorf("validCSRF(%q, %q) = %v", tt.session, tt.got, got)
		}
	}
	if r1, r2 := randomToken(), randomToken(); r1 == r2 || len(r1) != 43 {
		t.Errorf("randomToken: %q %q", r1, r2)
	}
}

func TestParseExpiry(t *testing.T) {
	t.Parallel()
	const max = 90 * day
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"7", 7 * day, true},
		{"90", 90 * day, true},
		{"max", max, true},
		{"91", 0, false},
		{"0", 0, false},
		{"-1", 0, false},
		{"", 0, false},
		{"7d", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, msg := parseExpiry(tt.in, max)
		if got != tt.want || (msg == "") != tt.ok {
			t.Errorf("parseExpiry(%q) = %v, %q", tt.in, got, msg)
		}
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	got, msg := parseScopes("  a:b:pull \r\n\n\tc:d:push\n")
	if msg != "" || strings.Join(got, "|") != "a:b:pull|c:d:push" {
		t.Errorf("parseScopes = %q, %q", got, msg)
	}
	if got, msg := parseScopes(""); got != nil || msg != "" {
		t.Errorf("empty: %q, %q", got, msg)
	}
	if _, msg := parseScopes(strings.Repeat("x", maxScope+1)); msg == "" {
		t.Error("an overlong scope passed")
	}
	if _, msg := parseScopes(strings.Repeat("s\n", maxScopes+1)); msg == "" {
		t.Error("too many scopes passed")
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	if got := clip("short", 10); got != "short" {
		t.Errorf("clip = %q", got)
	}
	if got := clip("ééééé", 5); got != "éé…" { // 2-byte runes: never half of one
		t.Errorf("clip = %q", got)
	}
}

func TestSpan(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{time.Hour: "1 hour", 12 * time.Hour: "12 hours", 36 * time.Hour: "36 hours", 14 * day: "14 days", time.Minute: "1 hour"} {
		if got := span(d); got != want {
			t.Errorf("span(%v) = %q, want %q", d, got, want)
		}
	}
}
