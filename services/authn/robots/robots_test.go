package robots_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	robotstest.Run(t, func(*testing.T) robots.Store { return robotstest.NewMemory() })
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"ci", true},
		{"a", true},
		{"9", true},
		{"ci-builder.prod_2", true},
		{strings.Repeat("a", robots.MaxNameLen), true},
		{"", false},
		{strings.Repeat("a", robots.MaxNameLen+1), false},
		{"CI", false},          // one spelling per robot
		{"robot:ci", false},    // ':' ends a Basic-auth user name
		{"-ci", false},         // looks like a flag
		{"ci-", false},         //
		{".ci", false},         //
		{"ci bot", false},      //
		{"ci/bot", false},      // a URL path segment of the admin API
		{"ci%2fbot", false},    //
		{"ünïcode", false},     //
		{"ci\x00", false},      //
		{"a..b", true},         // inner punctuation is fine
		{"0-0", true},          //
		{"x\nother", false},    // log injection
		{"ci\u200bbot", false}, // invisible
	} {
		err := robots.ValidateName(tc.name)
		var inv *robots.InvalidError
		if tc.ok != (err == nil) || (err != nil && !errors.As(err, &inv)) {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strings.Repeat("g", i+1)
		}
		return out
	}
	manyLabels := map[string]string{}
	for i := range robots.MaxLabels + 1 {
		manyLabels[strings.Repeat("l", i+1)] = "v"
	}
	for _, tc := range []struct {
		name string
		spec robots.Spec
		want string // "" = valid
	}{
		{"minimal", robots.Spec{Name: "ci"}, ""},
		{"full", robots.Spec{Name: "ci", Groups: []string{"ci", "pushers"}, Labels: map[string]string{"team": "platform", "tier": ""}, ExpiresIn: 720 * time.Hour}, ""},
		{"bad name", robots.Spec{Name: "CI"}, "name must be"},
		{"empty group", robots.Spec{Name: "ci", Groups: []string{""}}, "a group name must not be empty"},
		{"group twice", robots.Spec{Name: "ci", Groups: []string{"a", "a"}}, `group "a" is given twice`},
		{"control character in group", robots.Spec{Name: "ci", Groups: []string{"a\nb"}}, "printable"},
		{"long group", robots.Spec{Name: "ci", Groups: []string{strings.Repeat("g", robots.MaxValueLen+1)}}, "longer than"},
		{"too many groups", robots.Spec{Name: "ci", Groups: many(robots.MaxGroups + 1)}, "at most"},
		{"empty label name", robots.Spec{Name: "ci", Labels: map[string]string{"": "v"}}, "a label name must not be empty"},
		{"invalid UTF-8 label value", robots.Spec{Name: "ci", Labels: map[string]string{"k": "\xff"}}, "not UTF-8"},
		{"too many labels", robots.Spec{Name: "ci", Labels: manyLabels}, "at most"},
		{"negative expiry", robots.Spec{Name: "ci", ExpiresIn: -time.Second}, "must not be negative"},
		{"sub-second expiry", robots.Spec{Name: "ci", ExpiresIn: time.Millisecond}, "at least 1s"},
		{"one second expiry", robots.Spec{Name: "ci", ExpiresIn: time.Second}, ""},
		{"expiry too far", robots.Spec{Name: "ci", ExpiresIn: robots.MaxExpiresIn + time.Hour}, "at most ten years"},
	} {
		err := tc.spec.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v, want valid", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		k, err := robots.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, robots.KeyPrefix) || len(k) != len(robots.KeyPrefix)+43 || !robots.WellFormed(k) || !robots.LooksLikeKey(k) {
			t.Fatalf("NewKey() = %q: want pcp_ and 43 base64url characters (256 bits)", k)
		}
		if seen[k] {
			t.Fatalf("NewKey() repeated %q", k)
		}
		seen[k] = true
	}
	k, _ := robots.NewKey()
	for _, tc := range []struct {
		key             string
		looks, wellForm bool
	}{
		{k, true, true},
		{"pcp_", true, false},
		{k + "A", true, false},
		{k[:len(k)-1], true, false},
		{k[:10] + "+" + k[11:], true, false}, // base64url only
		{"pcp_" + strings.Repeat("=", 43), true, false},
		{"PCP_" + k[4:], false, false},
		{"pcr_" + k[4:], false, false}, // a refresh token is not a robot key
		{"alice-password", false, false},
		{"", false, false},
	} {
		if got := robots.LooksLikeKey(tc.key); got != tc.looks {
			t.Errorf("LooksLikeKey(%q) = %v, want %v", tc.key, got, tc.looks)
		}
		if got := robots.WellFormed(tc.key); got != tc.wellForm {
			t.Errorf("WellFormed(%q) = %v, want %v", tc.key, got, tc.wellForm)
		}
	}
	if robots.HashKey("pcp_a") == robots.HashKey("pcp_b") {
		t.Error("two keys hash alike")
	}
}

func TestPageToken(t *testing.T) {
	t.Parallel()
	after, ok, err := robots.DecodePageToken(robots.EncodePageToken("ci.bot"))
	if after != "ci.bot" || !ok || err != nil {
		t.Fatalf("round trip = %q, %v, %v", after, ok, err)
	}
	if _, ok, err := robots.DecodePageToken(""); ok || err != nil {
		t.Fatalf("empty token = %v, %v; want the first page", ok, err)
	}
	for _, bad := range []string{"%%%", "AAAA", "e30", robots.EncodePageToken(""), strings.Repeat("A", 1000)} {
		if _, _, err := robots.DecodePageToken(bad); !errors.Is(err, robots.ErrBadPageToken) {
			t.Errorf("DecodePageToken(%q) = %v, want ErrBadPageToken", bad, err)
		}
	}
	for _, tc := range []struct{ in, want int }{{0, robots.DefaultPage}, {-5, robots.DefaultPage}, {1, 1}, {robots.MaxPage, robots.MaxPage}, {robots.MaxPage + 1, robots.MaxPage}} {
		if got := robots.PageSize(tc.in); got != tc.want {
			t.Errorf("PageSize(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestStateAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		r    robots.Robot
		want robots.State
	}{
		{"no expiry", robots.Robot{}, robots.StateActive},
		{"expires later", robots.Robot{ExpiresAt: now.Add(time.Microsecond)}, robots.StateActive},
		{"expires now", robots.Robot{ExpiresAt: now}, robots.StateExpired},
		{"expired", robots.Robot{ExpiresAt: now.Add(-time.Hour)}, robots.StateExpired},
		{"revoked", robots.Robot{RevokedAt: now.Add(-time.Hour)}, robots.StateRevoked},
		{"revoked and expired", robots.Robot{RevokedAt: now, ExpiresAt: now.Add(-time.Hour)}, robots.StateRevoked},
	} {
		if got := tc.r.StateAt(now); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := (robots.Robot{Name: "ci"}).Subject(); got != "robot:ci" {
		t.Errorf("Subject = %q", got)
	}
}

func TestGroupsLabelsEncoding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		g []string
		l map[string]string
	}{
		{nil, nil},
		{[]string{"a", "b \"c\""}, map[string]string{"k": "v", "e": ""}},
	} {
		g, l, err := robots.DecodeGroupsLabels([]byte(robots.EncodeGroups(tc.g)), []byte(robots.EncodeLabels(tc.l)))
		if err != nil || len(g) != len(tc.g) || len(l) != len(tc.l) || (tc.g == nil) != (g == nil) || (tc.l == nil) != (l == nil) {
			t.Errorf("round trip of %v %v = %v %v %v", tc.g, tc.l, g, l, err)
		}
	}
	if robots.EncodeGroups(nil) != "[]" || robots.EncodeLabels(nil) != "{}" {
		t.Error("empty lists are not stored as [] and {}")
	}
	if _, _, err := robots.DecodeGroupsLabels([]byte("nope"), []byte("{}")); err == nil {
		t.Error("corrupt groups decoded")
	}
}
