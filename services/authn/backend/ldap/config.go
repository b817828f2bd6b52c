package ldap

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// Config configures one directory.
type Config struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string `yaml:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before anything else is sent. An ldap://
	// URL without it is refused: binds would carry passwords in the clear.
	StartTLS bool `yaml:"start_tls"`
	// CAFile is a PEM bundle trusted for the directory's certificate instead of the system roots.
	CAFile string `yaml:"ca_file"`
	// InsecureSkipVerify accepts any certificate. Anyone on the path can then read every
	// password; for a first test against a directory only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// BindDN is the service account that searches for users and groups.
	BindDN string `yaml:"bind_dn"`
	// BindPasswordFile holds the service account's password (one trailing newline is ignored).
	BindPasswordFile string `yaml:"bind_password_file"`
	// UserSearch finds the entry of the user logging in.
	UserSearch UserSearch `yaml:"user_search"`
	// GroupSearch finds the groups that list the user as a member.
	GroupSearch GroupSearch `yaml:"group_search"`
	// GroupsFrom "memberOf" also takes groups from the user entry's memberOf attribute
	// (Active Directory; OpenLDAP's memberof overlay).
	GroupsFrom string `yaml:"groups_from"`
	// NestedGroups adds the groups the user's groups belong to, transitively. On Active
	// Directory (found by its root DSE) group_search asks once with the in-chain matching rule
	// (1.2.840.113556.1.4.1941); elsewhere, and for memberOf, the groups are walked level by
	// level, at most maxNestingDepth levels and maxGroups groups. Needs group_search.user_attr
	// DN when group_search is used: groups list their member groups by DN.
	NestedGroups bool `yaml:"nested_groups"`
	// Labels maps a label name to the user attribute holding its values (every value of a
	// multi-valued attribute, in the directory's order; a label whose attribute the entry
	// lacks is not set). "DN" is the entry's DN.
	Labels map[string]string `yaml:"labels"`
	// PasswordPolicyDN is the entry of the directory's default password policy (OpenLDAP
	// ppolicy's olcPPolicyDefault), read for its pwdLockoutDuration: a user locked by
	// pwdAccountLockedTime whose entry names no policy of its own (pwdPolicySubentry) is
	// under this one. Unset, such a lock holds until it is lifted in the directory, as a
	// policy without a duration says.
	PasswordPolicyDN string `yaml:"password_policy_dn"`
	// Timeout bounds each dial, bind and search (default 5s).
	Timeout config.Duration `yaml:"timeout"`
	// PoolSize is how many connections to the directory are kept and used at once (default 4).
	PoolSize int `yaml:"pool_size"`
}

// UserSearch says where users are and which attribute is their login name.
type UserSearch struct {
	// BaseDN is searched with its whole subtree.
	BaseDN string `yaml:"base_dn"`
	// Filter narrows the search, e.g. (objectClass=person); it is ANDed with
	// (<username_attr>=<the escaped username>).
	Filter string `yaml:"filter"`
	// UsernameAttr holds the login name (uid; sAMAccountName on Active Directory). The
	// username must equal one of its values exactly: the directory matches case-insensitively,
	// but login caches and lockout counters are keyed by the name as typed.
	UsernameAttr string `yaml:"username_attr"`
	// SubjectAttr holds the identity's subject (default: username_attr).
	SubjectAttr string `yaml:"subject_attr"`
}

// GroupSearch finds groups that hold the user's user_attr value in their group_attr.
type GroupSearch struct {
	// BaseDN is searched with its whole subtree; empty: no group search.
	BaseDN string `yaml:"base_dn"`
	// Filter narrows the search, e.g. (objectClass=groupOfNames).
	Filter string `yaml:"filter"`
	// UserAttr is the user attribute groups refer to members by; "DN" is the user's DN.
	UserAttr string `yaml:"user_attr"`
	// GroupAttr is the group attribute listing members (member, uniqueMember, memberUid).
	GroupAttr string `yaml:"group_attr"`
	// NameAttr names a group (default cn); also used for groups found through memberOf.
	NameAttr string `yaml:"name_attr"`
}

const (
	defaultTimeout  = 5 * time.Second
	defaultPoolSize = 4
	maxPoolSize     = 1000
	// dnAttr stands for an entry's DN where an attribute is expected.
	dnAttr = "DN"
	// memberOf is the only groups_from source.
	memberOf = "memberOf"
)

// attrRE is an attribute description (RFC 4512: a name or an OID, with options). Attribute
// names are written into filters as they are, so nothing else may pass.
var attrRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

// Validate reports every problem at once without touching the file system or the network.
// It never reads, so never prints, the bind password.
func (c *Config) Validate() []error {
	var p config.Problems
	c.validateConn(&p)
	if c.BindDN == "" {
		p.Addf("bind_dn", "is required (the service account that searches the directory)")
	} else {
		checkDN(&p, "bind_dn", c.BindDN)
	}
	if c.BindPasswordFile == "" {
		p.Addf("bind_password_file", "is required")
	}

	us := c.UserSearch
	if us.BaseDN == "" {
		p.Addf("user_search.base_dn", "is required")
	} else {
		checkDN(&p, "user_search.base_dn", us.BaseDN)
	}
	checkFilter(&p, "user_search.filter", us.Filter)
	if us.UsernameAttr == "" {
		p.Addf("user_search.username_attr", "is required (uid; sAMAccountName on Active Directory)")
	} else {
		checkAttr(&p, "user_search.username_attr", us.UsernameAttr, false)
	}
	if us.SubjectAttr != "" {
		checkAttr(&p, "user_search.subject_attr", us.SubjectAttr, false)
	}

	gs := c.GroupSearch
	if gs.BaseDN == "" {
		for _, f := range []struct{ name, v string }{{"filter", gs.Filter}, {"user_attr", gs.UserAttr}, {"group_attr", gs.GroupAttr}} {
			if f.v != "" {
				p.Addf("group_search."+f.name, "is set but group_search.base_dn is not: no group search would run")
			}
		}
	} else {
		checkDN(&p, "group_search.base_dn", gs.BaseDN)
		checkFilter(&p, "group_search.filter", gs.Filter)
		if gs.UserAttr == "" {
			p.Addf("group_search.user_attr", "is required with group_search.base_dn (DN, or an attribute such as uid)")
		} else {
			checkAttr(&p, "group_search.user_attr", gs.UserAttr, true)
		}
		if gs.GroupAttr == "" {
			p.Addf("group_search.group_attr", "is required with group_search.base_dn (member, uniqueMember, memberUid)")
		} else {
			checkAttr(&p, "group_search.group_attr", gs.GroupAttr, false)
		}
		if c.NestedGroups && gs.UserAttr != "" && !strings.EqualFold(gs.UserAttr, dnAttr) {
			p.Addf("nested_groups", "needs group_search.user_attr DN: groups list their member groups by DN")
		}
	}
	if gs.NameAttr != "" {
		checkAttr(&p, "group_search.name_attr", gs.NameAttr, false)
	}
	if c.GroupsFrom != "" && c.GroupsFrom != memberOf {
		p.Addf("groups_from", "must be %q or empty, not %q", memberOf, c.GroupsFrom)
	}
	if c.NestedGroups && gs.BaseDN == "" && c.GroupsFrom == "" {
		p.Addf("nested_groups", "is set but no groups are read (set group_search.base_dn or groups_from: memberOf)")
	}

	names := make([]string, 0, len(c.Labels))
	for name := range c.Labels {
		names = append(names, name)
	}
	sort.Strings(names) // problems in a stable order
	for _, name := range names {
		if name == "" {
			p.Addf("labels", "a label name must not be empty")
			continue
		}
		checkAttr(&p, "labels."+name, c.Labels[name], true)
	}

	if c.PasswordPolicyDN != "" {
		checkDN(&p, "password_policy_dn", c.PasswordPolicyDN)
	}
	if c.Timeout < 0 {
		p.Addf("timeout", "must not be negative")
	}
	if c.PoolSize < 0 || c.PoolSize > maxPoolSize {
		p.Addf("pool_size", "must be between 1 and %d (0: %d)", maxPoolSize, defaultPoolSize)
	}
	return p.Errs()
}

func (c *Config) validateConn(p *config.Problems) {
	if c.URL == "" {
		p.Addf("url", "is required (ldaps://host or ldap://host with start_tls)")
		return
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		p.Addf("url", "%q is not an ldap:// or ldaps:// URL with a host", c.URL)
		return
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		p.Addf("url", "must be scheme://host[:port] only (base DNs and filters have their own settings)")
	}
	if port := u.Port(); port != "" {
		if _, err := net.LookupPort("tcp", port); err != nil {
			p.Addf("url", "bad port %q", port)
		}
	}
	switch u.Scheme {
	case "ldaps":
		if c.StartTLS {
			p.Addf("start_tls", "does not apply to ldaps:// (already TLS)")
		}
	case "ldap":
		if !c.StartTLS {
			p.Addf("start_tls", "is required with ldap:// (else passwords cross the network in the clear); or use ldaps://")
		}
	default:
		p.Addf("url", "scheme must be ldap or ldaps, not %q", u.Scheme)
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		p.Addf("ca_file", "is not used with insecure_skip_verify: choose one")
	}
}

func checkDN(p *config.Problems, path, dn string) {
	if _, err := goldap.ParseDN(dn); err != nil {
		p.Addf(path, "%q is not a valid DN: %v", dn, err)
	}
}

func checkFilter(p *config.Problems, path, f string) {
	if f == "" {
		return
	}
	if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") {
		p.Addf(path, "must be in parentheses, e.g. (objectClass=person)")
		return
	}
	if _, err := goldap.CompileFilter(f); err != nil {
		p.Addf(path, "%q is not a valid LDAP filter: %v", f, err)
	}
}

func checkAttr(p *config.Problems, path, a string, dnOK bool) {
	if strings.EqualFold(a, dnAttr) {
		if !dnOK {
			p.Addf(path, "%q: DN stands for the entry's DN only in group_search.user_attr and labels", a)
		}
		return
	}
	if !attrRE.MatchString(a) {
		p.Addf(path, "%q is not an attribute name", a)
	}
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// usernameFilter is user_search.filter ANDed with an equality match on attr. value is escaped
// here, and only here, so no username can add terms to the filter.
func usernameFilter(base, attr, value string) string {
	eq := "(" + attr + "=" + goldap.EscapeFilter(value) + ")"
	if base == "" {
		return eq
	}
	return "(&" + base + eq + ")"
}

// ruleInChain is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN: the member attribute
// matches through any number of nested groups.
const ruleInChain = "1.2.840.113556.1.4.1941"

// groupFilter finds groups under filter whose attr holds one of values; with inChain the
// match follows nesting (Active Directory only).
func groupFilter(base, attr string, values []string, inChain bool) string {
	rule := ""
	if inChain {
		rule = ":" + ruleInChain + ":"
	}
	var b strings.Builder
	if len(values) > 1 {
		b.WriteString("(|")
	}
	for _, v := range values {
		fmt.Fprintf(&b, "(%s%s=%s)", attr, rule, goldap.EscapeFilter(v))
	}
	if len(values) > 1 {
		b.WriteString(")")
	}
	if base == "" {
		return b.String()
	}
	return "(&" + base + b.String() + ")"
}
