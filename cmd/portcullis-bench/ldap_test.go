package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
)

// The LDAP runs' ldap backend, as the server reads it from the bench's config file, logs every
// bench user in on a real slapd (internal/testenv/ldaptest), as a member of admins (whom the
// default policy grants bench/... as it does the htpasswd user); a wrong password is refused. The bench finds that slapd among this
// process's children to count its CPU time. Not parallel: no other test may start a slapd
// meanwhile.
func TestLDAPBackendAcceptsBenchUsersOnSlapd(t *testing.T) {
	users, err := ldapUsers(3)
	if err != nil {
		t.Fatal(err)
	}
	s := ldaptest.Start(t, ldapSeed(users))
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "ldap-bind")
	if err := os.WriteFile(pwFile, []byte(ldapServicePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &ldapDir{url: s.URL, caFile: s.CAFile, bindPasswordFile: pwFile, poolSize: 2}

	c := loadScenario(t, dir, scenario{scopes: 1, cold: true, ldap: d})
	spec := backendSpec(t, c, "ldap")
	bc, err := backend.Decode(spec)
	if err != nil {
		t.Fatal(err)
	}
	if errs := bc.Validate(); len(errs) > 0 {
		t.Fatalf("ldap backend config: %v", errs)
	}
	ctx := context.Background()
	a, err := bc.Open(ctx, authn.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(ctx) })
	for _, u := range users {
		id, err := a.Authenticate(ctx, authn.Credentials{Username: u, Password: ldapUserPassword, Service: "registry.local"})
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if id.Subject != u || !slices.Contains(id.Groups, "admins") {
			t.Errorf("%s: identity %+v, want subject %s in admins", u, id, u)
		}
	}
	if _, err := a.Authenticate(ctx, authn.Credentials{Username: users[0], Password: "wrong", Service: "registry.local"}); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Errorf("wrong password: %v, want ErrInvalidCredentials", err)
	}

	pid, found := childProcess(os.Getpid(), "slapd")
	if !found {
		t.Fatal("the slapd ldaptest started is not found among this process's children")
	}
	if v := slapdVersion(pid, found); !strings.HasPrefix(v, "slapd 2.") {
		t.Errorf("slapdVersion = %q, want slapd 2.x", v)
	}
	if procCPU(pid) <= 0 {
		t.Error("slapd has used no CPU time after TLS handshakes and binds")
	}
}

func TestLDAPUsers(t *testing.T) {
	t.Parallel()
	users, err := ldapUsers(3)
	if err != nil || strings.Join(users, " ") != "ldap-bench0 ldap-bench1 ldap-bench2" {
		t.Errorf("ldapUsers(3) = %q, %v", users, err)
	}
	if _, err := ldapUsers(0); err == nil {
		t.Error("no users asked for: want an error")
	}
}

// The LDAP load is GET /token with Basic <user>:<password>, cycling through the users; an
// answer without a token is an error.
func TestLDAPGrant(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != "GET" || r.URL.Path != "/token" || !ok || pass != ldapUserPassword ||
			r.URL.Query().Get("service") != "registry.local" || len(r.URL.Query()["scope"]) != 1 {
			t.Errorf("%s %s, Basic %q (%t)", r.Method, r.URL, user, ok)
		}
		mu.Lock()
		got = append(got, user)
		mu.Unlock()
		if user == "refused" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"token":"a","access_token":"a"}`))
	}))
	defer srv.Close()

	send := ldapGrant(srv.URL, []string{"a", "b", "refused"})
	for i, wantErr := range []bool{false, false, true, false} {
		if _, err := send(srv.Client(), i); (err != nil) != wantErr {
			t.Errorf("request %d: error %v, want error %t", i, err, wantErr)
		}
	}
	if want := "a b refused a"; strings.Join(got, " ") != want {
		t.Errorf("users sent %q, want %q", got, want)
	}
}
