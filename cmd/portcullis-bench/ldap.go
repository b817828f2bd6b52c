package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/ldap"
)

// benchLDAP measures logins of directory users all-in-one: GET /token with Basic for users of
// an OpenLDAP directory on this machine (internal/testenv/ldaptest: Debian's slapd, StartTLS, a test CA),
// found by an ldap backend after htpasswd in the chain (htpasswd does not know them and says so
// without bcrypt; a directory's success pays none either). With the login cache on, each user's
// password is checked once and then answered from the cache; with it off, every request
// searches the user as the service account, binds as the user, binds back and searches the
// user's groups, over the backend's pooled StartTLS connections: the raw cost of a directory
// login. slapd's own CPU time is counted beside Portcullis's.
func benchLDAP(bin, dir string, o options) error {
	users, err := ldapUsers(o.ldapUsers)
	if err != nil {
		return err
	}
	return withBenchT(dir, func(bt *benchT) error {
		s := ldaptest.Start(bt, ldapSeed(users))
		pwFile := filepath.Join(dir, "ldap-bind")
		if err := os.WriteFile(pwFile, []byte(ldapServicePassword+"\n"), 0o600); err != nil {
			return err
		}
		d := &ldapDir{url: s.URL, caFile: s.CAFile, bindPasswordFile: pwFile, poolSize: o.ldapPool}
		// ldaptest runs slapd in the foreground as a child of this process.
		slapd, found := childProcess(os.Getpid(), "slapd")
		fmt.Printf("\nLDAP (%s on this machine, StartTLS, SSHA passwords; ldap backend after htpasswd in the chain, pool_size %d,\n",
			slapdVersion(slapd, found), o.ldapPool)
		fmt.Printf("search + user bind + service re-bind + group search per password check), all-in-one, %d users shared out, 1 scope\n", len(users))
		for _, cold := range []bool{false, true} {
			sc := scenario{scopes: 1, cold: cold, ldap: d}
			name := "LDAP warm (login cache)"
			if cold {
				name = "LDAP cold (bind each time)"
			}
			res, err := withServerAt(bin, dir, sc, "", func(srv server) (result, error) {
				var cpu0 time.Duration
				if found {
					cpu0 = procCPU(slapd)
				}
				res, err := srv.measure(func() (result, error) { return closedLoop(ldapGrant(srv.url, users), o.conc, o.dur) })
				if found {
					res.peer, res.peerCPU = "slapd", procCPU(slapd)-cpu0
				}
				return res, err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			res.print(name)
		}
		return nil
	})
}

// The bench directory: users under ldapPeople, all members of the group admins (whom the
// default policy grants everything, as it does the htpasswd user), and the service account
// the backend searches as.
const (
	ldapPeople          = "ou=people," + ldaptest.Suffix
	ldapGroups          = "ou=groups," + ldaptest.Suffix
	ldapServiceDN       = "cn=portcullis,ou=services," + ldaptest.Suffix
	ldapServicePassword = "bench-service-password"
	ldapUserPassword    = "bench-password"
)

// ldapDir is the directory an ldap backend in the config authenticates against.
type ldapDir struct {
	url, caFile, bindPasswordFile string
	poolSize                      int
}

// ldapUsers names n directory users; none is the htpasswd user, who would end the chain there.
func ldapUsers(n int) ([]string, error) {
	if n < 1 {
		return nil, errors.New("at least one LDAP user is needed")
	}
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("ldap-bench%d", i)
	}
	return users, nil
}

// ldapSeed is the LDIF of the bench directory's entries, parents first.
func ldapSeed(users []string) string {
	var b strings.Builder
	entry := func(dn string, attrs ...string) {
		b.WriteString(ldaptest.Line("dn", dn))
		for i := 0; i+1 < len(attrs); i += 2 {
			b.WriteString(ldaptest.Line(attrs[i], attrs[i+1]))
		}
		b.WriteString("\n")
	}
	for _, ou := range []string{"people", "groups", "services"} {
		entry("ou="+ou+","+ldaptest.Suffix, "objectClass", "organizationalUnit", "ou", ou)
	}
	entry(ldapServiceDN, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject",
		"cn", "portcullis", "userPassword", ldaptest.SSHA(ldapServicePassword))
	group := []string{"objectClass", "groupOfNames", "cn", "admins"}
	for _, u := range users {
		entry(ldapUserDN(u), "objectClass", "inetOrgPerson", "uid", u, "sn", u, "cn", u,
			"userPassword", ldaptest.SSHA(ldapUserPassword))
		group = append(group, "member", ldapUserDN(u))
	}
	entry("cn=admins,"+ldapGroups, group...)
	return b.String()
}

func ldapUserDN(uid string) string { return "uid=" + uid + "," + ldapPeople }

// ldapBackend is the config of the ldap backend on directory d.
func ldapBackend(d *ldapDir) *ldap.Config {
	return &ldap.Config{
		URL:              d.url,
		StartTLS:         true,
		CAFile:           d.caFile,
		BindDN:           ldapServiceDN,
		BindPasswordFile: d.bindPasswordFile,
		UserSearch:       ldap.UserSearch{BaseDN: ldapPeople, Filter: "(objectClass=inetOrgPerson)", UsernameAttr: "uid"},
		GroupSearch: ldap.GroupSearch{BaseDN: ldapGroups, Filter: "(objectClass=groupOfNames)",
			UserAttr: "DN", GroupAttr: "member", NameAttr: "cn"},
		PoolSize: d.poolSize,
	}
}

// ldapGrant is `docker login` as a directory user followed by a pull or push: GET /token with
// Basic. Request i logs in as users[i%len(users)].
func ldapGrant(base string, users []string) grant {
	url := tokenURL(base, 1)
	headers := make([]string, len(users))
	for i, u := range users {
		headers[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+ldapUserPassword))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", headers[i%len(headers)])
		return timed(c, req, []byte(`"token"`))
	}
}

// slapdVersion is "slapd 2.5.13+dfsg-5" from `slapd -VV` of the running slapd's program.
func slapdVersion(pid int, found bool) string {
	if !found {
		return "slapd"
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "slapd"
	}
	out, _ := exec.Command(exe, "-VV").CombinedOutput()
	if _, rest, ok := strings.Cut(string(out), "slapd "); ok {
		if v, _, _ := strings.Cut(rest, " "); v != "" {
			return "slapd " + v
		}
	}
	return "slapd"
}
