package ldap

// Tests of the account checks (password changed, account locked or disabled) against a real
// slapd with the ppolicy overlay.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

// hourPolicyDN is a second password policy, locking for an hour, that entries opt into with
// pwdPolicySubentry.
const hourPolicyDN = "cn=hour,ou=policies," + ldaptest.Suffix

func startPolicyDirectory(t *testing.T) *ldaptest.Server {
	t.Helper()
	s := ldaptest.StartWith(t, ldaptest.Options{PasswordPolicy: true, MaxFailure: 3}, directory())
	s.Add(t, entry(hourPolicyDN, "objectClass", "pwdPolicy", "objectClass", "device", "cn", "hour",
		"pwdAttribute", "userPassword", "pwdLockout", "TRUE", "pwdMaxFailure", "3", "pwdLockoutDuration", "3600"))
	return s
}

func setPassword(t *testing.T, s *ldaptest.Server, dn, pw string) {
	t.Helper()
	s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: userPassword\nuserPassword: %s\n", dn, ldaptest.SSHA(pw)))
}

func lockAt(t *testing.T, s *ldaptest.Server, dn, value string) {
	t.Helper()
	s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: %s\n", dn, value))
}

func generalized(t time.Time) string { return t.UTC().Format("20060102150405Z") }

// TestSlapdPasswordChangeChangesFingerprint: the ppolicy overlay keeps pwdChangedTime; a
// password change gives the user a new fingerprint, so a session issued before it ends.
// Authenticate and Resolve agree while nothing changes.
func TestSlapdPasswordChangeChangesFingerprint(t *testing.T) {
	t.Parallel()
	s := startPolicyDirectory(t)
	a := open(t, baseConfig(t, s), authn.Deps{})
	ctx := t.Context()
	// An entry that never changed its password has no pwdChangedTime: set one first.
	setPassword(t, s, uidDN("alice"), "alice-pw")
	id, err := login(ctx, a, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	if id.Fingerprint == "" {
		t.Fatal("no fingerprint from a directory that keeps pwdChangedTime")
	}
	r, err := a.Resolve(ctx, "alice")
	if err != nil || r.Fingerprint != id.Fingerprint {
		t.Fatalf("Resolve fingerprint = %q, %v; want Authenticate's %q", r.Fingerprint, err, id.Fingerprint)
	}
	time.Sleep(1100 * time.Millisecond) // pwdChangedTime has whole seconds
	setPassword(t, s, uidDN("alice"), "new-pw")
	r, err = a.Resolve(ctx, "alice")
	if err != nil || r.Fingerprint == id.Fingerprint {
		t.Fatalf("after the password change: Resolve = %+v, %v; want a new fingerprint", r, err)
	}
}

// TestSlapdLockedAccount: ppolicy's pwdAccountLockedTime, read and decided in Go. The
// permanent value 000001010000Z and a lock under a policy without a duration hold until an
// administrator lifts them; a lock under a policy with pwdLockoutDuration ends after it.
// Login and Resolve both refuse a locked account with ErrAccountDisabled, and a user found
// by a search that also asks for the lock attributes is still found when they are absent.
func TestSlapdLockedAccount(t *testing.T) {
	t.Parallel()
	s := startPolicyDirectory(t)
	logs := &logs{}
	a := open(t, baseConfig(t, s), authn.Deps{Logger: logs.logger()})
	ctx := t.Context()
	now := time.Now()

	// bob: locked by an administrator, forever.
	lockAt(t, s, uidDN("bob"), "000001010000Z")
	// carol: three wrong passwords under the default policy (no duration): locked until reset.
	for range 3 {
		if _, err := login(ctx, a, "carol", "wrong"); !errors.Is(err, authn.ErrInvalidCredentials) {
			t.Fatalf("carol's wrong password: %v", err)
		}
	}
	// admin: under the hour policy, locked ten minutes ago; obrien: under it, two hours ago.
	for _, dn := range []string{uidDN("admin"), obrienDN} {
		s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\nadd: pwdPolicySubentry\npwdPolicySubentry: %s\n", dn, hourPolicyDN))
	}
	lockAt(t, s, uidDN("admin"), generalized(now.Add(-10*time.Minute)))
	lockAt(t, s, obrienDN, generalized(now.Add(-2*time.Hour)))

	for _, tc := range []struct {
		user, pw string
		locked   bool
	}{
		{"bob", "bob pw", true},
		{"carol", "carol-pw", true},
		{"admin", "admin-pw", true},
		{"obrien", "obrien-pw", false},
		{"alice", "alice-pw", false},
	} {
		_, rerr := a.Resolve(ctx, tc.user)
		_, lerr := login(ctx, a, tc.user, tc.pw)
		if tc.locked {
			if !errors.Is(rerr, authn.ErrAccountDisabled) || !errors.Is(lerr, authn.ErrAccountDisabled) {
				t.Errorf("%s is locked: Resolve err = %v, login err = %v; want ErrAccountDisabled from both", tc.user, rerr, lerr)
			}
			continue
		}
		if rerr != nil || lerr != nil {
			t.Errorf("%s is not locked: Resolve err = %v, login err = %v", tc.user, rerr, lerr)
		}
	}
	if strings.Contains(logs.String(), "bob pw") || strings.Contains(logs.String(), "carol-pw") {
		t.Fatalf("a log line holds a password:\n%s", logs)
	}

	// Lifting the lock lets bob in again.
	s.Modify(t, fmt.Sprintf("dn: %s\nchangetype: modify\ndelete: pwdAccountLockedTime\n", uidDN("bob")))
	if _, err := a.Resolve(ctx, "bob"); err != nil {
		t.Fatalf("bob unlocked: Resolve err = %v", err)
	}
}

// TestSlapdDefaultPolicyFromConfig: an entry that names no policy is under the overlay's
// default, which the directory does not show its users; password_policy_dn names it so its
// pwdLockoutDuration applies.
func TestSlapdDefaultPolicyFromConfig(t *testing.T) {
	t.Parallel()
	s := startPolicyDirectory(t)
	lockAt(t, s, uidDN("bob"), generalized(time.Now().Add(-2*time.Hour)))
	cfg := baseConfig(t, s)
	without := open(t, cfg, authn.Deps{})
	cfg.PasswordPolicyDN = hourPolicyDN // stands in for a default policy with a duration
	with := open(t, cfg, authn.Deps{})
	if _, err := without.Resolve(t.Context(), "bob"); !errors.Is(err, authn.ErrAccountDisabled) {
		t.Fatalf("no duration known: Resolve err = %v, want the lock to hold (ErrAccountDisabled)", err)
	}
	if _, err := with.Resolve(t.Context(), "bob"); err != nil {
		t.Fatalf("an hour's lock from two hours ago: Resolve err = %v, want it over", err)
	}
}

// TestSlapdSessionEnds drives the refresh grant over the LDAP backend: a session outlives
// neither a password change nor a lock, and the audit event says which.
func TestSlapdSessionEnds(t *testing.T) {
	t.Parallel()
	s := startPolicyDirectory(t)
	setPassword(t, s, uidDN("alice"), "alice-pw")
	setPassword(t, s, uidDN("carol"), "carol-pw")
	b := open(t, baseConfig(t, s), authn.Deps{})
	st, err := (&sqlite.Config{Path: filepath.Join(t.TempDir(), "sessions.db")}).Open(context.Background(), sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	var audit bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&audit, nil))
	chain := authn.NewChain([]authn.Member{{Name: "corp", Backend: b}}, nil)
	m := sessions.NewManager(st, sessions.Options{Logger: log})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	ended := map[string]int{}
	srv := authn.NewServer(chain, log, authn.ServerOptions{Sessions: m, Resolver: chain, SessionEnded: func(r string) { ended[r]++ }})
	ctx := t.Context()
	issue := func(user, pw string) string {
		t.Helper()
		resp, err := srv.Authenticate(ctx, &authnv1.AuthenticateRequest{Username: user, Password: pw, Service: "registry", Offline: true})
		if err != nil || resp.GetRefreshToken() == "" {
			t.Fatalf("offline login %s: %v", user, err)
		}
		return resp.GetRefreshToken()
	}
	refresh := func(tok string) error {
		_, err := srv.Refresh(ctx, &authnv1.RefreshRequest{RefreshToken: tok, Service: "registry"})
		return err
	}
	alice, carol, bob := issue("alice", "alice-pw"), issue("carol", "carol-pw"), issue("bob", "bob pw")
	for _, tok := range []string{alice, carol, bob} {
		if err := refresh(tok); err != nil {
			t.Fatalf("refresh before any change: %v", err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // pwdChangedTime has whole seconds
	setPassword(t, s, uidDN("alice"), "changed")
	lockAt(t, s, uidDN("carol"), "000001010000Z")
	for _, tok := range []string{alice, carol} {
		if err := refresh(tok); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("refresh after the change: %v, want Unauthenticated", err)
		}
	}
	if err := refresh(bob); err != nil {
		t.Fatalf("bob changed nothing: %v", err)
	}
	if ended[authn.EndedAccountChanged] != 1 || ended[authn.EndedAccountDisabled] != 1 {
		t.Fatalf("ended sessions = %v, want one changed, one disabled", ended)
	}
	ss, _, err := st.List(ctx, sessions.ListOptions{})
	if err != nil || len(ss) != 1 || ss[0].Subject != "bob" {
		t.Fatalf("sessions left = %+v, %v; want bob's only", ss, err)
	}
	reasons := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["msg"] == "session ended" {
			reasons[ev["subject"].(string)] = ev["reason"].(string)
		}
	}
	if reasons["alice"] != authn.EndedAccountChanged || reasons["carol"] != authn.EndedAccountDisabled {
		t.Fatalf("session ended events = %v", reasons)
	}
}
