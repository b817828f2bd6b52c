package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/pkg/identity"
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
	for _, want := range []string{"users → htpasswd (3 users", "ldap_auth → the ldap backend (ldaps://ldap.example.com:636; user search base o=example.com, username attribute uid)",
		"acl → policy/data.yaml (11 rules", `token.issuer → signer.issuer "Acme auth server"`, "token.expiration → gateway.token_ttl 900s"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks converted %q", want)
		}
	}
	notConverted := report[strings.Index(report, "NOT converted"):]
	for _, want := range []string{"acl_mongo:", "casbin_authz:", "ext_authz:", "google_auth:", "users.vip.labels", "ldap_auth.labels.groups: parse_cn", "server.certificate"} {
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
	cfg, _, err := loadConfig(filepath.Join(out, "portcullis.yaml"), false, defaultDataDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the migrated config does not validate: %v", err)
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
}
