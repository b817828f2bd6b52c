package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "c.yaml", `
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
	c, err := Load(p, false)
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

// validDoc is a config that passes Validate; the cases below change one thing in it.
const validDoc = `gateway:
  services: [registry.example]
  public_url: https://auth.example
authn:
  backends:
    - name: s
      type: static
      config: {users: []}
signer:
  key: {type: local, config: {path: /nonexistent/k.pem}}
`

func loadValidate(t *testing.T, body string) error {
	t.Helper()
	c, err := Load(writeFile(t, "c.yaml", body), false)
	if err != nil {
		return err
	}
	return c.Validate()
}

func TestUnknownFieldsAreErrors(t *testing.T) {
	t.Parallel()
	if err := loadValidate(t, validDoc); err != nil {
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
		body := strings.Replace(validDoc, tc.old, tc.new, 1)
		if body == validDoc {
			t.Fatalf("%s: case does not change the document", tc.name)
		}
		err := loadValidate(t, body)
		if err == nil {
			t.Errorf("%s: unknown field accepted", tc.name)
		} else if !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error does not name %q: %v", tc.name, tc.key, err)
		}
	}
}

func TestPublicURLIsRequiredOutsideTheDevelopmentDefaults(t *testing.T) {
	t.Parallel()
	err := loadValidate(t, strings.Replace(validDoc, "  public_url: https://auth.example\n", "", 1))
	if err == nil || !strings.Contains(err.Error(), "gateway.public_url: is required") {
		t.Fatalf("missing public_url: %v", err)
	}
	for _, bad := range []string{"auth.example", "https://", "https://auth.example/?x=1", "https://u:p@auth.example"} {
		if err := loadValidate(t, strings.Replace(validDoc, "https://auth.example", bad, 1)); err == nil {
			t.Errorf("public_url %q accepted", bad)
		}
	}
	dev, err := DevConfig(t.TempDir())
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
	set := func(c *Config, key, addr string) {
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
	base, err := DevConfig(t.TempDir())
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
	got, errs := parsePrefixes([]string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1", "10.1.2.3/8", "::ffff:192.0.2.0/120", "::ffff:192.0.2.9"})
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
	_, errs = parsePrefixes([]string{"", "proxy", "10.0.0.0/40", "fe80::1%eth0", "1.2.3.4"})
	if len(errs) != 4 {
		t.Fatalf("want every bad entry reported (4), got %v", errs)
	}
}

func TestSignerAudiences(t *testing.T) {
	t.Parallel()
	c, err := Load(writeFile(t, "c.yaml", validDoc), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Signer.Audiences) != 1 || c.Signer.Audiences[0] != "registry.example" {
		t.Fatalf("signer.audiences default %v, want gateway.services", c.Signer.Audiences)
	}
	err = loadValidate(t, strings.Replace(validDoc, "signer:\n", "signer:\n  audiences: [other.example]\n", 1))
	if err == nil || !strings.Contains(err.Error(), `gateway.services[0]: "registry.example" is not in signer.audiences`) {
		t.Fatalf("a service the signer refuses was accepted: %v", err)
	}
}

func TestEnvExpansionIsExplicit(t *testing.T) {
	t.Setenv("PC_TEST_SERVICE", "registry.example")
	p := writeFile(t, "c.yaml", "gateway: {services: [\"${PC_TEST_SERVICE}\"]}\n")
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.Services[0] != "${PC_TEST_SERVICE}" {
		t.Fatalf("expanded without being asked: %v", c.Gateway.Services)
	}
	c, err = Load(p, true)
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
	c, err := DevConfig(dir)
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

func TestVerifyConfigFlag(t *testing.T) {
	t.Parallel()
	var out, errb strings.Builder
	bad := writeFile(t, "c.yaml", "gateway: {services: []}\n")
	if err := run(t.Context(), []string{"-verify-config", "-config", bad}, &out, &errb); err == nil {
		t.Fatal("-verify-config accepted a bad file")
	}
	// A token the gateway asks for must not outlive what the signer will sign.
	ttl := writeFile(t, "c.yaml", strings.Replace(validDoc, "  services:", "  token_ttl: 2h\n  services:", 1))
	err := run(t.Context(), []string{"-verify-config", "-config", ttl}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "gateway.token_ttl: 2h0m0s exceeds signer.max_ttl 1h0m0s") {
		t.Fatalf("-verify-config with token_ttl > max_ttl: %v", err)
	}
	good := writeFile(t, "c.yaml", validDoc)
	if err := run(t.Context(), []string{"-verify-config", "-config", good}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("output %q", out.String())
	}
}

// authn.store is the state store's key; sessions.store, its old name, still works with a
// warning, and setting both is a problem naming both.
func TestAuthnStoreKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	newKey := strings.Replace(validDoc, "authn:\n", "authn:\n  store: {type: sqlite, config: {path: "+dir+"/new.db}}\n", 1)
	oldKey := validDoc + "sessions: {store: {type: sqlite, config: {path: " + dir + "/old.db}}}\n"
	both := newKey + "sessions: {store: {type: sqlite, config: {path: " + dir + "/old.db}}}\n"
	for _, tc := range []struct {
		name, doc, wantErr, wantWarn string
	}{
		{"authn.store", newKey, "", ""},
		{"sessions.store, the old name", oldKey, "", "warning: sessions.store is the old name of authn.store"},
		{"both", both, "sessions.store: is the old name of authn.store, which is set too", ""},
		{"authn.store is checked", strings.Replace(validDoc, "authn:\n", "authn:\n  store: {type: mongodb}\n", 1), `authn.store: unknown authn store type "mongodb"`, ""},
		{"authn.store config is checked", strings.Replace(validDoc, "authn:\n", "authn:\n  store: {type: sqlite, config: {}}\n", 1), "authn.store.config.path: is required", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			err := run(t.Context(), []string{"-verify-config", "-config", writeFile(t, "c.yaml", tc.doc)}, &out, &errb)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("-verify-config: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("-verify-config: %v", err)
			}
			if !strings.Contains(errb.String(), tc.wantWarn) || (tc.wantWarn == "" && errb.Len() > 0) {
				t.Fatalf("stderr %q, want %q", errb.String(), tc.wantWarn)
			}
		})
	}
	for doc, want := range map[string]string{newKey: dir + "/new.db", oldKey: dir + "/old.db"} {
		c, err := Load(writeFile(t, "c.yaml", doc), false)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.authnStore()
		if err != nil {
			t.Fatal(err)
		}
		sc, err := decodeStore(spec)
		if p, ok := sc.(*sqlite.Config); err != nil || !ok || p.Path != want {
			t.Errorf("store %#v, %v; want sqlite at %s", sc, err, want)
		}
	}
}

func TestDevelopmentDefaultsStayOnLoopbackWithoutDev(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-gateway.listen", "127.0.0.1:5001"}, true},
		{[]string{"-gateway.listen", "localhost:5001"}, true},
		{[]string{"-gateway.listen", "0.0.0.0:5001"}, false},
		{[]string{"-gateway.listen", ":5001"}, false},
		{[]string{"-gateway.listen", "192.0.2.1:5001"}, false},
		{[]string{"-gateway.listen", "0.0.0.0:5001", "-dev"}, true},
		// A real config decides for itself.
		{[]string{"-gateway.listen", "0.0.0.0:5001", "-config", writeFile(t, "c.yaml", validDoc)}, true},
	} {
		var out, errb strings.Builder
		err := run(t.Context(), append([]string{"-verify-config", "-data-dir", dir}, tc.args...), &out, &errb)
		if (err == nil) != tc.ok {
			t.Errorf("%v: %v", tc.args, err)
		}
		if err != nil && !strings.Contains(err.Error(), "-dev") {
			t.Errorf("%v: the refusal does not say how to override it: %v", tc.args, err)
		}
	}
}

func TestInternalTLSFlagsOverrideTheFile(t *testing.T) {
	t.Parallel()
	// One file for every process: the CA and trust domain shared, each its own certificate.
	cfgFile := writeFile(t, "c.yaml", validDoc+"internal_tls: {ca_file: /etc/pki/ca.pem, trust_domain: prod.example}\n")
	var out, errb strings.Builder
	if err := run(t.Context(), []string{"-verify-config", "-config", cfgFile}, &out, &errb); err == nil ||
		!strings.Contains(err.Error(), "internal_tls.cert_file") {
		t.Fatalf("without the flags: %v", err)
	}
	if err := run(t.Context(), []string{"-verify-config", "-config", cfgFile,
		"-internal-tls.cert-file", "/etc/pki/authn.pem", "-internal-tls.key-file", "/etc/pki/authn-key.pem"}, &out, &errb); err != nil {
		t.Fatalf("with the flags: %v", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("..", "..", "deploy", "portcullis.example.yaml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLockoutConfig(t *testing.T) {
	t.Parallel()
	dev, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l := dev.Authn.Lockout
	if !l.On() || l.MaxFailuresPerAccountAddress != 20 || l.MaxFailuresPerAddress != 100 || l.BaseDelay.D() != time.Second ||
		l.MaxDelay.D() != 15*time.Minute || l.Window.D() != 15*time.Minute {
		t.Fatalf("defaults: %+v", l)
	}
	if got := fmt.Sprint(l.prefixes()); !strings.Contains(got, "{56 {400 ") || !strings.Contains(got, "{48 {1600 ") || len(l.IPv6Prefixes) != 2 {
		t.Fatalf("IPv6 prefix defaults: %s, want /56 after 400 and /48 after 1600", got)
	}
	withLockout := func(block string) string {
		return strings.Replace(validDoc, "authn:\n", "authn:\n  lockout: "+block+"\n", 1)
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
		{"the store is checked for the lockout with sessions off", validDoc + "sessions: {enabled: false, store: {type: mongodb}}\n",
			[]string{`sessions.store: unknown authn store type "mongodb"`}},
		{"with both off it is not", withLockout(`{enabled: false}`) + "sessions: {enabled: false, store: {type: mongodb}}\n", nil},
	}
	for _, tc := range cases {
		err := loadValidate(t, tc.doc)
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
	c, err := Load(writeFile(t, "c.yaml", withLockout(`{max_failures_per_account_address: 5, max_failures_per_address: 50, base_delay: 2s, max_delay: 1h, window: 30m, ipv6_prefixes: []}`)), false)
	if err != nil {
		t.Fatal(err)
	}
	if c.Authn.Lockout.IPv6Prefixes == nil {
		t.Fatal("ipv6_prefixes: [] became the defaults")
	}
	acct, addr := c.Authn.Lockout.policies()
	if acct.MaxFailures != 5 || addr.MaxFailures != 50 || acct.BaseDelay != 2*time.Second || addr.MaxDelay != time.Hour || acct.Window != 30*time.Minute {
		t.Fatalf("policies %+v %+v", acct, addr)
	}
}

// TestVerifyConfigPlainHTTPBundle: -verify-config refuses an unsigned bundle over plain
// http unless that bundle says insecure: true, and a bearer token for a plain-http bundle
// server always.
func TestVerifyConfigPlainHTTPBundle(t *testing.T) {
	t.Parallel()
	token := writeFile(t, "token", "s3cret\n")
	cases := []struct {
		bundle string
		want   string // "" when valid
	}{
		{"{url: http://bundles.example/b.tar.gz}", "plain http without verification"},
		{"{url: http://bundles.example/b.tar.gz, insecure: true}", ""},
		{"{url: https://bundles.example/b.tar.gz}", ""},
		{"{url: http://bundles.example/b.tar.gz, insecure: true, bearer_token_file: " + token + "}", "never sent over plain http"},
	}
	for _, tc := range cases {
		doc := validDoc + "authz:\n  opa:\n    bundle: " + tc.bundle + "\n"
		var out, errb strings.Builder
		err := run(t.Context(), []string{"-verify-config", "-config", writeFile(t, "c.yaml", doc)}, &out, &errb)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.bundle, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error containing %q", tc.bundle, err, tc.want)
		}
	}
}
