package ldap

import (
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// Active Directory's userAccountControl is a flag set; ACCOUNTDISABLE (0x2) is what disables.
// No Active Directory runs here, so the decision is tested on the values AD writes.
func TestADDisabled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		uac  string
		want bool
	}{
		{"512", false},   // NORMAL_ACCOUNT
		{"514", true},    // NORMAL_ACCOUNT | ACCOUNTDISABLE
		{"66048", false}, // NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD
		{"66050", true},  // … | ACCOUNTDISABLE
		{"2", true},
		{"16", false}, // LOCKOUT alone is not ACCOUNTDISABLE (AD's lockout is lockoutTime)
		{" 514 ", true},
		{"4096", false}, // WORKSTATION_TRUST_ACCOUNT
		{"not a number", true},
	} {
		if got := adDisabled(tc.uac); got != tc.want {
			t.Errorf("adDisabled(%q) = %v, want %v", tc.uac, got, tc.want)
		}
	}
}

func TestPPolicyLocked(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		value    string
		duration time.Duration
		want     bool
	}{
		{"permanent, no duration", "000001010000Z", 0, true},
		{"permanent beats a duration", "000001010000Z", time.Minute, true},
		{"no duration: until lifted", "20261207100000Z", 0, true},
		{"within the duration", "20261207115500Z", 10 * time.Minute, true},
		{"past the duration", "20261207114900Z", 10 * time.Minute, false},
		{"exactly at the end", "20261207115000Z", 10 * time.Minute, false},
		{"fractional seconds", "20261207115959.123Z", time.Minute, true},
		{"offset", "20261207125500+0100", 10 * time.Minute, true},
		{"without seconds", "202612071155Z", 10 * time.Minute, true},
		{"unreadable", "yesterday", time.Minute, true},
	} {
		if got := ppolicyLocked(tc.value, tc.duration, now); got != tc.want {
			t.Errorf("%s: ppolicyLocked(%q, %v) = %v, want %v", tc.name, tc.value, tc.duration, got, tc.want)
		}
	}
}

// The fingerprint follows pwdLastSet (AD) and pwdChangedTime (ppolicy), nothing else.
func TestPasswordFingerprint(t *testing.T) {
	t.Parallel()
	mk := func(attrs map[string][]string) *goldap.Entry { return goldap.NewEntry("uid=a,dc=x", attrs) }
	none := passwordFingerprint(mk(map[string][]string{"uid": {"a"}, "userAccountControl": {"512"}}))
	if none != "" {
		t.Fatalf("no password-change attribute: fingerprint %q, want \"\"", none)
	}
	a := passwordFingerprint(mk(map[string][]string{"pwdLastSet": {"133000000000000000"}}))
	b := passwordFingerprint(mk(map[string][]string{"pwdLastSet": {"133000000000000001"}}))
	c := passwordFingerprint(mk(map[string][]string{"pwdChangedTime": {"20261207120000Z"}}))
	if a == "" || a == b || c == "" || c == a {
		t.Fatalf("fingerprints %q, %q, %q: want distinct, non-empty", a, b, c)
	}
}

// The account attributes are asked for with every user search, whatever else is configured.
func TestWantedAttrsIncludeAccountAttrs(t *testing.T) {
	t.Parallel()
	b := &backend{usernameAttr: "uid", subjectAttr: "uid"}
	got := map[string]bool{}
	for _, a := range b.wantedAttrs() {
		got[a] = true
	}
	for _, a := range []string{"userAccountControl", "pwdLastSet", "pwdAccountLockedTime", "pwdChangedTime", "pwdPolicySubentry"} {
		if !got[a] {
			t.Errorf("user search does not ask for %s", a)
		}
	}
}
