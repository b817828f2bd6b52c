// Package opatest builds OPA bundles for tests, as `opa build [--signing-key]` would.
package opatest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// Bundle returns a .tar.gz bundle with revision, one policy module (Rego v1), a test module
// (which a loader must leave out) and data; signed with key (RS256, key id "portcullis")
// unless key is nil.
func Bundle(t testing.TB, revision, policy string, data map[string]any, key *rsa.PrivateKey) []byte {
	t.Helper()
	if data == nil {
		data = map[string]any{}
	}
	parse := func(name, src string) *ast.Module {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	const testSrc = "package portcullis.authz_test\n\ntest_nothing if true\n"
	b := bundle.Bundle{Manifest: bundle.Manifest{Revision: revision}, Data: data, Modules: []bundle.ModuleFile{
		{URL: "/policy.rego", Path: "/policy.rego", Raw: []byte(policy), Parsed: parse("/policy.rego", policy)},
		{URL: "/policy_test.rego", Path: "/policy_test.rego", Raw: []byte(testSrc), Parsed: parse("/policy_test.rego", testSrc)},
	}}
	if key != nil {
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		if err := b.GenerateSignature(bundle.NewSigningConfig(string(pemKey), "RS256", ""), "portcullis", false); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Key is a fresh RSA signing key.
func Key(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// PublicKeyFile writes k's public key as PEM into a temp dir and returns its path: what
// authz.opa.bundle.verification.public_key_file names.
func PublicKeyFile(t testing.TB, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle-key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// OrgACL is a docker_auth ACL of about n rules shaped like a large organisation's: an admin
// rule, per-user and per-team grants on team namespaces (literal accounts and names, most of
// the list), CI robots by capture group, label-based team access, library and public pulls,
// and an explicit deny. Users are user0…, teams team0…; user i is in team i%teams.
func OrgACL(n int) []any {
	teams := max(1, n/20)
	rules := []any{
		rule(map[string]any{"account": "admin"}, "*"),
		rule(map[string]any{"account": "/^ci-(team[0-9]+)$/", "name": "${account:1}/*"}, "pull", "push"),
		rule(map[string]any{"account": "/.+/", "name": "${account}/*"}, "*"),
		rule(map[string]any{"account": "/.+/", "name": "${labels:team}/*"}, "pull", "push"),
	}
	for i := 0; len(rules) < n-3; i++ {
		team := fmt.Sprintf("team%d", i%teams)
		switch i % 4 {
		case 0, 1:
			rules = append(rules, rule(map[string]any{"account": fmt.Sprintf("user%d", i), "name": team + "/*"}, "pull", "push"))
		case 2:
			rules = append(rules, rule(map[string]any{"account": fmt.Sprintf("user%d", i), "name": team + "/prod-*"}, "pull"))
		case 3:
			rules = append(rules, rule(map[string]any{"account": fmt.Sprintf("user%d", i), "name": fmt.Sprintf("team%d/*", (i+1)%teams)}, "pull"))
		}
	}
	return append(rules,
		rule(map[string]any{"account": "/.+/", "name": "library/*"}, "pull"),
		rule(map[string]any{"account": "", "name": "public/*"}, "pull"),
		rule(map[string]any{"name": "secret/*"}),
	)
}

func rule(match map[string]any, actions ...string) any {
	acts := make([]any, len(actions))
	for i, a := range actions {
		acts[i] = a
	}
	return map[string]any{"match": match, "actions": acts}
}

// OrgRequests are count 5-scope requests against OrgACL(n)'s organisation: users pulling
// and pushing in their teams' namespaces, others', library and their own.
func OrgRequests(n, count int) []authz.Request {
	teams := max(1, n/20)
	r := mrand.New(mrand.NewPCG(uint64(n), 7))
	reqs := make([]authz.Request, count)
	for i := range reqs {
		u := r.IntN(max(1, n-7))
		req := authz.Request{Service: "registry.example.com", RemoteAddr: "192.0.2.1",
			Identity: identity.Identity{Subject: fmt.Sprintf("user%d", u), Labels: map[string][]string{"team": {fmt.Sprintf("team%d", r.IntN(teams))}}}}
		for range 5 {
			ns := []string{fmt.Sprintf("team%d", u%teams), fmt.Sprintf("team%d", r.IntN(teams)), "library", fmt.Sprintf("user%d", u)}[r.IntN(4)]
			req.Requested = append(req.Requested, scope.Scope{Type: "repository", Name: fmt.Sprintf("%s/app%d", ns, r.IntN(5)), Actions: []string{"pull", "push"}})
		}
		reqs[i] = req
	}
	return reqs
}
