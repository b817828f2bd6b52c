package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

// TestMigrateDockerAuth converts a config shaped like docker_auth's reference and checks
// the result: a config that validates, the users' hashes still checking their passwords,
// the LDAP settings mapped, everything unconvertible reported, and — the point — the same
// decisions docker_auth makes, written down from its acl.go for a table of requests.
func TestMigrateDockerAuth(t *testing.T) {
	out := filepath.Join(t.TempDir(), "migrated")
	var stdout bytes.Buffer
	if err := runMigrate(context.Background(), []string{"docker-auth", "-out", out, "testdata/docker_auth.yml"}, &stdout, &stdout); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stdout.String())
	}
	report := stdout.String()
	t.Logf("%s", report)
	for _, want := range []string{"users → htpasswd (2 users", "users with labels → the static backend (1 user: vip", `users."" (anonymous access): kept`, "ldap_auth → the ldap backend (ldaps://ldap.example.com:636; user search base o=example.com, username attribute uid)",
		"acl → policy/data.yaml (11 rules", `token.issuer → signer.issuer "Acme auth server"`, "token.expiration → gateway.token_ttl 900s"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks converted %q", want)
		}
	}
	notConverted := report[strings.Index(report, "NOT converted"):]
	for _, want := range []string{"acl_mongo:", "casbin_authz:", "ext_authz:", "google_auth:", "ldap_auth.labels.groups: parse_cn", "server.certificate"} {
		if !strings.Contains(notConverted, want) {
			t.Errorf("report lacks not-converted %q", want)
		}
	}

	// The config validates as Portcullis reads it (the LDAP bind password file is the one
	// thing this machine lacks).
	pw := filepath.Join(t.TempDir(), "ldap-password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgData, err := os.ReadFile(filepath.Join(out, "portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"url: ldaps://ldap.example.com:636", "username_attr: uid", `filter: "(objectClass=person)"`, "title: title", `listen: "0.0.0.0:5001"`} {
		if !strings.Contains(string(cfgData), want) {
			t.Errorf("portcullis.yaml lacks %q:\n%s", want, cfgData)
		}
	}
	patched := strings.Replace(string(cfgData), "/etc/docker_auth/ldap-password", pw, 1)
	if err := os.WriteFile(filepath.Join(out, "portcullis.yaml"), []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := app.LoadConfig(filepath.Join(out, "portcullis.yaml"), false, app.DefaultDataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the migrated config does not validate: %v", err)
	}
	if !cfg.Authn.AnonymousAllowed() {
		t.Error(`users has "": the migrated config must keep anonymous requests`)
	}

	ht, err := os.ReadFile(filepath.Join(out, "htpasswd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(ht)), "\n") {
		name, hash, _ := strings.Cut(line, ":")
		pass := map[string]string{"admin": "badmin", "test": "123", "vip": "123"}[name]
		if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) != nil {
			t.Errorf("htpasswd %s: the hash no longer checks the password", name)
		}
	}

	a, err := opa.Config{Dir: filepath.Join(out, "policy")}.Open(context.Background(), authz.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	user := func(name string, labels map[string][]string) identity.Identity {
		return identity.Identity{Subject: name, Labels: labels}
	}
	cases := []struct {
		name   string
		id     identity.Identity
		ip     string
		scopes []string
		want   []string // docker_auth's answer
	}{
		{"localhost may do anything", identity.Identity{Anonymous: true}, "127.0.0.1", []string{"repository:x/y:push"}, []string{"repository:x/y:push"}},
		{"admin everything", user("admin", nil), "10.0.0.1", []string{"repository:x/y:pull,push,delete", "registry:catalog:*"}, []string{"repository:x/y:pull,push,delete", "registry:catalog:*"}},
		{"test on test-*", user("test", nil), "10.0.0.1", []string{"repository:test-app:pull,push"}, []string{"repository:test-app:pull,push"}},
		{"test elsewhere: the [] rule stops before the pull-all rule", user("test", nil), "10.0.0.1", []string{"repository:library/x:pull", "registry:catalog:*"}, nil},
		{"own namespace", user("alice", nil), "10.0.0.1", []string{"repository:alice/app:pull,push,delete"}, []string{"repository:alice/app:pull,push,delete"}},
		{"logged-in users: catalog and pull", user("alice", nil), "10.0.0.1", []string{"registry:catalog:*", "repository:bob/app:pull,push"}, []string{"registry:catalog:*", "repository:bob/app:pull"}},
		{"anonymous hello-world", identity.Identity{Anonymous: true}, "10.0.0.1", []string{"repository:hello-world:pull,push", "repository:x:pull"}, []string{"repository:hello-world:pull"}},
		{"the pull-all rule comes before the VIP rule", user("vip", map[string][]string{"group": {"VIP"}}), "10.0.0.1", []string{"repository:z/app:push"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scopes, err := scope.ParseList(tc.scopes)
			if err != nil {
				t.Fatal(err)
			}
			d, err := a.Authorize(context.Background(), authz.Request{Identity: tc.id, Service: "registry.example.com", Requested: scopes, RemoteAddr: tc.ip})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range d.Granted {
				got = append(got, s.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("granted %v, docker_auth grants %v", got, tc.want)
			}
		})
	}

	// A second run into the same directory refuses rather than mixing two migrations.
	if _, err := migrateDockerAuth([]byte("users: {}\n"), out, time.Now); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("migrating into a non-empty directory: %v", err)
	}
	if err := runMigrate(context.Background(), []string{"casbin"}, &stdout, &stdout); err == nil {
		t.Error("an unknown migration was accepted")
	}
	t.Run(`users without "", run over HTTP`, func(t *testing.T) { testMigrateLabels(t, false) })
	t.Run(`users with "", run over HTTP`, func(t *testing.T) { testMigrateLabels(t, true) })
}

// testMigrateLabels migrates a docker_auth config whose users lack "" and carry
// multi-valued labels, runs what it made, and sends it token requests over HTTP: each
// answer must be the one docker_auth gives (written down from its server.go and acl.go),
// so the migration never grants more than docker_auth did. The same config with "" added
// (withAnon) must keep anonymous requests, and grant them what docker_auth grants "".
func testMigrateLabels(t *testing.T, withAnon bool) {
	src := "testdata/docker_auth_labels.yml"
	anonReport := `users has no "": docker_auth refuses callers without credentials → authn.allow_anonymous: false`
	if withAnon {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		src = filepath.Join(t.TempDir(), "docker_auth.yml")
		if err := os.WriteFile(src, []byte(strings.Replace(string(data), "\nusers:\n", "\nusers:\n  \"\": {}\n", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		anonReport = `users."" (anonymous access): kept: authn.allow_anonymous: true`
	}
	out := filepath.Join(t.TempDir(), "migrated")
	var stdout bytes.Buffer
	if err := runMigrate(context.Background(), []string{"docker-auth", "-out", out, src}, &stdout, &stdout); err != nil {
		t.Fatalf("migrate: %v\n%s", err, stdout.String())
	}
	report := stdout.String()
	t.Logf("%s", report)
	for _, want := range []string{
		anonReport,
		"users with labels → the static backend (2 users: ci, dev",
		"users → htpasswd (2 users",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	notConverted := report[strings.Index(report, "NOT converted"):]
	for _, want := range []string{"acl[1] (mail-address accounts own <address>/*)", "acl[2] (a namespace with a plus sign)"} {
		if !strings.Contains(notConverted, want) || !strings.Contains(notConverted, "distribution grammar") {
			t.Errorf("report lacks the name-grammar note %q", want)
		}
	}
	for _, quiet := range []string{"acl[3]", "acl[4]", "acl[0]", "labels: htpasswd"} {
		if strings.Contains(report, quiet) {
			t.Errorf("report mentions %q", quiet)
		}
	}

	cfg, _, err := app.LoadConfig(filepath.Join(out, "portcullis.yaml"), false, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Authn.AnonymousAllowed() != withAnon {
		t.Fatalf("allow_anonymous = %v; docker_auth's users hold \"\": %v", cfg.Authn.AnonymousAllowed(), withAnon)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Gateway.BackendTimeout = config.Duration(time.Minute) // bcrypt beside the other tests
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the migrated config does not validate: %v", err)
	}
	a := apptest.Start(t, cfg, "all")

	type row struct {
		name       string
		user, pass string // "": no credentials
		scopes     []string
		wantStatus int
		want       []string // docker_auth's grants
	}
	// docker_auth authenticates a caller without credentials as "" only when its users hold
	// it; else it denies by default: 401.
	anon := []row{
		{`anonymous without "": 401`, "", "", []string{"repository:hello-world:pull"}, 401, nil},
		{`anonymous without "", no scope: 401`, "", "", nil, 401, nil},
	}
	if withAnon {
		anon = []row{
			{`anonymous with "": the rule without an account`, "", "", []string{"repository:hello-world:pull,push"}, 200, []string{"repository:hello-world:pull"}},
			{`anonymous with "": no account "/.+/" rules, no labels`, "", "", []string{"repository:p1/app:pull", "repository:dev-p1/app:pull"}, 200, nil},
			{`anonymous with "", no scope`, "", "", nil, 200, nil},
		}
	}
	cases := append(anon, []row{
		{"a user gets the everyone rule", "dev", "123", []string{"repository:hello-world:pull"}, 200, []string{"repository:hello-world:pull"}},
		{"admin", "admin", "badmin", []string{"repository:x/y:pull,push"}, 200, []string{"repository:x/y:pull,push"}},
		// dev's group [dev ops] × project [p1 p2]: every permutation, in both label orders.
		{"permutation dev-p1", "dev", "123", []string{"repository:dev-p1/app:pull,push"}, 200, []string{"repository:dev-p1/app:pull,push"}},
		{"permutation ops-p2", "dev", "123", []string{"repository:ops-p2/app:push"}, 200, []string{"repository:ops-p2/app:push"}},
		{"permutation dev-p2 and ops-p1 together", "dev", "123", []string{"repository:dev-p2/app:pull", "repository:ops-p1/app:pull"}, 200,
			[]string{"repository:dev-p2/app:pull", "repository:ops-p1/app:pull"}},
		{"no such permutation", "dev", "123", []string{"repository:dev-p3/app:pull", "repository:qa-p1/app:pull"}, 200, nil},
		{"each project value", "dev", "123", []string{"repository:p1/app:pull,push", "repository:p2/app:pull"}, 200,
			[]string{"repository:p1/app:pull", "repository:p2/app:pull"}},
		{"label match on the second value", "dev", "123", []string{"repository:infra/net:push"}, 200, []string{"repository:infra/net:push"}},
		{"no labels, no label grants", "admin", "badmin", []string{"repository:infra/net:push"}, 200, []string{"repository:infra/net:push"}},
		{"a user without labels", "bob@example.com", "123", []string{"repository:p1/app:pull", "repository:infra/net:push"}, 200, nil},
		// docker_auth substitutes label values unquoted, so ci's project "*" would make
		// "${labels:project}/*" match every namespace there; Portcullis quotes every value
		// (deploy/policies/README.md): a deliberate narrowing, never a widening.
		{"label value * is a literal", "ci", "123", []string{"repository:p1/app:pull", "repository:other/app:pull"}, 200, nil},
		// bob@example.com/x is a name docker_auth matches and the distribution grammar refuses.
		{"a name the grammar refuses: 400", "bob@example.com", "123", []string{"repository:bob@example.com/app:pull"}, 400, nil},
		{"wrong password", "dev", "nope", []string{"repository:p1/app:pull"}, 401, nil},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"service": {"registry.example.com"}, "scope": tc.scopes}
			req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?"+q.Encode(), nil)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Token string `json:"token"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, docker_auth answers %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Fatalf("401 without the Basic challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tc.wantStatus != 200 {
				return
			}
			if got := grantedScopes(t, body.Token); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("granted %v, docker_auth grants %v", got, tc.want)
			}
		})
	}
}

// grantedScopes reads a token's access claim (unverified: the test only reads what the
// policy decided) as scope strings.
func grantedScopes(t *testing.T, token string) []string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Access []struct {
			Type, Name string
			Actions    []string
		}
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range claims.Access {
		out = append(out, scope.Scope{Type: a.Type, Name: a.Name, Actions: a.Actions}.String())
	}
	return out
}

// TestRefusedNameChar: the rules the migration report flags are those that can only match
// names the distribution grammar refuses, never a rule that may match a valid name.
func TestRefusedNameChar(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		match map[string]any
		want  string
	}{
		{map[string]any{"name": "team+shared/*"}, "+"},
		{map[string]any{"name": "/^a~b/"}, "~"},
		{map[string]any{"name": "/(x@y)+/"}, "@"},
		{map[string]any{"account": "/@example\\.com$/", "name": "${account}/*"}, "@"},
		{map[string]any{"account": "bob@test.com", "name": "${account}/*"}, "@"},
		{map[string]any{"name": "Registry.Example.com:5000/x/*"}, ""}, // a host with a port
		{map[string]any{"account": "/^(.+)@test.com$/", "name": "${account:1}/*"}, ""},
		{map[string]any{"account": "/.+/", "name": "${account}/*"}, ""},
		{map[string]any{"name": "${labels:project}/*"}, ""},
		{map[string]any{"name": "/a@b|c/"}, ""}, // an alternative without the @
		{map[string]any{"name": "/(?i)x@/"}, "@"},
		{map[string]any{"name": "/(?i)\\x{212A}/"}, ""}, // the Kelvin sign folds to k
		{map[string]any{"name": "[@a]/*"}, ""},
		{map[string]any{"name": "a@b", "type": "registry"}, ""},
		{map[string]any{"account": "a@b"}, ""},
	} {
		if got := refusedNameChar(tc.match); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.match, got, tc.want)
		}
	}
}
