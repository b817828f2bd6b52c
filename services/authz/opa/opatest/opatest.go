// Package opatest builds OPA bundles for tests, as `opa build [--signing-key]` would.
package opatest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
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
