package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
)

func TestStatCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stat string
		want time.Duration
		ok   bool
	}{
		{"plain", "4242 (portcullis) S 1 4242 4242 0 -1 4194560 2306 0 0 0 150 37 0 0 20 0 9 0 1234 0", 1870 * time.Millisecond, true},
		{"name with spaces and parentheses", "7 (a b) (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0", 70 * time.Millisecond, true},
		{"truncated", "7 (x) R 1 7", 0, false},
		{"no name", "garbage", 0, false},
		{"not numbers", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 u s 0 0 20 0 1 0 1 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := statCPU(tt.stat)
			if got != tt.want || ok != tt.ok {
				t.Errorf("statCPU = %s, %t; want %s, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// The gateway's metrics are on their own address (gateway.metrics_listen), which is where
// the bench looks for them in all-in-one mode; the token port serves no /metrics.
func TestConfigMetricsAddresses(t *testing.T) {
	t.Parallel()
	ports := make([]string, numPorts)
	for i := range ports {
		ports[i] = "127.0.0.1:" + string(rune('1'+i)) + "000"
	}
	var cfg struct {
		Gateway struct {
			Listen        string `yaml:"listen"`
			PublicURL     string `yaml:"public_url"`
			MetricsListen string `yaml:"metrics_listen"`
		} `yaml:"gateway"`
		Signer struct {
			MetricsListen string `yaml:"metrics_listen"`
		} `yaml:"signer"`
	}
	if err := yaml.Unmarshal([]byte(config(t.TempDir(), scenario{scopes: 1}, ports)), &cfg); err != nil {
		t.Fatal(err)
	}
	g := cfg.Gateway
	if g.Listen != ports[portGateway] || g.PublicURL != "http://"+ports[portGateway] {
		t.Errorf("gateway listen %q, public_url %q", g.Listen, g.PublicURL)
	}
	if g.MetricsListen != ports[portGatewayMetrics] || cfg.Signer.MetricsListen != ports[portSignerMetrics] {
		t.Errorf("metrics_listen: gateway %q, signer %q", g.MetricsListen, cfg.Signer.MetricsListen)
	}
}

func TestStatPPid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		stat string
		want int
		ok   bool
	}{
		{"postgres backend", "5012 (postgres) S 4990 5012 5012 0 -1 4194368 300 0 0 0 12 3 0 0 20 0 1 0 99 0", 4990, true},
		{"name with parentheses", "7 (a) b) R 42 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0", 42, true},
		{"truncated", "7 (x) R 1 7", 0, false},
		{"not a number", "7 (x) R g 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := statPPid(tt.stat)
			if got != tt.want || ok != tt.ok {
				t.Errorf("statPPid = %d, %t; want %d, %t", got, ok, tt.want, tt.ok)
			}
		})
	}
}

// Every server the bench starts names its session store: SQLite in the bench's directory
// (not the default under -data-dir in the working directory), or the PostgreSQL database given.
func TestConfigSessionsStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const dsn = "postgres://postgres@127.0.0.1:5432/test_1?sslmode=disable"
	tests := []struct {
		name     string
		sc       scenario
		wantType string
		wantPath string
		wantDSN  string
	}{
		{"sqlite", scenario{scopes: 1}, "sqlite", filepath.Join(dir, "sessions.db"), ""},
		{"split sqlite", scenario{split: true, scopes: 1}, "sqlite", filepath.Join(dir, "sessions.db"), ""},
		{"postgres", scenario{scopes: 1, pgDSN: dsn}, "postgres", "", dsn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cfg struct {
				Sessions struct {
					Store struct {
						Type   string `yaml:"type"`
						Config struct {
							Path string `yaml:"path"`
							DSN  string `yaml:"dsn"`
						} `yaml:"config"`
					} `yaml:"store"`
				} `yaml:"sessions"`
			}
			if err := yaml.Unmarshal([]byte(config(dir, tt.sc, make([]string, numPorts))), &cfg); err != nil {
				t.Fatal(err)
			}
			st := cfg.Sessions.Store
			if st.Type != tt.wantType || st.Config.Path != tt.wantPath || st.Config.DSN != tt.wantDSN {
				t.Errorf("sessions.store = %+v; want type %q, path %q, dsn %q", st, tt.wantType, tt.wantPath, tt.wantDSN)
			}
		})
	}
}

// The refresh load is docker's request: a form POST with the refresh token, client_id docker
// and a pull scope, cycling through the tokens; an answer without an access token is an error.
func TestRefreshGrant(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/token" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s %s, Content-Type %q", r.Method, r.URL, r.Header.Get("Content-Type"))
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, r.PostForm)
		mu.Unlock()
		if r.PostForm.Get("refresh_token") == "pcr_refused" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"error":"x"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"a","token":"a"}`))
	}))
	defer srv.Close()

	send := refreshGrant(srv.URL, []string{"pcr_a", "pcr_b", "pcr_refused"})
	c := srv.Client()
	for i, wantErr := range []bool{false, false, true, false} {
		if _, err := send(c, i); (err != nil) != wantErr {
			t.Errorf("request %d: error %v, want error %t", i, err, wantErr)
		}
	}
	want := []struct{ token, scope string }{
		{"pcr_a", "repository:bench/app0:pull"},
		{"pcr_b", "repository:bench/app1:pull"},
		{"pcr_refused", "repository:bench/app2:pull"},
		{"pcr_a", "repository:bench/app0:pull"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		f := got[i]
		if f.Get("grant_type") != "refresh_token" || f.Get("client_id") != "docker" || f.Get("service") != "registry.local" ||
			f.Get("refresh_token") != w.token || f.Get("scope") != w.scope {
			t.Errorf("request %d: form %v; want refresh token %s, scope %s", i, f, w.token, w.scope)
		}
	}
}

// A harness giving up (Fatalf) ends the bench section with its message as an error, and the
// servers it started are still stopped; a panic of another kind is not swallowed.
func TestWithBenchT(t *testing.T) {
	t.Parallel()
	var stopped []string
	err := withBenchT(t.TempDir(), func(bt *benchT) error {
		bt.Cleanup(func() { stopped = append(stopped, "first") })
		bt.Cleanup(func() { stopped = append(stopped, "second") })
		bt.Fatalf("pgtest: %s", "no PostgreSQL server found")
		return nil
	})
	if err == nil || err.Error() != "pgtest: no PostgreSQL server found" {
		t.Errorf("err = %v", err)
	}
	if len(stopped) != 2 || stopped[0] != "second" || stopped[1] != "first" {
		t.Errorf("cleanups ran %v; want second, first", stopped)
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v; want the panic to go on", r)
		}
	}()
	_ = withBenchT(t.TempDir(), func(*benchT) error { panic("boom") })
}

// The workload runs' config has an oidc backend after htpasswd only when they ask for one, and
// the tokens the bench signs are what that backend accepts: distinct, subject bench (whom the
// default policy grants bench/...), labels mapped.
func TestWorkloadBackendAcceptsBenchTokens(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	decode := func(sc scenario) []backend.Spec {
		t.Helper()
		var cfg struct {
			Authn struct {
				Backends []backend.Spec `yaml:"backends"`
			} `yaml:"authn"`
		}
		if err := yaml.Unmarshal([]byte(config(t.TempDir(), sc, make([]string, numPorts))), &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Authn.Backends
	}
	if specs := decode(scenario{scopes: 1}); len(specs) != 1 || specs[0].Type != "htpasswd" {
		t.Fatalf("backends without a workload issuer: %+v, want htpasswd alone", specs)
	}
	specs := decode(scenario{scopes: 1, oidcIssuer: idp.URL})
	if len(specs) != 2 || specs[0].Type != "htpasswd" || specs[1].Type != "oidc" {
		t.Fatalf("backends: %+v, want htpasswd then oidc", specs)
	}
	bc, err := backend.Decode(specs[1])
	if err != nil {
		t.Fatal(err)
	}
	if errs := bc.Validate(); len(errs) > 0 {
		t.Fatalf("oidc backend config: %v", errs)
	}
	a, err := bc.Open(context.Background(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })

	tokens, err := signWorkloadTokens(idp, 4, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, tok := range tokens {
		if seen[tok] {
			t.Fatalf("token %d repeats an earlier one", i)
		}
		seen[tok] = true
		id, err := a.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: authn.Password(tok), Service: "registry.local"})
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if id.Subject != "bench" || !slices.Equal(id.Labels["project"], []string{workloadRepo}) {
			t.Fatalf("token %d: identity %+v, want subject bench, project %s", i, id, workloadRepo)
		}
	}
	if _, err := signWorkloadTokens(idp, 0, time.Now()); err == nil {
		t.Fatal("no tokens asked for: want an error")
	}
}

// The workload load is GET /token with Basic ci:<JWT>, cycling through the tokens; an answer
// without a token is an error.
func TestJWTGrant(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != "GET" || r.URL.Path != "/token" || !ok || user != "ci" ||
			r.URL.Query().Get("service") != "registry.local" || len(r.URL.Query()["scope"]) != 1 {
			t.Errorf("%s %s, Basic %q (%t)", r.Method, r.URL, user, ok)
		}
		mu.Lock()
		got = append(got, pass)
		mu.Unlock()
		if pass == "refused.jwt.x" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"token":"a","access_token":"a"}`))
	}))
	defer srv.Close()

	send := jwtGrant(srv.URL, []string{"a.jwt.x", "b.jwt.x", "refused.jwt.x"})
	for i, wantErr := range []bool{false, false, true, false} {
		if _, err := send(srv.Client(), i); (err != nil) != wantErr {
			t.Errorf("request %d: error %v, want error %t", i, err, wantErr)
		}
	}
	if want := "a.jwt.x b.jwt.x refused.jwt.x a.jwt.x"; strings.Join(got, " ") != want {
		t.Errorf("passwords sent %q, want %q", got, want)
	}
}

// The lockout stays on (the default) in the measured runs; only the enumeration run, made of
// wrong passwords, turns it off.
func TestConfigLockout(t *testing.T) {
	t.Parallel()
	for _, off := range []bool{false, true} {
		var cfg struct {
			Authn struct {
				Lockout struct {
					Enabled *bool `yaml:"enabled"`
				} `yaml:"lockout"`
			} `yaml:"authn"`
		}
		if err := yaml.Unmarshal([]byte(config(t.TempDir(), scenario{scopes: 1, noLockout: off}, make([]string, numPorts))), &cfg); err != nil {
			t.Fatal(err)
		}
		if e := cfg.Authn.Lockout.Enabled; e == nil || *e == off {
			t.Errorf("noLockout %t: authn.lockout.enabled = %v", off, e)
		}
	}
}

// The LDAP runs' config adds an ldap backend after htpasswd on the bench directory, with the
// login cache off in the cold run only, and that backend logs every bench user in on a real
// slapd (internal/testenv/ldaptest), as a member of admins (whom the default policy grants bench/... as it
// does the htpasswd user); a wrong password is refused. The bench finds that slapd among this
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

	var spec backend.Spec
	for _, cold := range []bool{false, true} {
		var cfg struct {
			Authn struct {
				Cache struct {
					Disabled bool `yaml:"disabled"`
				} `yaml:"cache"`
				Backends []backend.Spec `yaml:"backends"`
			} `yaml:"authn"`
		}
		if err := yaml.Unmarshal([]byte(config(dir, scenario{scopes: 1, cold: cold, ldap: d}, make([]string, numPorts))), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Authn.Cache.Disabled != cold {
			t.Errorf("cold %t: authn.cache.disabled = %t", cold, cfg.Authn.Cache.Disabled)
		}
		specs := cfg.Authn.Backends
		if len(specs) != 2 || specs[0].Type != "htpasswd" || specs[1].Type != "ldap" {
			t.Fatalf("backends: %+v, want htpasswd then ldap", specs)
		}
		spec = specs[1]
	}
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

func TestStatComm(t *testing.T) {
	t.Parallel()
	tests := []struct{ stat, want string }{
		{"4242 (slapd) S 1 4242 4242 0 -1", "slapd"},
		{"7 (a b) (c)) R 1 7 7", "a b) (c)"},
		{"garbage", ""},
		{"7 ) (x", ""},
	}
	for _, tt := range tests {
		if got := statComm(tt.stat); got != tt.want {
			t.Errorf("statComm(%q) = %q, want %q", tt.stat, got, tt.want)
		}
	}
}
