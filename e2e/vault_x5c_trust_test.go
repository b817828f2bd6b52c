//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/vaulttest"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

// TestVaultX5C_TrustIsTheRootAlone: in x5c mode `portcullis registry-config` gives a
// registry the root certificate and nothing else, so the signing key is never pinned. A
// token without an x5c chain, signed through transit with the signer's own Vault token (what
// a thief of that token could make), is refused by distribution 3.1.2 set up from those
// files, while Portcullis's own tokens are accepted; a registry that also pins the key (a
// jwks line) accepts the bare token, which shows what is at stake, and `portcullis doctor`
// reports that registry's config as a problem. The certifier refuses a renamed copy of the
// signer's token.
func TestVaultX5C_TrustIsTheRootAlone(t *testing.T) {
	t.Parallel()
	v := startVaultSigningKeys(t, true)
	vp := startVaultAllInOne(t, v, vaultPortcullisConfig{X5C: true})

	trust := vp.registryTrust(t)
	auth, err := os.ReadFile(filepath.Join(trust, "auth-token.yml"))
	if err != nil {
		t.Fatal(err)
	}
	reg := startTrustedRegistry(t, registry3, vp.portcullis, trust)
	tok := mustToken(t, vp.portcullis, "alice", "alice", "repository:alice/probe:pull")
	if !reg.acceptsToken(t, tok) {
		t.Fatalf("registry 3.1.2 with the root alone refuses Portcullis's x5c token (kid %s)", tok.kid)
	}
	bare := bareTransitToken(t, vp, tok)
	if reg.acceptsToken(t, bare) {
		t.Fatalf("registry 3.1.2 set up from registry-config's x5c output accepts a bare token (no x5c) signed with the signer's Vault token: the signing key is pinned")
	}
	if strings.Contains(string(auth), "jwks") {
		t.Fatalf("registry-config in x5c mode wrote a jwks line:\n%s", auth)
	}
	if _, err := os.Stat(filepath.Join(trust, "jwks.json")); err == nil {
		t.Fatal("registry-config in x5c mode wrote jwks.json")
	}

	// The same registry with the key pinned as well: the bare token goes through.
	pinned := filepath.Join(t.TempDir(), "pinned")
	if err := os.MkdirAll(pinned, 0o755); err != nil {
		t.Fatal(err)
	}
	set, _ := vp.gatewayJWKS(t)
	jwks, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	jwksFile := filepath.Join(pinned, "jwks.json")
	pinnedAuth := filepath.Join(pinned, "auth-token.yml")
	if err := os.WriteFile(jwksFile, jwks, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pinnedAuth, []byte(strings.TrimRight(string(auth), "\n")+"\n    jwks: "+jwksFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pinnedReg := startTrustedRegistry(t, registry3, vp.portcullis, pinned)
	if !pinnedReg.acceptsToken(t, bare) {
		t.Fatal("a registry pinning the signing key (jwks) refuses the bare token: this test would not notice a pinned key")
	}

	t.Run("DoctorFlagsThePinnedKey", func(t *testing.T) {
		tokFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokFile, []byte(tok.raw), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			cfg, registry string
			pins          bool
		}{{filepath.Join(trust, "auth-token.yml"), reg.URL, false}, {pinnedAuth, pinnedReg.URL, true}} {
			out, err := runPortcullis(t, "doctor", "-registry", tc.registry, "-token", tokFile, "-registry-config", tc.cfg)
			if got := strings.Contains(out, "pins a signing key"); got != tc.pins || (tc.pins && err == nil) {
				t.Fatalf("doctor with %s: pin reported %v (exit %v), want %v", tc.cfg, got, err, tc.pins)
			}
		}
	})

	t.Run("CertifierRefusesARenamedCopyOfTheSignersToken", func(t *testing.T) {
		b, err := os.ReadFile(vp.SignerTokenFile)
		if err != nil {
			t.Fatal(err)
		}
		renamed := filepath.Join(t.TempDir(), "certifier-token")
		if err := os.WriteFile(renamed, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := runPortcullis(t, "keys", "certify", "-config", vp.Config, "-vault-token-file", renamed)
		if err == nil || !strings.Contains(out, "own identity") || !strings.Contains(out, "portcullis-certifier.hcl") || strings.Contains(out, "VERSION") {
			t.Fatalf("keys certify with a renamed copy of the signer's token: exit %v, want a refusal naming portcullis-certifier.hcl:\n%s", err, out)
		}
		// The certifier's own token still works.
		if rows := vp.certify(t); len(rows) != 1 || rows[0].State != "active" {
			t.Fatalf("keys certify with its own token: %+v, want version 1 active", rows)
		}
	})
}

// bareTransitToken is tok without its x5c header, signed again through transit with the
// signer's Vault token: what anyone holding that token can make.
func bareTransitToken(t testing.TB, vp *vaultPortcullis, tok token) token {
	t.Helper()
	parts := strings.Split(tok.raw, ".")
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		t.Fatal(err)
	}
	var header map[string]any
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	if _, ok := header["x5c"]; !ok {
		t.Fatalf("token header %s has no x5c: not an x5c-mode token", hb)
	}
	delete(header, "x5c")
	if hb, err = json.Marshal(header); err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(hb) + "." + parts[1]
	digest := sha256.Sum256([]byte(input))
	signerToken, err := os.ReadFile(vp.SignerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	c := vp.Vault.Client(t)
	c.SetToken(strings.TrimSpace(string(signerToken)))
	s, err := c.Logical().Write("transit/sign/"+vaultSigningKey, map[string]any{"input": base64.StdEncoding.EncodeToString(digest[:]),
		"prehashed": true, "hash_algorithm": "sha2-256", "marshaling_algorithm": "jws"})
	if err != nil {
		t.Fatalf("signing a bare token through transit with the signer's token: %v", err)
	}
	sig, _ := s.Data["signature"].(string)
	_, sig, _ = strings.Cut(strings.TrimPrefix(sig, "vault:"), ":") // vault:vN:<base64url>
	bare := tok
	bare.raw = input + "." + strings.TrimRight(sig, "=")
	return bare
}

// TestVault_RotateThroughTheREADMEsAppRole: deploy/vault/bootstrap.sh with
// PORTCULLIS_VAULT_ROTATE=1 lets the signer rotate through Portcullis when it logs in with
// the AppRole, as the README's example config does (not only with the bootstrap token).
func TestVault_RotateThroughTheREADMEsAppRole(t *testing.T) {
	t.Parallel()
	v := startVaultSigningKeys(t, true)
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "deploy", "vault", "bootstrap.sh"), out)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.RootToken, "PORTCULLIS_VAULT_ROTATE=1",
		"PATH="+filepath.Dir(vaulttest.Binary(t))+":"+os.Getenv("PATH"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bootstrap.sh: %v\n%s", err, b)
	}
	roleID, err := os.ReadFile(filepath.Join(out, "role-id"))
	if err != nil {
		t.Fatal(err)
	}
	vp := startVaultAllInOne(t, v, vaultPortcullisConfig{X5C: true,
		Auth: &vault.AuthConfig{Method: "approle", RoleID: strings.TrimSpace(string(roleID)), SecretIDFile: filepath.Join(out, "secret-id")}})
	wantKeyStates(t, vp.keys(t, "list"), map[int]string{1: "active"})
	wantKeyStates(t, vp.keys(t, "rotate"), map[int]string{1: "active", 2: "published"})
}
