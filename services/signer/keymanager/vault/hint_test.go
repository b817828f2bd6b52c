package vault

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A 403 names the policy file the refused call needs: the signer's for signing and reading,
// portcullis-rotate.hcl for a rotation (which portcullis.hcl deliberately lacks), and the
// certifier's own for everything the certifier does. Vault is faked here only to answer 403;
// the real-Vault checks are in vault_vault_test.go.
func TestPermissionDeniedNamesThePolicyTheCallNeeds(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`))
	}))
	defer srv.Close()
	cfg := (&Config{Address: srv.URL, Key: "portcullis", X5C: &X5CConfig{RootKey: "portcullis-root"}}).withDefaults()
	client, err := newClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("t")
	ctx := context.Background()
	signerT := newTransit(client, cfg, signerPolicy)
	certifierT := newTransit(client, cfg, certifierPolicy)
	cases := []struct {
		name     string
		call     func() error
		want     string
		wantAlso string
		notWant  string
	}{
		{"signer reads the key", func() error { _, err := signerT.read(ctx, "portcullis"); return err }, "deploy/vault/portcullis.hcl", "", "rotate"},
		{"signer rotates", func() error { return signerT.rotate(ctx, "portcullis") }, "deploy/vault/portcullis-rotate.hcl", "PORTCULLIS_VAULT_ROTATE", "portcullis.hcl,"},
		{"certifier reads the key", func() error { _, err := certifierT.read(ctx, "portcullis"); return err }, "deploy/vault/portcullis-certifier.hcl", "certifier", "deploy/vault/portcullis.hcl"},
		{"certifier writes the certificates", func() error {
			return newCertStore(client, cfg, certifierPolicy).write(ctx, &certDoc{}, 0)
		}, "deploy/vault/portcullis-certifier.hcl", "certifier", "deploy/vault/portcullis.hcl"},
		{"signer reads the certificates", func() error {
			_, _, err := newCertStore(client, cfg, signerPolicy).read(ctx)
			return err
		}, "deploy/vault/portcullis.hcl", "", "certifier.hcl"},
	}
	for _, tc := range cases {
		err := tc.call()
		if err == nil {
			t.Fatalf("%s: no error from a 403", tc.name)
		}
		msg := err.Error()
		if !strings.Contains(msg, "permission denied") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, tc.wantAlso) ||
			(tc.notWant != "" && strings.Contains(msg, tc.notWant)) {
			t.Errorf("%s: %q, want it to name %s (and %q), not %q", tc.name, msg, tc.want, tc.wantAlso, tc.notWant)
		}
	}
}
