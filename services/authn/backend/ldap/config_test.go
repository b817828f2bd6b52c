package ldap

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
)

func validConfig() Config {
	return Config{
		URL: "ldap://ldap.example.org", StartTLS: true,
		BindDN: "cn=portcullis,dc=example,dc=org", BindPasswordFile: "/run/secrets/ldap",
		UserSearch: UserSearch{BaseDN: "ou=people,dc=example,dc=org", Filter: "(objectClass=person)", UsernameAttr: "uid"},
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings, one problem each; none: valid
	}{
		{name: "minimal", edit: func(*Config) {}},
		{name: "ldaps", edit: func(c *Config) { c.URL, c.StartTLS = "ldaps://ad.example.org:636", false }},
		{name: "Active Directory", edit: func(c *Config) {
			c.URL, c.StartTLS = "ldaps://ad.example.org", false
			c.UserSearch = UserSearch{BaseDN: "DC=corp,DC=example,DC=org", Filter: "(&(objectCategory=person)(objectClass=user))",
				UsernameAttr: "sAMAccountName", SubjectAttr: "userPrincipalName"}
			c.GroupSearch = GroupSearch{BaseDN: "OU=Groups,DC=corp,DC=example,DC=org", Filter: "(objectClass=group)",
				UserAttr: "DN", GroupAttr: "member", NameAttr: "cn"}
			c.GroupsFrom, c.NestedGroups = "memberOf", true
			c.Labels = map[string]string{"department": "department", "dn": "DN"}
			c.PoolSize = 16
		}},
		{name: "memberOf only, nested", edit: func(c *Config) { c.GroupsFrom, c.NestedGroups = "memberOf", true }},
		{name: "group name attribute for memberOf alone", edit: func(c *Config) {
			c.GroupsFrom, c.GroupSearch.NameAttr = "memberOf", "displayName"
		}},

		{name: "empty", edit: func(c *Config) { *c = Config{} },
			want: []string{"url: is required", "bind_dn: is required", "bind_password_file: is required",
				"user_search.base_dn: is required", "user_search.username_attr: is required"}},
		{name: "plain ldap without StartTLS", edit: func(c *Config) { c.StartTLS = false },
			want: []string{"start_tls: is required with ldap://"}},
		{name: "StartTLS on ldaps", edit: func(c *Config) { c.URL = "ldaps://x" },
			want: []string{"start_tls: does not apply to ldaps://"}},
		{name: "other scheme", edit: func(c *Config) { c.URL = "https://x" },
			want: []string{"url: scheme must be ldap or ldaps"}},
		{name: "not a URL", edit: func(c *Config) { c.URL = "ldap.example.org" },
			want: []string{"url: \"ldap.example.org\" is not"}},
		{name: "URL with a base DN", edit: func(c *Config) { c.URL = "ldap://x/dc=example,dc=org??sub" },
			want: []string{"url: must be scheme://host[:port] only"}},
		{name: "bad port", edit: func(c *Config) { c.URL = "ldap://x:99999" },
			want: []string{"url: bad port"}},
		{name: "CA and skip verify", edit: func(c *Config) { c.CAFile, c.InsecureSkipVerify = "/ca.pem", true },
			want: []string{"ca_file: is not used with insecure_skip_verify"}},
		{name: "bad DNs", edit: func(c *Config) {
			c.BindDN, c.UserSearch.BaseDN = "portcullis", "ou=people,,"
			c.GroupSearch = GroupSearch{BaseDN: "=x", UserAttr: "DN", GroupAttr: "member"}
		}, want: []string{"bind_dn: \"portcullis\" is not a valid DN", "user_search.base_dn:", "group_search.base_dn:"}},
		{name: "bad password_policy_dn", edit: func(c *Config) { c.PasswordPolicyDN = "default policy" },
			want: []string{"password_policy_dn: \"default policy\" is not a valid DN"}},
		{name: "bad filters", edit: func(c *Config) {
			c.UserSearch.Filter = "objectClass=person"
			c.GroupSearch = GroupSearch{BaseDN: "ou=groups,dc=x", Filter: "(&(objectClass=group)", UserAttr: "DN", GroupAttr: "member"}
		}, want: []string{"user_search.filter: must be in parentheses", "group_search.filter: \"(&(objectClass=group)\" is not a valid"}},
		{name: "attribute names that would change the filter", edit: func(c *Config) {
			c.UserSearch.UsernameAttr = "uid=*)(cn"
			c.UserSearch.SubjectAttr = "DN" // DN is for group user_attr and labels only
			c.GroupSearch = GroupSearch{BaseDN: "ou=groups,dc=x", UserAttr: "uid)", GroupAttr: "member*", NameAttr: "c n"}
			c.Labels = map[string]string{"team": "(department)"}
		}, want: []string{"user_search.username_attr: \"uid=*)(cn\" is not an attribute name",
			"user_search.subject_attr: \"DN\"", "group_search.user_attr:", "group_search.group_attr:",
			"group_search.name_attr:", "labels.team:"}},
		{name: "group_search parts without base_dn", edit: func(c *Config) {
			c.GroupSearch = GroupSearch{Filter: "(objectClass=group)", UserAttr: "DN", GroupAttr: "member"}
		}, want: []string{"group_search.filter: is set but", "group_search.user_attr: is set but", "group_search.group_attr: is set but"}},
		{name: "group_search without attrs", edit: func(c *Config) { c.GroupSearch = GroupSearch{BaseDN: "ou=groups,dc=x"} },
			want: []string{"group_search.user_attr: is required", "group_search.group_attr: is required"}},
		{name: "nested by uid", edit: func(c *Config) {
			c.GroupSearch = GroupSearch{BaseDN: "ou=groups,dc=x", UserAttr: "uid", GroupAttr: "memberUid"}
			c.NestedGroups = true
		}, want: []string{"nested_groups: needs group_search.user_attr DN"}},
		{name: "nested without groups", edit: func(c *Config) { c.NestedGroups = true },
			want: []string{"nested_groups: is set but no groups are read"}},
		{name: "groups_from other", edit: func(c *Config) { c.GroupsFrom = "isMemberOf" },
			want: []string{"groups_from: must be \"memberOf\""}},
		{name: "empty label", edit: func(c *Config) { c.Labels = map[string]string{"": "mail", "x": ""} },
			want: []string{"labels: a label name must not be empty", "labels.x: \"\" is not an attribute name"}},
		{name: "negative numbers", edit: func(c *Config) { c.Timeout, c.PoolSize = config.Duration(-1), -1 },
			want: []string{"timeout: must not be negative", "pool_size: must be between 1 and 1000"}},
		{name: "huge pool", edit: func(c *Config) { c.PoolSize = 5000 },
			want: []string{"pool_size: must be between"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tt.edit(&c)
			errs := c.Validate()
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Validate() = %d problems, want %d:\n  %s", len(got), len(tt.want), strings.Join(got, "\n  "))
			}
			for _, w := range tt.want {
				found := false
				for _, g := range got {
					found = found || strings.Contains(g, w)
				}
				if !found {
					t.Errorf("no problem mentions %q:\n  %s", w, strings.Join(got, "\n  "))
				}
			}
		})
	}
}

// Validate never reads the password file, so no problem it reports can print the password
// (Open's errors are checked against a real directory in TestSlapdOpen).
func TestValidateNeverPrintsThePassword(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-very-secret"
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Config{URL: "ldap://x", BindPasswordFile: pw, InsecureSkipVerify: true, CAFile: pw, PoolSize: -1}
	var msgs []string
	for _, e := range c.Validate() {
		msgs = append(msgs, e.Error())
	}
	if len(msgs) < 5 {
		t.Fatalf("want every problem at once, got %d:\n%s", len(msgs), strings.Join(msgs, "\n"))
	}
	if all := strings.Join(msgs, "\n"); strings.Contains(all, secret) {
		t.Fatalf("the password is printed:\n%s", all)
	}
}

func TestFilters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, got, want string
	}{
		{"username alone", usernameFilter("", "uid", "alice"), "(uid=alice)"},
		{"username ANDed", usernameFilter("(objectClass=person)", "uid", "alice"), "(&(objectClass=person)(uid=alice))"},
		{"username escaped", usernameFilter("(objectClass=person)", "uid", "*)(uid=*"), `(&(objectClass=person)(uid=\2a\29\28uid=\2a))`},
		{"username with backslash and NUL", usernameFilter("", "uid", "a\\b\x00"), `(uid=a\5cb\00)`},
		{"group by DN", groupFilter("(objectClass=groupOfNames)", "member", []string{`cn=O'Brien\, Jr.+uid=x,dc=org`}, false),
			`(&(objectClass=groupOfNames)(member=cn=O'Brien\5c, Jr.+uid=x,dc=org))`},
		{"groups by several DNs", groupFilter("", "member", []string{"cn=a", "cn=b(c)"}, false), `(|(member=cn=a)(member=cn=b\28c\29))`},
		{"in chain", groupFilter("(objectClass=group)", "member", []string{"CN=Bob,DC=corp"}, true),
			"(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Bob,DC=corp))"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

// The keys are the ones issue 8 names, decoded strictly as the config file is.
func TestConfigYAML(t *testing.T) {
	t.Parallel()
	const doc = `
url: ldaps://ad.example.org
start_tls: false
ca_file: /etc/portcullis/ad-ca.pem
insecure_skip_verify: false
bind_dn: CN=portcullis,OU=Service Accounts,DC=corp,DC=example,DC=org
bind_password_file: /run/secrets/ldap-bind
user_search:
  base_dn: OU=People,DC=corp,DC=example,DC=org
  filter: (objectClass=user)
  username_attr: sAMAccountName
  subject_attr: userPrincipalName
group_search:
  base_dn: OU=Groups,DC=corp,DC=example,DC=org
  filter: (objectClass=group)
  user_attr: DN
  group_attr: member
  name_attr: cn
groups_from: memberOf
nested_groups: true
labels:
  department: department
timeout: 3s
pool_size: 8
`
	var c Config
	if err := config.Strict([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{
		URL: "ldaps://ad.example.org", CAFile: "/etc/portcullis/ad-ca.pem",
		BindDN: "CN=portcullis,OU=Service Accounts,DC=corp,DC=example,DC=org", BindPasswordFile: "/run/secrets/ldap-bind",
		UserSearch: UserSearch{BaseDN: "OU=People,DC=corp,DC=example,DC=org", Filter: "(objectClass=user)",
			UsernameAttr: "sAMAccountName", SubjectAttr: "userPrincipalName"},
		GroupSearch: GroupSearch{BaseDN: "OU=Groups,DC=corp,DC=example,DC=org", Filter: "(objectClass=group)",
			UserAttr: "DN", GroupAttr: "member", NameAttr: "cn"},
		GroupsFrom: "memberOf", NestedGroups: true, Labels: map[string]string{"department": "department"},
		Timeout: config.Duration(3 * time.Second), PoolSize: 8,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("decoded %+v\nwant    %+v", c, want)
	}
	if errs := c.Validate(); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	if err := config.Strict([]byte("url: ldaps://x\nbind_password: hunter2\n"), &c); err == nil {
		t.Fatal("an unknown key (bind_password) was accepted")
	}
}
