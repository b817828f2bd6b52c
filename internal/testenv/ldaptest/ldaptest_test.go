package ldaptest_test

import (
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
)

const seed = `dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
`

func dial(t *testing.T, s *ldaptest.Server) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(5 * time.Second)
	return c
}

// TestServer needs Debian's slapd and ldap-utils: it starts a real server and checks what the
// LDAP backend's suite relies on.
func TestServer(t *testing.T) {
	s := ldaptest.Start(t, seed+ldaptest.Line("userPassword", ldaptest.SSHA("alice pw ")))
	s.Add(t, `dn: cn=devs,dc=example,dc=org
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=people,dc=example,dc=org
`)
	const alice = "uid=alice,ou=people,dc=example,dc=org"

	t.Run("StartTLS with the test CA, SSHA password, memberOf", func(t *testing.T) {
		c := dial(t, s)
		if err := c.StartTLS(s.TLSConfig()); err != nil {
			t.Fatal(err)
		}
		if err := c.Bind(alice, "alice pw "); err != nil {
			t.Fatal(err)
		}
		res, err := c.Search(ldap.NewSearchRequest(alice, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"memberOf", "userPassword"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		e := res.Entries[0]
		if got := e.GetAttributeValues("memberOf"); len(got) != 1 || got[0] != "cn=devs,dc=example,dc=org" {
			t.Fatalf("memberOf = %v", got)
		}
		if got := e.GetAttributeValue("userPassword"); got != "" {
			t.Fatalf("a user can read passwords: %q", got)
		}
	})
	t.Run("wrong password refused", func(t *testing.T) {
		c := dial(t, s)
		if err := c.StartTLS(s.TLSConfig()); err != nil {
			t.Fatal(err)
		}
		if err := c.Bind(alice, "alice pw"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("bind with wrong password: %v", err)
		}
	})
	t.Run("no bind without TLS", func(t *testing.T) {
		c := dial(t, s)
		if err := c.Bind(alice, "alice pw "); !ldap.IsErrorWithCode(err, ldap.LDAPResultConfidentialityRequired) {
			t.Fatalf("bind in the clear: %v, want confidentiality required", err)
		}
	})
	t.Run("ldaps", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(alice, "alice pw "); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stop and restart keep the data", func(t *testing.T) {
		s.Stop(t)
		if c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second})); err == nil {
			c.Close()
			t.Fatal("dial succeeded with slapd stopped")
		}
		s.Restart(t)
		c := dial(t, s)
		if err := c.StartTLS(s.TLSConfig()); err != nil {
			t.Fatal(err)
		}
		if err := c.Bind(alice, "alice pw "); err != nil {
			t.Fatalf("after restart: %v", err)
		}
	})
	t.Run("pause hangs, resume answers", func(t *testing.T) {
		c := dial(t, s)
		if err := c.StartTLS(s.TLSConfig()); err != nil {
			t.Fatal(err)
		}
		c.SetTimeout(300 * time.Millisecond)
		s.Pause(t)
		err := c.Bind(alice, "alice pw ")
		s.Resume(t)
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("bind while paused: %v, want a timeout", err)
		}
		c2 := dial(t, s)
		if err := c2.StartTLS(s.TLSConfig()); err != nil {
			t.Fatal(err)
		}
		if err := c2.Bind(alice, "alice pw "); err != nil {
			t.Fatalf("after resume: %v", err)
		}
	})
}

func TestLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		plain bool
	}{
		{"alice", true},
		{"", true},
		{"s3cr:et with spaces", true},
		{" leading", false},
		{"trailing ", false},
		{":colon", false},
		{"<url", false},
		{"two\nlines", false},
		{"Müller", false},
	}
	for _, tt := range tests {
		got := ldaptest.Line("cn", tt.value)
		if tt.plain {
			if got != "cn: "+tt.value+"\n" {
				t.Errorf("Line(%q) = %q, want it plain", tt.value, got)
			}
			continue
		}
		if want := "cn:: " + base64.StdEncoding.EncodeToString([]byte(tt.value)) + "\n"; got != want {
			t.Errorf("Line(%q) = %q, want %q", tt.value, got, want)
		}
	}
}
