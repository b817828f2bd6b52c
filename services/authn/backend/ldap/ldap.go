// Package ldap authenticates against an LDAP directory or Active Directory: it finds the
// user's entry with a service account, binds as that entry with the password, and reads the
// user's groups and label attributes.
package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// Bounds of the nested-group walk: a cycle or a huge hierarchy must not turn one login into
// thousands of searches.
const (
	maxNestingDepth = 16
	maxGroups       = 1000
	// walkBatch is how many group DNs one search of the walk asks about.
	walkBatch = 50
)

// Active Directory root DSE capabilities (AD DS, AD LDS): they support the in-chain rule.
var adCapabilities = []string{"1.2.840.113556.1.4.800", "1.2.840.113556.1.4.1851"}

// errServiceBind: the directory refused the service account. Callers see ErrUnavailable
// (the user is not to blame); Open fails on it, since only the configuration can fix it.
var errServiceBind = fmt.Errorf("%w: service account refused", authn.ErrUnavailable)

// nesting is how nested groups are found, learnt from the first connection's root DSE.
const (
	nestingUnknown int32 = iota
	nestingInChain
	nestingWalk
)

type backend struct {
	authn.UnimplementedBackend
	log  *slog.Logger
	pool *pool

	userBase, userFilter string
	usernameAttr         string
	subjectAttr          string
	userAttrs            []string // what a user search asks for

	groupBase, groupFilter string // groupBase "": no group search
	groupUserAttr          string
	groupAttr              string
	nameAttr               string
	fromMemberOf           bool
	nested                 bool
	nesting                atomic.Int32

	labels  map[string]string
	timeout time.Duration
	dialer  *dialer

	// Account checks (account.go): the default password policy's DN, the policies'
	// lockout durations as last read, and the clock locks are judged by.
	passwordPolicyDN string
	policies         policyDurations
	now              func() time.Time
}

// A directory holds no bcrypt hashes: BcryptCost stays 0, so the chain tops a refused
// password up with a bcrypt comparison.
var _ authn.Backend = (*backend)(nil)

// Open reads the bind password and CA file and connects once to check the service account.
// A directory that cannot be reached does not stop Open (logins answer ErrUnavailable until
// it is back); a directory that refuses the service account does.
func (c *Config) Open(ctx context.Context, deps authn.Deps) (authn.Backend, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("ldap: %w", errors.Join(errs...))
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	pw, err := os.ReadFile(c.BindPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("ldap: bind_password_file: %w", err)
	}
	password := strings.TrimSuffix(strings.TrimSuffix(string(pw), "\n"), "\r")
	if password == "" {
		return nil, fmt.Errorf("ldap: bind_password_file %s is empty", c.BindPasswordFile)
	}
	u, _ := url.Parse(c.URL) // Validate parsed it
	// InsecureSkipVerify is the operator's explicit choice, warned about loudly below.
	tc := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ldap: ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ldap: ca_file %s holds no PEM certificate", c.CAFile)
		}
	}
	if c.InsecureSkipVerify {
		log.Warn("INSECURE: ldap insecure_skip_verify is set: the directory's certificate is not checked, so "+
			"anyone on the network path can impersonate it and read every password sent to it", "url", c.URL)
	}
	port := u.Port()
	if port == "" {
		port = "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
	}
	timeout := orDefault(c.Timeout.D(), defaultTimeout)
	b := &backend{
		log:              log,
		userBase:         c.UserSearch.BaseDN,
		userFilter:       c.UserSearch.Filter,
		usernameAttr:     c.UserSearch.UsernameAttr,
		subjectAttr:      orDefault(c.UserSearch.SubjectAttr, c.UserSearch.UsernameAttr),
		groupBase:        c.GroupSearch.BaseDN,
		groupFilter:      c.GroupSearch.Filter,
		groupAttr:        c.GroupSearch.GroupAttr,
		nameAttr:         orDefault(c.GroupSearch.NameAttr, "cn"),
		fromMemberOf:     c.GroupsFrom == memberOf,
		nested:           c.NestedGroups,
		timeout:          timeout,
		passwordPolicyDN: c.PasswordPolicyDN,
		now:              now,
		dialer: &dialer{network: "tcp", addr: net.JoinHostPort(u.Hostname(), port), ldaps: u.Scheme == "ldaps",
			startTLS: c.StartTLS, tls: tc, timeout: timeout, bindDN: c.BindDN, bindPassword: password},
	}
	if b.groupBase != "" {
		b.groupUserAttr = dnOr(c.GroupSearch.UserAttr)
	}
	if len(c.Labels) > 0 {
		b.labels = make(map[string]string, len(c.Labels))
		for label, a := range c.Labels {
			b.labels[label] = dnOr(a)
		}
	}
	b.userAttrs = b.wantedAttrs()
	b.pool = newPool(orDefault(c.PoolSize, defaultPoolSize), b.dial, now)

	// One connection now: a refused service account is a configuration error to report at
	// start, not on every login.
	cn, _, err := b.pool.get(ctx)
	switch {
	case errors.Is(err, errServiceBind):
		return nil, err
	case err != nil:
		log.Warn("ldap directory not reachable at start; logins answer unavailable until it is", "url", c.URL, "error", err)
	default:
		b.pool.put(cn)
	}
	return b, nil
}

// wantedAttrs are the user attributes the identity is built from.
func (b *backend) wantedAttrs() []string {
	attrs := []string{b.usernameAttr, b.subjectAttr}
	if b.fromMemberOf {
		attrs = append(attrs, memberOf)
	}
	if b.groupUserAttr != "" && b.groupUserAttr != dnAttr {
		attrs = append(attrs, b.groupUserAttr)
	}
	for _, a := range b.labels {
		if a != dnAttr {
			attrs = append(attrs, a)
		}
	}
	attrs = append(attrs, accountAttrs...)
	slices.Sort(attrs)
	return slices.Compact(attrs)
}

// dial connects and, the first time, learns how this directory resolves nested groups.
func (b *backend) dial(ctx context.Context) (*conn, error) {
	c, err := b.dialer.dial(ctx)
	if errors.Is(err, errServiceBind) {
		b.log.Error("ldap configuration error: the directory refused the service account's bind; "+
			"check bind_dn and bind_password_file", "bind_dn", b.dialer.bindDN)
	}
	if err != nil {
		return nil, err
	}
	if b.nested && b.groupBase != "" && b.nesting.Load() == nestingUnknown {
		mode, how := nestingWalk, "a walk, level by level"
		res, err := c.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1,
			b.timeLimit(), false, "(objectClass=*)", []string{"supportedCapabilities"}, nil))
		switch {
		case err != nil && isConnErr(err):
			_ = c.Close()
			return nil, unavailable("root DSE", err)
		case err == nil && len(res.Entries) == 1 &&
			slices.ContainsFunc(res.Entries[0].GetEqualFoldAttributeValues("supportedCapabilities"),
				func(v string) bool { return slices.Contains(adCapabilities, v) }):
			mode, how = nestingInChain, "Active Directory's in-chain matching rule"
		}
		if b.nesting.CompareAndSwap(nestingUnknown, mode) {
			b.log.Info("ldap nested groups resolved by "+how, "group_base_dn", b.groupBase)
		}
	}
	return c, nil
}

// Authenticate implements authn.Backend: search the user as the service account, then
// bind as the user's entry with the password.
func (b *backend) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	if !plausible(cr.Username) {
		return identity.Identity{}, authn.ErrNoMatch
	}
	var id identity.Identity
	err := b.withConn(ctx, func(c *conn) error {
		e, err := b.findUser(c, b.usernameAttr, cr.Username)
		if err != nil {
			if errors.Is(err, errSeveral) {
				return fmt.Errorf("%w: %w", authn.ErrInvalidCredentials, err)
			}
			return err
		}
		// go-ldap refuses empty passwords too, but an unauthenticated bind (RFC 4513 5.1.2)
		// succeeding on some servers is exactly what must never be a login.
		if cr.Password == "" {
			return authn.ErrInvalidCredentials
		}
		// Before the bind: a disabled account's bind would only add to its failure count.
		if err := b.checkActive(c, e); err != nil {
			return err
		}
		if err := b.bindUser(c, e.DN, string(cr.Password)); err != nil {
			return err
		}
		id, err = b.identity(c, e, b.usernameAttr, cr.Username)
		id.Fingerprint = passwordFingerprint(e)
		return err
	})
	return id, err
}

// CanResolve implements authn.Backend: the directory is asked again.
func (b *backend) CanResolve() bool { return true }

// Resolve implements authn.Backend: the user's entry is read again, without a password.
func (b *backend) Resolve(ctx context.Context, subject string) (identity.Identity, error) {
	if !plausible(subject) {
		return identity.Identity{}, authn.ErrNoMatch
	}
	var id identity.Identity
	err := b.withConn(ctx, func(c *conn) error {
		e, err := b.findUser(c, b.subjectAttr, subject)
		if err != nil {
			if errors.Is(err, errSeveral) {
				return fmt.Errorf("%w: %w", authn.ErrNoMatch, err)
			}
			return err
		}
		// A refresh grant has no password for the directory to refuse: whether the account
		// may still log in is decided here.
		if err := b.checkActive(c, e); err != nil {
			return err
		}
		id, err = b.identity(c, e, b.subjectAttr, subject)
		id.Fingerprint = passwordFingerprint(e)
		return err
	})
	return id, err
}

// Close closes the pooled connections.
func (b *backend) Close(context.Context) error {
	b.pool.close()
	return nil
}

// maxNameLen bounds the names sent to the directory: no entry has a longer one, and a
// directory that refuses an oversized or malformed filter would turn a junk username into
// "unavailable" instead of "unknown user".
const maxNameLen = 256

// plausible says whether name could be a directory value (LDAP strings are UTF-8).
func plausible(name string) bool {
	return name != "" && len(name) <= maxNameLen && utf8.ValidString(name)
}

// withConn runs op on a pooled connection. When a connection that sat in the pool turns out
// broken, op runs once more on a fresh one: the directory may have closed it while idle.
func (b *backend) withConn(ctx context.Context, op func(*conn) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := b.pool.get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("ldap: %w", ctx.Err())
			}
			return err
		}
		// go-ldap's operations take no context: closing the connection ends them.
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		err = op(c)
		if !stop() {
			c.broken = true
		}
		b.pool.put(c)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("ldap: %w", ctx.Err())
		case c.broken && reused && attempt == 0:
			b.log.Debug("ldap pooled connection broken; retrying on a new one", "error", err)
			continue
		}
		return err
	}
}

// errSeveral: more than one entry matches a username; the configuration is at fault.
var errSeveral = errors.New("ldap: several entries match")

// findUser returns the one entry whose attr holds value exactly. No entry, or one that holds
// value only case-insensitively, is ErrNoMatch; several are a configuration error, logged.
func (b *backend) findUser(c *conn, attr, value string) (*goldap.Entry, error) {
	filter := usernameFilter(b.userFilter, attr, value)
	// Two is enough to tell "one" from "several".
	res, err := c.Search(goldap.NewSearchRequest(b.userBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 2,
		b.timeLimit(), false, filter, b.userAttrs, nil))
	if err != nil && !(goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) && res != nil && len(res.Entries) > 1) {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			b.log.Error("ldap user_search.base_dn does not exist", "base_dn", b.userBase)
		}
		return nil, c.fail("user search", err)
	}
	switch len(res.Entries) {
	case 0:
		return nil, authn.ErrNoMatch
	case 1:
	default:
		b.log.Error("ldap configuration error: several directory entries match one user, so none may log in; "+
			"make user_search.filter or username_attr select one entry per user",
			"attr", attr, "value", value, "base_dn", b.userBase,
			"entries", []string{res.Entries[0].DN, res.Entries[1].DN})
		return nil, errSeveral
	}
	e := res.Entries[0]
	if !slices.Contains(e.GetEqualFoldAttributeValues(attr), value) {
		return nil, authn.ErrNoMatch
	}
	return e, nil
}

// bindUser checks password by binding as dn on c, then binds c back to the service account
// so it can go back to the pool; until then it is marked and would be closed instead.
func (b *backend) bindUser(c *conn, dn, password string) error {
	c.userBound = true
	err := c.Bind(dn, password)
	var verdict error
	switch {
	case err == nil:
	case isConnErr(err) || goldap.IsErrorAnyOf(err, goldap.LDAPResultBusy, goldap.LDAPResultUnavailable,
		goldap.LDAPResultTimeLimitExceeded, goldap.LDAPResultAdminLimitExceeded, goldap.LDAPResultOther):
		return c.fail("user bind", err)
	case goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials):
		verdict = authn.ErrInvalidCredentials
	default:
		// Refusals other than a wrong password (account locked by a password policy,
		// unwilling to perform): still a "no" for this user, with the reason in the log.
		b.log.Info("ldap bind refused", "dn", dn, "error", err)
		verdict = fmt.Errorf("%w: %v", authn.ErrInvalidCredentials, err)
	}
	if err := c.Bind(b.dialer.bindDN, b.dialer.bindPassword); err != nil {
		if !isConnErr(err) {
			b.log.Error("ldap service account re-bind refused", "error", err)
		}
		return c.fail("service account re-bind", err)
	}
	c.userBound = false
	return verdict
}

// identity builds what the entry says about the user. subject is value when attr is the
// subject attribute; else the entry's first subject_attr value.
func (b *backend) identity(c *conn, e *goldap.Entry, attr, value string) (identity.Identity, error) {
	subject := value
	if !strings.EqualFold(attr, b.subjectAttr) {
		vs := e.GetEqualFoldAttributeValues(b.subjectAttr)
		if len(vs) == 0 || vs[0] == "" {
			b.log.Error("ldap configuration error: user entry has no user_search.subject_attr", "dn", e.DN, "subject_attr", b.subjectAttr)
			return identity.Identity{}, fmt.Errorf("%w: entry has no %s", authn.ErrInvalidCredentials, b.subjectAttr)
		}
		subject = vs[0]
	}
	groups, err := b.groups(c, e)
	if err != nil {
		return identity.Identity{}, err
	}
	id := identity.Identity{Subject: subject, Groups: groups}
	for label, a := range b.labels {
		vs := []string{e.DN}
		if a != dnAttr {
			vs = e.GetEqualFoldAttributeValues(a) // every value: a multi-valued attribute gives several
		}
		vs = slices.DeleteFunc(slices.Clone(vs), func(v string) bool { return v == "" })
		if len(vs) == 0 {
			continue
		}
		if id.Labels == nil {
			id.Labels = map[string][]string{}
		}
		id.Labels[label] = vs
	}
	return id, nil
}

// groups returns the names of the user's groups, sorted, without repeats; nil for none.
func (b *backend) groups(c *conn, e *goldap.Entry) ([]string, error) {
	var names []string
	if b.groupBase != "" {
		n, err := b.searchedGroups(c, e)
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	if b.fromMemberOf {
		n, err := b.memberOfGroups(c, e.GetEqualFoldAttributeValues(memberOf))
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// searchedGroups runs group_search: the groups whose group_attr holds the user's user_attr,
// and with nested_groups the groups holding those, and so on.
func (b *backend) searchedGroups(c *conn, e *goldap.Entry) ([]string, error) {
	values := []string{e.DN}
	if b.groupUserAttr != dnAttr {
		values = e.GetEqualFoldAttributeValues(b.groupUserAttr)
		if len(values) == 0 {
			return nil, nil
		}
	}
	if b.nested && b.nesting.Load() == nestingInChain {
		entries, err := b.searchGroups(c, values, true)
		if err != nil {
			return nil, err
		}
		return b.groupNames(entries), nil
	}
	var names []string
	seen := map[string]bool{}
	frontier := values
	for depth := 1; len(frontier) > 0; depth++ {
		var next []string
		for batch := range slices.Chunk(frontier, walkBatch) {
			entries, err := b.searchGroups(c, batch, false)
			if err != nil {
				return nil, err
			}
			for _, g := range entries {
				k := dnKey(g.DN)
				if seen[k] {
					continue
				}
				seen[k] = true
				names = append(names, b.groupNames([]*goldap.Entry{g})...)
				next = append(next, g.DN)
			}
		}
		if !b.nested {
			break
		}
		if len(next) > 0 && (depth >= maxNestingDepth || len(seen) >= maxGroups) {
			b.log.Warn("ldap nested groups cut short", "dn", e.DN, "depth", depth, "groups", len(seen))
			break
		}
		frontier = next
	}
	return names, nil
}

func (b *backend) searchGroups(c *conn, values []string, inChain bool) ([]*goldap.Entry, error) {
	res, err := c.Search(goldap.NewSearchRequest(b.groupBase, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, maxGroups,
		b.timeLimit(), false, groupFilter(b.groupFilter, b.groupAttr, values, inChain), []string{b.nameAttr}, nil))
	if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) && res != nil {
		b.log.Warn("ldap group search cut short: more groups than the limit", "limit", maxGroups)
		return res.Entries, nil
	}
	if err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
			b.log.Error("ldap group_search.base_dn does not exist", "base_dn", b.groupBase)
		}
		return nil, c.fail("group search", err)
	}
	return res.Entries, nil
}

// memberOfGroups names the groups in memberOf values (DNs); with nested_groups it follows
// each group's own memberOf.
func (b *backend) memberOfGroups(c *conn, dns []string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	frontier := dns
	for depth := 1; len(frontier) > 0; depth++ {
		var next []string
		for _, dn := range frontier {
			k := dnKey(dn)
			if seen[k] {
				continue
			}
			seen[k] = true
			if name, ok := b.rdnName(dn); ok && !b.nested {
				names = append(names, name)
				continue
			}
			res, err := c.Search(goldap.NewSearchRequest(dn, goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1,
				b.timeLimit(), false, "(objectClass=*)", []string{b.nameAttr, memberOf}, nil))
			if goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject) {
				continue // a dangling memberOf: the group is gone
			}
			if err != nil {
				return nil, c.fail("group read", err)
			}
			names = append(names, b.groupNames(res.Entries)...)
			for _, g := range res.Entries {
				next = append(next, g.GetEqualFoldAttributeValues(memberOf)...)
			}
		}
		if !b.nested {
			break
		}
		if len(next) > 0 && (depth >= maxNestingDepth || len(seen) >= maxGroups) {
			b.log.Warn("ldap nested groups (memberOf) cut short", "depth", depth, "groups", len(seen))
			break
		}
		frontier = next
	}
	return names, nil
}

// rdnName is the group's name when its DN starts with name_attr=<name>, sparing a read.
func (b *backend) rdnName(dn string) (string, bool) {
	d, err := goldap.ParseDN(dn)
	if err != nil || len(d.RDNs) == 0 || len(d.RDNs[0].Attributes) != 1 {
		return "", false
	}
	a := d.RDNs[0].Attributes[0]
	if !strings.EqualFold(a.Type, b.nameAttr) || a.Value == "" {
		return "", false
	}
	return a.Value, true
}

func (b *backend) groupNames(entries []*goldap.Entry) []string {
	var out []string
	for _, g := range entries {
		name := g.GetEqualFoldAttributeValue(b.nameAttr)
		if name == "" {
			b.log.Warn("ldap group without a name attribute ignored", "dn", g.DN, "name_attr", b.nameAttr)
			continue
		}
		out = append(out, name)
	}
	return out
}

// timeLimit is the server-side search limit in whole seconds (the client's own is timeout).
func (b *backend) timeLimit() int {
	return int(math.Ceil(b.timeout.Seconds()))
}

// dnKey identifies a DN however the directory happened to spell it.
func dnKey(dn string) string {
	if d, err := goldap.ParseDN(dn); err == nil {
		return strings.ToLower(d.String())
	}
	return strings.ToLower(dn)
}

// dnOr spells the DN pseudo-attribute one way, however the configuration wrote it.
func dnOr(attr string) string {
	if strings.EqualFold(attr, dnAttr) {
		return dnAttr
	}
	return attr
}

// unavailable wraps a directory failure; its text is for the log only.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: ldap %s: %w", authn.ErrUnavailable, op, err)
}
