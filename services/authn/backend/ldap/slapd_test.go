package ldap

// These tests start a real OpenLDAP slapd (internal/testenv/ldaptest) and talk to it over StartTLS with a
// test CA, as the backend would in production.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
)

const (
	people   = "ou=people," + ldaptest.Suffix
	groups   = "ou=groups," + ldaptest.Suffix
	svcDN    = "cn=portcullis,ou=services," + ldaptest.Suffix
	svcPW    = "service pw"
	obrienDN = `cn=O'Brien\, Jr.+uid=obrien,` + people
	// weirdUID has every character that means something in a filter.
	weirdUID = `j*(r)\x`
)

// entry is one LDIF record; attrs are name, value pairs.
func entry(dn string, attrs ...string) string {
	var b strings.Builder
	b.WriteString(ldaptest.Line("dn", dn))
	for i := 0; i+1 < len(attrs); i += 2 {
		b.WriteString(ldaptest.Line(attrs[i], attrs[i+1]))
	}
	return b.String() + "\n"
}

func person(dn, uid, password string, more ...string) string {
	attrs := []string{"objectClass", "inetOrgPerson", "uid", uid, "sn", uid, "cn", uid}
	if password != "" {
		attrs = append(attrs, "userPassword", ldaptest.SSHA(password))
	}
	return entry(dn, append(attrs, more...)...)
}

func group(cn string, members ...string) string {
	attrs := []string{"objectClass", "groupOfNames", "cn", cn}
	for _, m := range members {
		attrs = append(attrs, "member", m)
	}
	return entry("cn="+cn+","+groups, attrs...)
}

func ou(name string) string {
	return entry("ou="+name+","+ldaptest.Suffix, "objectClass", "organizationalUnit", "ou", name)
}

func service() string {
	return ou("services") + entry(svcDN, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject",
		"cn", "portcullis", "userPassword", ldaptest.SSHA(svcPW))
}

func uidDN(uid string) string { return "uid=" + goldap.EscapeDN(uid) + "," + people }

// directory is the seeded tree most tests use. Groups are added members first, so the
// memberof overlay writes memberOf on member groups too.
func directory() string {
	return service() + ou("people") + ou("contractors") + ou("groups") +
		person(uidDN("alice"), "alice", "alice-pw", "cn", "Alice Liddell", "mail", "alice@example.org",
			"departmentNumber", "eng", "employeeNumber", "1001") +
		person(uidDN("bob"), "bob", "bob pw", "employeeNumber", "1002") +
		person(uidDN("carol"), "carol", "carol-pw", "employeeNumber", "1003", "departmentNumber", "eng", "departmentNumber", "platform") +
		entry(obrienDN, "objectClass", "inetOrgPerson", "cn", "O'Brien, Jr.", "uid", "obrien", "sn", "O'Brien",
			"userPassword", ldaptest.SSHA("obrien-pw"), "employeeNumber", "1004") +
		person(uidDN(weirdUID), weirdUID, "weird-pw", "employeeNumber", "1005") +
		person(uidDN("admin"), "admin", "admin-pw", "employeeNumber", "1006") +
		person(uidDN("nopw"), "nopw", "", "employeeNumber", "1007") +
		person(uidDN("dup"), "dup", "dup-pw") +
		person("uid=dup,ou=contractors,"+ldaptest.Suffix, "dup", "dup-pw") +
		group("developers", uidDN("alice"), uidDN("carol")) +
		group("ops", obrienDN) +
		group("engineering", "cn=developers,"+groups) +
		group("staff", "cn=engineering,"+groups) +
		// loop-a and loop-b hold each other; loop-a gets its member once loop-b exists.
		group("loop-a", svcDN) +
		group("loop-b", "cn=loop-a,"+groups, uidDN("bob")) +
		entry("cn=posix-devs,"+groups, "objectClass", "posixGroup", "cn", "posix-devs", "gidNumber", "5000",
			"memberUid", "alice")
}

func startDirectory(t *testing.T) *ldaptest.Server {
	t.Helper()
	s := ldaptest.Start(t, directory())
	s.Modify(t, fmt.Sprintf("dn: cn=loop-a,%s\nchangetype: modify\nadd: member\nmember: cn=loop-b,%s\n", groups, groups))
	return s
}

// baseConfig is group_search over groupOfNames by DN, over StartTLS with the test CA.
func baseConfig(t *testing.T, s *ldaptest.Server) Config {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "bindpw")
	if err := os.WriteFile(pwFile, []byte(svcPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		URL: s.URL, StartTLS: true, CAFile: s.CAFile,
		BindDN: svcDN, BindPasswordFile: pwFile,
		UserSearch: UserSearch{BaseDN: ldaptest.Suffix, Filter: "(objectClass=inetOrgPerson)", UsernameAttr: "uid"},
		GroupSearch: GroupSearch{BaseDN: groups, Filter: "(objectClass=groupOfNames)", UserAttr: "DN",
			GroupAttr: "member", NameAttr: "cn"},
		Timeout: config.Duration(2 * time.Second),
	}
}

// logs collects a backend's log lines.
type logs struct{ testutil.Buffer }

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func open(t *testing.T, cfg Config, deps authn.Deps) *backend {
	t.Helper()
	a, err := cfg.Open(t.Context(), deps)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a.(*backend)
}

func login(ctx context.Context, a authn.Authenticator, user, pw string) (identity.Identity, error) {
	return a.Authenticate(ctx, authn.Credentials{Username: user, Password: authn.Password(pw)})
}

func TestSlapdConformance(t *testing.T) {
	t.Parallel()
	backendtest.Run(t, func(t *testing.T, users []backendtest.User, deps authn.Deps) authn.Backend {
		// LDAP cannot use the suite's bcrypt hashes: the directory gets the passwords, salted
		// and hashed its own way.
		seed := service() + ou("people") + ou("groups")
		members := map[string][]string{}
		for _, u := range users {
			seed += person(uidDN(u.Name), u.Name, u.Password)
			for _, g := range u.Groups {
				members[g] = append(members[g], uidDN(u.Name))
			}
		}
		for g, m := range members {
			seed += group(g, m...)
		}
		s := ldaptest.Start(t, seed)
		return open(t, baseConfig(t, s), deps)
	})
}

func TestSlapdAuthenticate(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	memberOfOnly := func(c *Config) { c.GroupSearch = GroupSearch{}; c.GroupsFrom = "memberOf" }
	tests := []struct {
		name       string
		cfg        func(*Config) // nil: baseConfig
		user, pw   string
		wantErr    error
		wantSub    string // "": user
		wantGroups []string
		wantLabels map[string][]string
		wantLog    string
	}{
		{name: "right password", user: "alice", pw: "alice-pw", wantGroups: []string{"developers"}},
		{name: "password with spaces", user: "bob", pw: "bob pw", wantGroups: []string{"loop-b"}},
		{name: "wrong password", user: "alice", pw: "bob pw", wantErr: authn.ErrInvalidCredentials},
		{name: "empty password", user: "alice", pw: "", wantErr: authn.ErrInvalidCredentials},
		{name: "empty password, entry without a password", user: "nopw", pw: "", wantErr: authn.ErrInvalidCredentials},
		{name: "entry without a password", user: "nopw", pw: "x", wantErr: authn.ErrInvalidCredentials},
		{name: "unknown user", user: "mallory", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "empty username", user: "", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "username differing in case", user: "ALICE", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "outside the user filter", user: "alice", pw: "alice-pw", wantErr: authn.ErrNoMatch,
			cfg: func(c *Config) { c.UserSearch.Filter = "(objectClass=posixAccount)" }},

		{name: "DN that needs escaping", user: "obrien", pw: "obrien-pw", wantGroups: []string{"ops"}},
		{name: "DN that needs escaping, memberOf", user: "obrien", pw: "obrien-pw", wantGroups: []string{"ops"}, cfg: memberOfOnly},
		{name: "username with filter characters", user: weirdUID, pw: "weird-pw"},

		{name: "injection: wildcard", user: "*", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "injection: prefix wildcard", user: "ali*", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "injection: close and OR", user: "admin)(|(uid=*", pw: "admin-pw", wantErr: authn.ErrNoMatch},
		{name: "injection: close and match all", user: "*)(uid=*", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "injection: close and match all, nested", user: "alice)(uid=*))(|(uid=*", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "injection: NUL", user: "alice\x00", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "username not UTF-8", user: "alice\xff", pw: "alice-pw", wantErr: authn.ErrNoMatch},
		{name: "username too long", user: strings.Repeat("a", 100_000), pw: "alice-pw", wantErr: authn.ErrNoMatch},

		{name: "several entries match", user: "dup", pw: "dup-pw", wantErr: authn.ErrInvalidCredentials,
			wantLog: "several directory entries match one user"},

		{name: "nested groups", user: "alice", pw: "alice-pw", wantGroups: []string{"developers", "engineering", "staff"},
			cfg: func(c *Config) { c.NestedGroups = true }},
		{name: "nested groups with a cycle", user: "bob", pw: "bob pw", wantGroups: []string{"loop-a", "loop-b"},
			cfg: func(c *Config) { c.NestedGroups = true }},
		{name: "nested groups, none", user: "admin", pw: "admin-pw", cfg: func(c *Config) { c.NestedGroups = true }},
		{name: "memberOf", user: "alice", pw: "alice-pw", wantGroups: []string{"developers"}, cfg: memberOfOnly},
		{name: "memberOf, nested", user: "alice", pw: "alice-pw", wantGroups: []string{"developers", "engineering", "staff"},
			cfg: func(c *Config) { memberOfOnly(c); c.NestedGroups = true }},
		{name: "memberOf, nested with a cycle", user: "bob", pw: "bob pw", wantGroups: []string{"loop-a", "loop-b"},
			cfg: func(c *Config) { memberOfOnly(c); c.NestedGroups = true }},
		{name: "memberOf, named by another attribute", user: "alice", pw: "alice-pw", wantGroups: []string{"cn=developers," + groups},
			cfg: func(c *Config) { memberOfOnly(c); c.GroupSearch.NameAttr = "entryDN" }},
		{name: "group_search by uid", user: "alice", pw: "alice-pw", wantGroups: []string{"posix-devs"},
			cfg: func(c *Config) {
				c.GroupSearch = GroupSearch{BaseDN: groups, Filter: "(objectClass=posixGroup)", UserAttr: "uid", GroupAttr: "memberUid"}
			}},
		{name: "group_search and memberOf together", user: "alice", pw: "alice-pw", wantGroups: []string{"developers", "posix-devs"},
			cfg: func(c *Config) {
				c.GroupSearch = GroupSearch{BaseDN: groups, Filter: "(objectClass=posixGroup)", UserAttr: "uid", GroupAttr: "memberUid"}
				c.GroupsFrom = "memberOf"
			}},

		{name: "labels", user: "alice", pw: "alice-pw", wantGroups: []string{"developers"},
			wantLabels: map[string][]string{"email": {"alice@example.org"}, "team": {"eng"}, "dn": {uidDN("alice")}},
			cfg: func(c *Config) {
				c.Labels = map[string]string{"email": "mail", "team": "departmentNumber", "dn": "DN", "phone": "telephoneNumber"}
			}},
		{name: "labels, attribute name in another case", user: "alice", pw: "alice-pw", wantGroups: []string{"developers"},
			wantLabels: map[string][]string{"team": {"eng"}},
			cfg:        func(c *Config) { c.Labels = map[string]string{"team": "DEPARTMENTNUMBER"} }},
		// A multi-valued attribute gives the label every value, in the directory's order.
		{name: "labels, several values", user: "carol", pw: "carol-pw", wantGroups: []string{"developers"},
			wantLabels: map[string][]string{"team": {"eng", "platform"}},
			cfg:        func(c *Config) { c.Labels = map[string]string{"team": "departmentNumber"} }},
		{name: "labels, none set", user: "bob", pw: "bob pw", wantGroups: []string{"loop-b"},
			cfg: func(c *Config) { c.Labels = map[string]string{"email": "mail"} }},
		{name: "subject from another attribute", user: "carol", pw: "carol-pw", wantSub: "1003", wantGroups: []string{"developers"},
			cfg: func(c *Config) { c.UserSearch.SubjectAttr = "employeeNumber" }},
		{name: "subject attribute missing", user: "dup", pw: "dup-pw", wantErr: authn.ErrInvalidCredentials,
			wantLog: "user entry has no user_search.subject_attr",
			cfg: func(c *Config) {
				c.UserSearch.SubjectAttr = "employeeNumber"
				c.UserSearch.BaseDN = people
			}},
		{name: "ldaps", user: "alice", pw: "alice-pw", wantGroups: []string{"developers"},
			cfg: func(c *Config) { c.URL, c.StartTLS = s.LDAPSURL, false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig(t, s)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			var l logs
			a := open(t, cfg, authn.Deps{Logger: l.logger()})
			id, err := login(t.Context(), a, tt.user, tt.pw)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantLog != "" && !strings.Contains(l.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, l.String())
			}
			// go-ldap would refuse it too, and say so (logged as a refused bind): the backend
			// must decide before that.
			if tt.pw == "" && strings.Contains(l.String(), "bind refused") {
				t.Errorf("an empty password was sent to bind:\n%s", l.String())
			}
			if len(tt.pw) > 3 && strings.Contains(l.String(), tt.pw) {
				t.Errorf("the password is in the log:\n%s", l.String())
			}
			if err != nil {
				return
			}
			want := identity.Identity{Subject: tt.user, Groups: tt.wantGroups, Labels: tt.wantLabels}
			if tt.wantSub != "" {
				want.Subject = tt.wantSub
			}
			if !reflect.DeepEqual(id, want) {
				t.Fatalf("identity = %+v\nwant       %+v", id, want)
			}
			// Whatever Authenticate says, Resolve says too.
			got, err := a.Resolve(t.Context(), id.Subject)
			if err != nil || !reflect.DeepEqual(got, id) {
				t.Fatalf("Resolve(%q) = %+v, %v; want %+v", id.Subject, got, err, id)
			}
		})
	}
}

// A slapd that does not know the in-chain rule answers such a filter with nothing, not an
// error: the backend must not trust it there, or nested groups would silently vanish.
func TestSlapdNestedGroupsUseWalkOnOpenLDAP(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	cfg := baseConfig(t, s)
	cfg.NestedGroups = true
	var l logs
	a := open(t, cfg, authn.Deps{Logger: l.logger()})
	if got := a.nesting.Load(); got != nestingWalk {
		t.Fatalf("nesting = %d, want the walk (%d)", got, nestingWalk)
	}
	if !strings.Contains(l.String(), "nested groups resolved by a walk") {
		t.Errorf("the choice is not logged:\n%s", l.String())
	}
	c, _, err := a.pool.get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer a.pool.put(c)
	res, err := c.Search(goldap.NewSearchRequest(groups, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
		groupFilter("", "member", []string{uidDN("alice")}, true), []string{"cn"}, nil))
	if err != nil || len(res.Entries) != 0 {
		t.Fatalf("in-chain search on OpenLDAP: %d entries, %v; the walk exists because this finds nothing", len(res.Entries), err)
	}
}

func TestSlapdResolve(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	cfg := baseConfig(t, s)
	cfg.NestedGroups = true
	cfg.Labels = map[string]string{"team": "departmentNumber"}
	a := open(t, cfg, authn.Deps{})
	ctx := t.Context()

	id, err := a.Resolve(ctx, "alice")
	want := identity.Identity{Subject: "alice", Groups: []string{"developers", "engineering", "staff"},
		Labels: map[string][]string{"team": {"eng"}}}
	if err != nil || !reflect.DeepEqual(id, want) {
		t.Fatalf("Resolve = %+v, %v; want %+v", id, err, want)
	}

	// Alice leaves developers for ops and changes team; a refresh sees it at once.
	s.Modify(t, fmt.Sprintf(`dn: cn=developers,%[1]s
changetype: modify
delete: member
member: %[2]s

dn: cn=ops,%[1]s
changetype: modify
add: member
member: %[2]s

dn: %[2]s
changetype: modify
replace: departmentNumber
departmentNumber: ops
`, groups, uidDN("alice")))
	want = identity.Identity{Subject: "alice", Groups: []string{"ops"}, Labels: map[string][]string{"team": {"ops"}}}
	if id, err := a.Resolve(ctx, "alice"); err != nil || !reflect.DeepEqual(id, want) {
		t.Fatalf("after the change: Resolve = %+v, %v; want %+v", id, err, want)
	}
	if id, err := login(ctx, a, "alice", "alice-pw"); err != nil || !reflect.DeepEqual(id, want) {
		t.Fatalf("after the change: Authenticate = %+v, %v; want %+v", id, err, want)
	}

	s.Modify(t, "dn: "+uidDN("alice")+"\nchangetype: delete\n")
	if _, err := a.Resolve(ctx, "alice"); !errors.Is(err, authn.ErrNoMatch) {
		t.Fatalf("deleted user: Resolve err = %v, want ErrNoMatch", err)
	}
	if _, err := a.Resolve(ctx, "dup"); !errors.Is(err, authn.ErrNoMatch) {
		t.Fatalf("ambiguous user: Resolve err = %v, want ErrNoMatch", err)
	}
}

// The directory going away is "unavailable", never "wrong password", and the backend
// recovers by itself when it is back.
func TestSlapdDirectoryDown(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	cfg := baseConfig(t, s)
	cfg.Timeout = config.Duration(500 * time.Millisecond)
	a := open(t, cfg, authn.Deps{})
	ctx := t.Context()
	ok := func(step string) {
		t.Helper()
		if _, err := login(ctx, a, "alice", "alice-pw"); err != nil {
			t.Fatalf("%s: login: %v", step, err)
		}
		if _, err := a.Resolve(ctx, "alice"); err != nil {
			t.Fatalf("%s: Resolve: %v", step, err)
		}
	}
	down := func(step string) {
		t.Helper()
		for _, pw := range []string{"alice-pw", "wrong"} {
			_, err := login(ctx, a, "alice", pw)
			if !errors.Is(err, authn.ErrUnavailable) || errors.Is(err, authn.ErrInvalidCredentials) || errors.Is(err, authn.ErrNoMatch) {
				t.Fatalf("%s: login with %q: err = %v, want ErrUnavailable only", step, pw, err)
			}
		}
		if _, err := a.Resolve(ctx, "alice"); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("%s: Resolve: err = %v, want ErrUnavailable", step, err)
		}
	}
	ok("before")
	s.Stop(t)
	down("stopped")
	s.Restart(t)
	ok("restarted")
	s.Pause(t)
	down("hung")
	s.Resume(t)
	ok("resumed")
}

func TestSlapdOpen(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)

	t.Run("service account refused", func(t *testing.T) {
		cfg := baseConfig(t, s)
		if err := os.WriteFile(cfg.BindPasswordFile, []byte("not the service pw"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := cfg.Open(t.Context(), authn.Deps{})
		if err == nil || !strings.Contains(err.Error(), "refused the service account") {
			t.Fatalf("Open err = %v, want the service account refused", err)
		}
		if strings.Contains(err.Error(), "not the service pw") {
			t.Fatalf("the bind password is in the error: %v", err)
		}
	})
	t.Run("directory unreachable at start", func(t *testing.T) {
		cfg := baseConfig(t, s)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.URL = "ldap://" + ln.Addr().String()
		_ = ln.Close()
		var l logs
		a := open(t, cfg, authn.Deps{Logger: l.logger()})
		if !strings.Contains(l.String(), "not reachable at start") {
			t.Errorf("no warning:\n%s", l.String())
		}
		if _, err := login(t.Context(), a, "alice", "alice-pw"); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("login: %v, want ErrUnavailable", err)
		}
	})
	t.Run("certificate not trusted", func(t *testing.T) {
		cfg := baseConfig(t, s)
		cfg.CAFile = "" // system roots: the test CA is not among them
		a := open(t, cfg, authn.Deps{})
		if _, err := login(t.Context(), a, "alice", "alice-pw"); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("login: %v, want ErrUnavailable", err)
		}
	})
	t.Run("insecure_skip_verify warns", func(t *testing.T) {
		cfg := baseConfig(t, s)
		cfg.CAFile, cfg.InsecureSkipVerify = "", true
		var l logs
		a := open(t, cfg, authn.Deps{Logger: l.logger()})
		if !strings.Contains(l.String(), "INSECURE") {
			t.Errorf("no loud warning:\n%s", l.String())
		}
		if _, err := login(t.Context(), a, "alice", "alice-pw"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("bad files", func(t *testing.T) {
		for _, mut := range []func(*Config){
			func(c *Config) { c.BindPasswordFile = filepath.Join(t.TempDir(), "missing") },
			func(c *Config) { c.CAFile = filepath.Join(t.TempDir(), "missing") },
			func(c *Config) { c.CAFile = c.BindPasswordFile },
		} {
			cfg := baseConfig(t, s)
			mut(&cfg)
			if a, err := cfg.Open(t.Context(), authn.Deps{}); err == nil {
				_ = a.Close(context.Background())
				t.Errorf("Open with %+v succeeded", cfg)
			} else if strings.Contains(err.Error(), svcPW) {
				t.Errorf("the bind password is in the error: %v", err)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		a := open(t, baseConfig(t, s), authn.Deps{})
		_ = a.Close(t.Context())
		if _, err := login(t.Context(), a, "alice", "alice-pw"); !errors.Is(err, authn.ErrUnavailable) {
			t.Fatalf("login after Close: %v, want ErrUnavailable", err)
		}
	})
}

// A connection goes back to the pool bound as the service account, whatever the user's bind
// said, so the next search never runs with a user's rights.
func TestSlapdPooledConnectionBackAsServiceAccount(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	cfg := baseConfig(t, s)
	cfg.PoolSize = 1
	a := open(t, cfg, authn.Deps{})
	for _, pw := range []string{"alice-pw", "wrong", ""} {
		_, _ = login(t.Context(), a, "alice", pw)
		c, reused, err := a.pool.get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		who, err := c.WhoAmI(nil)
		a.pool.put(c)
		if err != nil {
			t.Fatal(err)
		}
		if !reused || !strings.EqualFold(who.AuthzID, "dn:"+svcDN) {
			t.Fatalf("after a login with password %q: pooled connection (reused %v) is %q, want dn:%s", pw, reused, who.AuthzID, svcDN)
		}
	}
}

// Logins in parallel never hold more than pool_size connections.
func TestSlapdPoolSize(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	cfg := baseConfig(t, s)
	cfg.PoolSize = 2
	a := open(t, cfg, authn.Deps{})
	// Nothing fails in this run, so no connection is closed: every dial is one more open.
	var dials atomic.Int32
	dial := a.pool.dial
	a.pool.dial = func(ctx context.Context) (*conn, error) {
		dials.Add(1)
		return dial(ctx)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			user, pw := "alice", "alice-pw"
			if i%2 == 1 {
				user, pw = "carol", "carol-pw"
			}
			if _, err := login(t.Context(), a, user, pw); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Open dialled one before the count started.
	if got := dials.Load() + 1; got > 2 {
		t.Fatalf("%d connections open at once, pool_size 2", got)
	}
}

// A pooled connection that the network silently dropped is found out by the timeout, thrown
// away, and the login retried once on a new connection.
func TestSlapdBrokenPooledConnectionRetried(t *testing.T) {
	t.Parallel()
	s := startDirectory(t)
	p := newProxy(t, strings.TrimPrefix(s.URL, "ldap://"))
	cfg := baseConfig(t, s)
	cfg.URL = "ldap://" + p.addr()
	cfg.Timeout = config.Duration(time.Second)
	cfg.PoolSize = 1
	var l logs
	a := open(t, cfg, authn.Deps{Logger: l.logger()})
	if _, err := login(t.Context(), a, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	p.dropExisting()
	if id, err := login(t.Context(), a, "alice", "alice-pw"); err != nil || id.Subject != "alice" {
		t.Fatalf("login over a dropped pooled connection: %+v, %v; want a retry that succeeds", id, err)
	}
	if !strings.Contains(l.String(), "pooled connection broken; retrying") {
		t.Errorf("no retry logged:\n%s", l.String())
	}
	// Only once: with every connection dropped as soon as it is made, the answer is unavailable.
	p.dropAll()
	if _, err := login(t.Context(), a, "alice", "alice-pw"); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("every connection dropped: %v, want ErrUnavailable", err)
	}
}

// proxy forwards TCP to target; dropExisting makes the connections made so far swallow
// everything (a firewall that forgot them), dropAll does that to new ones too.
type proxy struct {
	ln     net.Listener
	mu     sync.Mutex
	cut    []*atomic.Bool
	cutNew bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	var conns sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { _ = ln.Close(); <-done; conns.Wait() })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			cut := &atomic.Bool{}
			p.mu.Lock()
			cut.Store(p.cutNew)
			p.cut = append(p.cut, cut)
			p.mu.Unlock()
			stop := func() { _ = c.Close(); _ = up.Close() }
			conns.Go(func() { pipe(up, c, cut); stop() })
			conns.Go(func() { pipe(c, up, cut); stop() })
			context.AfterFunc(t.Context(), stop)
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) dropExisting() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.cut {
		c.Store(true)
	}
}

func (p *proxy) dropAll() {
	p.dropExisting()
	p.mu.Lock()
	p.cutNew = true
	p.mu.Unlock()
}

func pipe(dst io.Writer, src io.Reader, cut *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
