package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	p := apptest.WriteFile(t, "c.yaml", `
log: {level: loud}
gateway:
  token_ttl: 10s
  public_url: "ftp://x"
  metrics_listen: "nocolon"
  tls: {cert_file: /c.pem}
  trusted_proxies: [10.0.0.0/8, "10.0.0.0/33", "proxy.example", 192.0.2.1]
authn:
  listen: 0.0.0.0:7001
  bcrypt: {max_concurrent: -1, max_queue: -1}
  backends:
    - name: a
      type: htpasswd
      config: {}
    - name: a
      type: ldapx
signer:
  audiences: [""]
  key: {type: local, config: {kid_mode: sideways}}
admin: {listen: ":7004"}
internal_tls: {trust_domain: "Not/A/Domain"}
`)
	c, err := app.Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"log.level", "gateway.services", "gateway.token_ttl", "gateway.public_url",
		"gateway.metrics_listen", "gateway.tls", `trusted_proxies[1]: "10.0.0.0/33"`, `trusted_proxies[2]: "proxy.example"`,
		"authn.listen: 0.0.0.0:7001 is not a loopback address", "admin.listen: :7004 is not a loopback address",
		"admin.listen: set admin.token_file", "authn.bcrypt.max_concurrent", "authn.bcrypt.max_queue",
		"authn.backends[0].config.path", "authn.backends[1].name", `unknown authn backend type "ldapx"`,
		"signer.audiences[0]", "signer.key.config.path", "signer.key.config.kid_mode", "internal_tls.trust_domain"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problem list lacks %q:\n%v", want, err)
		}
	}
	for _, notWant := range []string{"trusted_proxies[0]", "trusted_proxies[3]"} {
		if strings.Contains(err.Error(), notWant) {
			t.Errorf("a good entry is reported (%s):\n%v", notWant, err)
		}
	}
}

func TestUnknownFieldsAreErrors(t *testing.T) {
	t.Parallel()
	if err := apptest.LoadValidate(t, apptest.ValidDoc); err != nil {
		t.Fatalf("the base document must be valid: %v", err)
	}
	cases := []struct{ name, old, new, key string }{
		{"top level", "gateway:\n", "gatway: {}\ngateway:\n", "gatway"},
		{"nested", "  services:", "  listen_addr: 127.0.0.1:1\n  services:", "listen_addr"},
		{"backend config", "config: {users: []}", "config: {users: [], reload: 1s}", "reload"},
		{"key config", "path: /nonexistent/k.pem}", "path: /nonexistent/k.pem, rotate: true}", "rotate"},
		{"internal_tls", "signer:", "internal_tls: {trust_domian: x}\nsigner:", "trust_domian"},
		{"admin", "signer:", "admin: {token: x}\nsigner:", "token"},
	}
	for _, tc := range cases {
		body := strings.Replace(apptest.ValidDoc, tc.old, tc.new, 1)
		if body == apptest.ValidDoc {
			t.Fatalf("%s: case does not change the document", tc.name)
		}
		err := apptest.LoadValidate(t, body)
		if err == nil {
			t.Errorf("%s: unknown field accepted", tc.name)
		} else if !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error does not name %q: %v", tc.name, tc.key, err)
		}
	}
}

func TestPublicURLIsRequiredOutsideTheDevelopmentDefaults(t *testing.T) {
	t.Parallel()
	err := apptest.LoadValidate(t, strings.Replace(apptest.ValidDoc, "  public_url: https://auth.example\n", "", 1))
	if err == nil || !strings.Contains(err.Error(), "gateway.public_url: is required") {
		t.Fatalf("missing public_url: %v", err)
	}
	for _, bad := range []string{"auth.example", "https://", "https://auth.example/?x=1", "https://u:p@auth.example"} {
		if err := apptest.LoadValidate(t, strings.Replace(apptest.ValidDoc, "https://auth.example", bad, 1)); err == nil {
			t.Errorf("public_url %q accepted", bad)
		}
	}
	dev, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Validate(); err != nil {
		t.Fatalf("the development defaults need no public_url: %v", err)
	}
}

func TestPlaintextGRPCOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	keys := []string{"authn.listen", "authz.listen", "signer.listen", "admin.listen", "gateway.backends.authn", "gateway.backends.authz", "gateway.backends.signer"}
	set := func(c *app.Config, key, addr string) {
		switch key {
		case "authn.listen":
			c.Authn.Listen = addr
		case "authz.listen":
			c.Authz.Listen = addr
		case "signer.listen":
			c.Signer.Listen = addr
		case "admin.listen":
			c.Admin.Listen, c.Admin.TokenFile = addr, "/run/secrets/admin"
		case "gateway.backends.authn":
			c.Gateway.Backends.Authn = addr
		case "gateway.backends.authz":
			c.Gateway.Backends.Authz = addr
		case "gateway.backends.signer":
			c.Gateway.Backends.Signer = addr
		}
	}
	base, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for addr, loopback := range map[string]bool{
		"127.0.0.1:7001": true, "127.3.2.1:7001": true, "[::1]:7001": true, "localhost:7001": true,
		":7001": false, "0.0.0.0:7001": false, "[::]:7001": false, "10.0.0.1:7001": false, "authn:7001": false,
		"[::ffff:127.0.0.1]:7001": true, "localhost.example:7001": false,
	} {
		for _, key := range keys {
			for _, mode := range []string{"plain", "internal_tls", "insecure"} {
				c := *base // the fields changed below are not shared
				set(&c, key, addr)
				switch mode {
				case "internal_tls":
					c.InternalTLS = grpctls.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
				case "insecure":
					c.InsecurePlaintextGRPC = true
				}
				err = c.Validate()
				wantOK := loopback || mode != "plain"
				if (err == nil) != wantOK {
					t.Errorf("%s: %s (%s): %v", key, addr, mode, err)
				} else if err != nil && !strings.Contains(err.Error(), key+": "+addr+" is not a loopback address") {
					t.Errorf("%s: %s: error does not name it: %v", key, addr, err)
				}
			}
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	got, errs := app.ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1", "10.1.2.3/8", "::ffff:192.0.2.0/120", "::ffff:192.0.2.9"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "::1/128", "10.0.0.0/8", "192.0.2.0/24", "192.0.2.9/32"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d: %s, want %s", i, got[i], want[i])
		}
	}
	_, errs = app.ParsePrefixes([]string{"", "proxy", "10.0.0.0/40", "fe80::1%eth0", "1.2.3.4"})
	if len(errs) != 4 {
		t.Fatalf("want every bad entry reported (4), got %v", errs)
	}
}

func TestSignerAudiences(t *testing.T) {
	t.Parallel()
	c, err := app.Load(apptest.WriteFile(t, "c.yaml", apptest.ValidDoc), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Signer.Audiences) != 1 || c.Signer.Audiences[0] != "registry.example" {
		t.Fatalf("signer.audiences default %v, want gateway.services", c.Signer.Audiences)
	}
	err = apptest.LoadValidate(t, strings.Replace(apptest.ValidDoc, "signer:\n", "signer:\n  audiences: [other.example]\n", 1))
	if err == nil || !strings.Contains(err.Error(), `gateway.services[0]: "registry.example" is not in signer.audiences`) {
		t.Fatalf("a service the signer refuses was accepted: %v", err)
	}
}

func TestEnvExpansionIsExplicit(t *testing.T) {
	t.Setenv("PC_TEST_SERVICE", "registry.example")
	p := apptest.WriteFile(t, "c.yaml", "gateway: {services: [\"${PC_TEST_SERVICE}\"]}\n")
	c, err := app.Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Services[0] != "${PC_TEST_SERVICE}" {
		t.Fatalf("expanded without being asked: %v", c.Gateway.Services)
	}
	c, err = app.Load(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Services[0] != "registry.example" {
		t.Fatalf("not expanded: %v", c.Gateway.Services)
	}
}

func TestDevConfigIsValidAndHasSampleUsers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := app.DevConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Listen != "127.0.0.1:5001" || c.Gateway.Services[0] != "registry.local" {
		t.Fatalf("dev defaults changed: %+v", c.Gateway)
	}
	data, err := os.ReadFile(filepath.Join(dir, "htpasswd"))
	if err != nil || !strings.HasPrefix(string(data), "alice:$2") || !strings.Contains(string(data), "\nadmin:$2") {
		t.Fatalf("sample users: %v %q", err, data)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Parallel()
	c, err := app.Load(filepath.Join("..", "..", "deploy", "portcullis.example.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLockoutConfig(t *testing.T) {
	t.Parallel()
	dev, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := dev.Authn.Lockout
	if !l.On() || l.MaxFailuresPerAccountAddress != 20 || l.MaxFailuresPerAddress != 100 || l.BaseDelay.D() != time.Second ||
		l.MaxDelay.D() != 15*time.Minute || l.Window.D() != 15*time.Minute {
		t.Fatalf("defaults: %+v", l)
	}
	if got := fmt.Sprint(l.Prefixes()); !strings.Contains(got, "{56 {400 ") || !strings.Contains(got, "{48 {1600 ") || len(l.IPv6Prefixes) != 2 {
		t.Fatalf("IPv6 prefix defaults: %s, want /56 after 400 and /48 after 1600", got)
	}
	withLockout := func(block string) string {
		return strings.Replace(apptest.ValidDoc, "authn:\n", "authn:\n  lockout: "+block+"\n", 1)
	}
	cases := []struct {
		name, doc string
		want      []string // "" entries: valid
	}{
		{"every problem at once", withLockout(`{max_failures_per_account_address: -1, max_failures_per_address: -2, base_delay: 2m, max_delay: 1m, window: -1s}`),
			[]string{"authn.lockout.max_failures_per_account_address: must be at least 1", "authn.lockout.max_failures_per_address: must be at least 1",
				"authn.lockout.max_delay: 1m0s is below authn.lockout.base_delay 2m0s", "authn.lockout.window: must be positive"}},
		{"negative base delay", withLockout(`{base_delay: -1s}`), []string{"authn.lockout.base_delay: must be positive"}},
		{"explicit values", withLockout(`{max_failures_per_account_address: 5, max_failures_per_address: 50, base_delay: 2s, max_delay: 1h, window: 30m}`), nil},
		{"disabled is not checked", withLockout(`{enabled: false, max_failures_per_address: -1}`), nil},
		{"unknown field", withLockout(`{max_failures: 3}`), []string{"max_failures"}},
		{"IPv6 prefixes", withLockout(`{ipv6_prefixes: [{bits: 60, max_failures: 200}, {bits: 64, max_failures: 1}, {bits: 40, max_failures: 0}]}`),
			[]string{"authn.lockout.ipv6_prefixes[1].bits: 64: must be 1 to 63", "authn.lockout.ipv6_prefixes[2].max_failures: must be at least 1"}},
		{"no IPv6 prefixes", withLockout(`{ipv6_prefixes: []}`), nil},
		{"the store is checked for the lockout with sessions off", apptest.ValidDoc + "sessions: {enabled: false, store: {type: mongodb}}\n",
			[]string{`sessions.store: unknown authn store type "mongodb"`}},
		{"with both off it is not", withLockout(`{enabled: false}`) + "sessions: {enabled: false, store: {type: mongodb}}\n", nil},
	}
	for _, tc := range cases {
		err := apptest.LoadValidate(t, tc.doc)
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: problem list lacks %q: %v", tc.name, w, err)
			}
		}
	}
	c, err := app.Load(apptest.WriteFile(t, "c.yaml", withLockout(`{max_failures_per_account_address: 5, max_failures_per_address: 50, base_delay: 2s, max_delay: 1h, window: 30m, ipv6_prefixes: []}`)), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Authn.Lockout.IPv6Prefixes == nil {
		t.Fatal("ipv6_prefixes: [] became the defaults")
	}
	acct, addr := c.Authn.Lockout.Policies()
	if acct.MaxFailures != 5 || addr.MaxFailures != 50 || acct.BaseDelay != 2*time.Second || addr.MaxDelay != time.Hour || acct.Window != 30*time.Minute {
		t.Fatalf("policies %+v %+v", acct, addr)
	}
}

func TestLogFormatValidated(t *testing.T) {
	t.Parallel()
	for format, ok := range map[string]bool{"auto": true, "text": true, "json": true, "yaml": false} {
		c, err := app.DevConfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		c.Log.Format = format
		err = c.Validate()
		if (err == nil) != ok || err != nil && !strings.Contains(err.Error(), "log.format") {
			t.Errorf("log.format %q: %v", format, err)
		}
	}
	c, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Format != "auto" {
		t.Errorf("log.format defaults to %q, want auto", c.Log.Format)
	}
}

// Both keys name the store authn opens: authn.store, or sessions.store when only it is set.
func TestAuthnStoreKeyResolves(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newKey := strings.Replace(apptest.ValidDoc, "authn:\n", "authn:\n  store: {type: sqlite, config: {path: "+dir+"/new.db}}\n", 1)
	oldKey := apptest.ValidDoc + "sessions: {store: {type: sqlite, config: {path: " + dir + "/old.db}}}\n"
	for doc, want := range map[string]string{newKey: dir + "/new.db", oldKey: dir + "/old.db"} {
		c, err := app.Load(apptest.WriteFile(t, "c.yaml", doc), false)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.AuthnStore()
		if err != nil {
			t.Fatal(err)
		}
		sc, err := app.DecodeStore(spec)
		if p, ok := sc.(*sqlite.Config); err != nil || !ok || p.Path != want {
			t.Errorf("store %#v, %v; want sqlite at %s", sc, err, want)
		}
	}
}

// TestLockoutMarshalsBack: a LockoutConfig written with yaml.Marshal reads back as it was, the
// nil ipv6_prefixes (the defaults) apart from the explicit [] (the /64 only).
func TestLockoutMarshalsBack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		prefixes []app.IPv6PrefixConfig
	}{
		{"nil: the defaults", nil},
		{"empty: the /64 only", []app.IPv6PrefixConfig{}},
		{"one prefix", []app.IPv6PrefixConfig{{Bits: 60, MaxFailures: 200}}},
	} {
		in := app.LockoutConfig{MaxFailuresPerAccountAddress: 3, IPv6Prefixes: tc.prefixes}
		b, err := yaml.Marshal(in)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var out app.LockoutConfig
		if err := yaml.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, b)
		}
		if (out.IPv6Prefixes == nil) != (tc.prefixes == nil) || fmt.Sprint(out.IPv6Prefixes) != fmt.Sprint(tc.prefixes) ||
			out.MaxFailuresPerAccountAddress != 3 {
			t.Errorf("%s: read back %+v from\n%s", tc.name, out, b)
		}
	}
}

// sso.pat: off by default with a 90-day cap; every problem reported at once.
func TestSSOPATConfig(t *testing.T) {
	t.Parallel()
	dev, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if dev.SSO.PAT.Enabled || dev.SSO.PAT.MaxTTL.D() != 2160*time.Hour {
		t.Fatalf("defaults: %+v", dev.SSO.PAT)
	}
	withBackend := func(b string) string {
		return strings.Replace(apptest.ValidDoc, "  backends:\n", "  backends:\n"+b, 1)
	}
	cases := []struct {
		name, doc string
		want      []string // none: valid
	}{
		{"enabled", apptest.ValidDoc + "sso: {pat: {enabled: true, max_ttl: 720h}}\n", nil},
		{"enabled with the backend listed", withBackend("    - {name: tokens, type: pat}\n") + "sso: {pat: {enabled: true}}\n", nil},
		{"every problem at once", withBackend("    - {name: tokens, type: pat, subject_prefix: \"x:\"}\n") + "sso: {pat: {max_ttl: 30s}}\n",
			[]string{"authn.backends[0].type: the pat backend needs sso.pat.enabled: true", "authn.backends[0].subject_prefix: the pat backend's subjects",
				"sso.pat.max_ttl: must be at least 1m, got 30s"}},
		{"too long", apptest.ValidDoc + "sso: {pat: {enabled: true, max_ttl: 100000h}}\n", []string{"sso.pat.max_ttl: must be at most ten years"}},
		{"the name the added backend takes", withBackend("    - {name: pat, type: static, config: {users: []}}\n") + "sso: {pat: {enabled: true}}\n",
			[]string{`authn.backends[0].name: "pat" is the name of the personal access token backend`}},
		{"unknown key", apptest.ValidDoc + "sso: {pat: {enabled: true, ttl: 1h}}\n", []string{"ttl"}},
		{"the store is checked for tokens with sessions and lockout off",
			apptest.ValidDoc + "sso: {pat: {enabled: true}}\nsessions: {enabled: false, store: {type: mongodb}}\n" +
				"", []string{`unknown authn store type "mongodb"`}},
	}
	for _, tc := range cases {
		doc := tc.doc
		if strings.Contains(tc.name, "lockout off") {
			doc = strings.Replace(doc, "authn:\n", "authn:\n  lockout: {enabled: false}\n", 1)
		}
		err := apptest.LoadValidate(t, doc)
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: problem list lacks %q: %v", tc.name, w, err)
			}
		}
	}
}
