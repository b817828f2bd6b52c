package cli

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
)

// The certifier refuses what it cannot certify before it talks to Vault, and never falls
// back to the serving signer's Vault credentials.
func TestKeysCertifyRefusesBadInvocations(t *testing.T) {
	t.Parallel()
	base := "gateway: {services: [r], public_url: \"http://localhost:5001\"}\nauthn: {backends: [{name: s, type: static, config: {users: []}}]}\n"
	local := apptest.WriteFile(t, "local.yaml", base+"signer: {key: {type: local, config: {path: /nonexistent/k.pem}}}\n")
	noX5C := apptest.WriteFile(t, "plain.yaml", base+"signer: {key: {type: vault, config: {address: \"http://127.0.0.1:1\", key: k}}}\n")
	shared := apptest.WriteFile(t, "shared.yaml", base+"signer: {key: {type: vault, config: {address: \"http://127.0.0.1:1\", key: k, "+
		"auth: {token_file: /run/signer-token}, x5c: {root_key: r}}}}\n")
	short := apptest.WriteFile(t, "short.yaml", base+"signer: {max_ttl: 1h, key: {type: vault, config: {address: \"http://127.0.0.1:1\", key: k, "+
		"x5c: {root_key: r, leaf_validity: 2h}}}}\n")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no config", nil, "usage"},
		{"stray argument", []string{"-config", local, "extra"}, "usage"},
		{"local key", []string{"-config", local}, "not a vault key with x5c"},
		{"vault without x5c", []string{"-config", noX5C}, "not a vault key with x5c"},
		{"the signer's own token", []string{"-config", shared, "-vault-token-file", "/run/signer-token"}, "serving signer's"},
		{"approle without ids", []string{"-config", shared, "-vault-auth-method", "approle"}, "certifier auth role_id"},
		{"leaves shorter than two token lifetimes", []string{"-config", short, "-vault-token-file", "/x"}, "x5c.leaf_validity"},
		{"negative interval", []string{"-config", shared, "-vault-token-file", "/x", "-interval", "-1s"}, "interval"},
		{"interval longer than a quarter of the leaf validity", []string{"-config", shared, "-vault-token-file", "/x", "-interval", "7h"}, "quarter of x5c.leaf_validity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errb strings.Builder
			err := run(t.Context(), append([]string{"keys", "certify"}, tc.args...), &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}
