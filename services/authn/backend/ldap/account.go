package ldap

import (
	"strconv"
	"strings"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/services/authn"
)

// Attributes that say whether an account may log in and when its password last changed.
// They are read with the user's entry and decided here, in Go, rather than ANDed into the
// search as a NOT-filter: on a directory that lacks an attribute or its matching rule such a
// filter evaluates Undefined and finds nobody. Absent means active, and no change recorded.
const (
	// Active Directory: userAccountControl flags (ACCOUNTDISABLE is 0x2) and pwdLastSet.
	attrUserAccountControl = "userAccountControl"
	attrPwdLastSet         = "pwdLastSet"
	// OpenLDAP ppolicy (draft-behera): operational attributes, returned only when asked for.
	attrPwdAccountLockedTime = "pwdAccountLockedTime"
	attrPwdChangedTime       = "pwdChangedTime"
	attrPwdPolicySubentry    = "pwdPolicySubentry"
	attrPwdLockoutDuration   = "pwdLockoutDuration"
)

// accountAttrs are asked for with every user search.
var accountAttrs = []string{attrUserAccountControl, attrPwdLastSet, attrPwdAccountLockedTime, attrPwdChangedTime, attrPwdPolicySubentry}

// uacAccountDisable is Active Directory's ACCOUNTDISABLE flag of userAccountControl.
const uacAccountDisable = 0x2

// permanentLock is the pwdAccountLockedTime an administrator sets to lock an account until
// they unlock it, whatever the policy's duration.
const permanentLock = "000001010000Z"

// policyCacheTTL is how long a policy's pwdLockoutDuration is remembered: policies change
// rarely, and a refresh grant should not cost a second search each time.
const policyCacheTTL = time.Minute

// adDisabled reports whether a userAccountControl value has ACCOUNTDISABLE set. A value that
// is not a number is taken as disabled: the attribute is there to say something, and what it
// says cannot be read.
func adDisabled(uac string) bool {
	v, err := strconv.ParseInt(strings.TrimSpace(uac), 10, 64)
	return err != nil || v&uacAccountDisable != 0
}

// ppolicyLocked reports whether a pwdAccountLockedTime value still locks the account at now.
// duration is the governing policy's pwdLockoutDuration; 0 (unset, or unknown to us) means
// the lock lasts until an administrator lifts it, as draft-behera says of a policy without
// one. The permanent value, and a value that does not parse, always lock.
func ppolicyLocked(lockedTime string, duration time.Duration, now time.Time) bool {
	if lockedTime == permanentLock || duration <= 0 {
		return true
	}
	at, ok := parseGeneralizedTime(lockedTime)
	if !ok {
		return true
	}
	return now.Before(at.Add(duration))
}

// parseGeneralizedTime reads the GeneralizedTime forms directories write: seconds optional,
// a fraction optional, UTC ("Z") or an offset.
func parseGeneralizedTime(v string) (time.Time, bool) {
	for _, layout := range []string{"20060102150405Z0700", "200601021504Z0700"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// passwordFingerprint is what identity.Fingerprint holds for a directory user: the time the
// directory last recorded a password change (AD pwdLastSet, ppolicy pwdChangedTime). ""
// when the directory records none; then a password change cannot be seen, only a lock.
func passwordFingerprint(e *goldap.Entry) string {
	var parts []string
	for _, a := range []string{attrPwdLastSet, attrPwdChangedTime} {
		if v := e.GetEqualFoldAttributeValue(a); v != "" {
			parts = append(parts, a+"="+v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "l1:" + strings.Join(parts, ",")
}

// policyDurations remembers password policies' pwdLockoutDuration by policy DN.
type policyDurations struct {
	mu sync.Mutex
	m  map[string]policyDuration
}

type policyDuration struct {
	d       time.Duration
	expires time.Time
}

func (p *policyDurations) get(dn string, now time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.m[strings.ToLower(dn)]
	if !ok || !now.Before(v.expires) {
		return 0, false
	}
	return v.d, true
}

func (p *policyDurations) put(dn string, d time.Duration, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]policyDuration{}
	}
	p.m[strings.ToLower(dn)] = policyDuration{d: d, expires: now.Add(policyCacheTTL)}
}

// accountActive decides from the user's entry whether the account may log in now. It reads
// the governing password policy only when the entry holds a lock with a date.
func (b *backend) accountActive(c *conn, e *goldap.Entry) (bool, error) {
	if uac := e.GetEqualFoldAttributeValue(attrUserAccountControl); uac != "" && adDisabled(uac) {
		return false, nil
	}
	locked := e.GetEqualFoldAttributeValue(attrPwdAccountLockedTime)
	if locked == "" {
		return true, nil
	}
	if locked == permanentLock {
		return false, nil
	}
	policy := e.GetEqualFoldAttributeValue(attrPwdPolicySubentry)
	if policy == "" {
		policy = b.passwordPolicyDN
	}
	var duration time.Duration
	if policy != "" {
		d, err := b.lockoutDuration(c, policy)
		if err != nil {
			return false, err
		}
		duration = d
	}
	return !ppolicyLocked(locked, duration, b.now()), nil
}

// lockoutDuration reads a policy entry's pwdLockoutDuration (seconds), remembered for a
// minute. A policy entry that is missing or has no duration gives 0: the lock holds.
func (b *backend) lockoutDuration(c *conn, dn string) (time.Duration, error) {
	now := b.now()
	if d, ok := b.policies.get(dn, now); ok {
		return d, nil
	}
	res, err := c.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1,
		b.timeLimit(), false, "(objectClass=*)", []string{attrPwdLockoutDuration}, nil))
	var d time.Duration
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		b.log.Warn("ldap password policy entry not found; its locks are taken to hold until lifted", "policy_dn", dn)
	case err != nil:
		return 0, c.fail("password policy read", err)
	case len(res.Entries) == 1:
		if s, perr := strconv.ParseInt(res.Entries[0].GetEqualFoldAttributeValue(attrPwdLockoutDuration), 10, 64); perr == nil && s > 0 {
			d = time.Duration(s) * time.Second
		}
	}
	b.policies.put(dn, d, now)
	return d, nil
}

// checkActive is accountActive as the backend's answer: ErrAccountDisabled for an account
// that may not log in, logged with its DN (the audit event has the username).
func (b *backend) checkActive(c *conn, e *goldap.Entry) error {
	active, err := b.accountActive(c, e)
	if err != nil {
		return err
	}
	if !active {
		b.log.Info("ldap account disabled or locked", "dn", e.DN)
		return authn.ErrAccountDisabled
	}
	return nil
}
