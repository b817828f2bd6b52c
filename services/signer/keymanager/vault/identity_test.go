package vault

import (
	"strings"
	"testing"
)

func TestSameVaultIdentity(t *testing.T) {
	t.Parallel()
	signer := vaultIdentity{Accessor: "acc-s", Policies: []string{"portcullis-rotate", "portcullis-signer"}}
	cases := []struct {
		name      string
		signer    vaultIdentity
		certifier vaultIdentity
		want      string // "" when they differ
	}{
		{"a copy of the token", signer, vaultIdentity{Accessor: "acc-s", Policies: signer.Policies}, "same token"},
		{"another token with the signer's policies", signer, vaultIdentity{Accessor: "acc-2", Policies: []string{"portcullis-rotate", "portcullis-signer"}}, "same policies"},
		{"two logins of one AppRole", vaultIdentity{Accessor: "a", EntityID: "e1", Policies: []string{"x"}}, vaultIdentity{Accessor: "b", EntityID: "e1", Policies: []string{"y"}}, "same Vault entity"},
		{"the certifier's own token", signer, vaultIdentity{Accessor: "acc-c", Policies: []string{"portcullis-certifier"}}, ""},
		{"tokens without entity or policies", vaultIdentity{Accessor: "a"}, vaultIdentity{Accessor: "b"}, ""},
		{"a certifier with more than the signer's policies", signer, vaultIdentity{Accessor: "c", Policies: []string{"portcullis-certifier", "portcullis-rotate", "portcullis-signer"}}, ""},
	}
	for _, tc := range cases {
		got := sameVaultIdentity(tc.signer, tc.certifier)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
