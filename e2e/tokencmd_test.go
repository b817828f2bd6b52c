//go:build e2e

package e2e

import (
	"strings"
	"testing"
)

// TestTokenCmd_Registries runs `portcullis token` against the real distribution 3.1.2 and
// Debian's 2.8 registries, both behind an all-in-one Portcullis (the binary): it must follow
// each registry's Bearer challenge to a token carrying the asked access, get a refresh token
// with -offline and use it with -identity-token, and say why a wrong password is refused.
func TestTokenCmd_Registries(t *testing.T) {
	pc := startAllInOneDev(t)
	c := newClients(t)
	for _, kind := range []registryKind{registry3, registry28} {
		t.Run(kind.name, func(t *testing.T) {
			reg := startRegistry(t, kind, pc)
			out := c.ok(t, portcullisBin(t), "token", "-registry", reg.URL, "-u", "alice", "-p", "alice",
				"-scope", "repository:alice/app:pull,push", "-offline", "-decode")
			for _, want := range []string{"access: repository:alice/app:pull,push", "sub: alice", "kid: ", "token by GET", "refresh token"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
			i := strings.Index(out, "-identity-token): ")
			if i < 0 {
				t.Fatalf("no refresh token:\n%s", out)
			}
			refresh := strings.Fields(out[i+len("-identity-token): "):])[0]
			out = c.ok(t, portcullisBin(t), "token", "-registry", reg.URL, "-identity-token", refresh, "-scope", "repository:alice/app:pull", "-decode")
			if !strings.Contains(out, "token by POST") || !strings.Contains(out, "access: repository:alice/app:pull") {
				t.Errorf("refresh grant:\n%s", out)
			}
			out = c.refused(t, portcullisBin(t), "token", "-registry", reg.URL, "-u", "alice", "-p", "wrong-password")
			if !strings.Contains(out, "401") {
				t.Errorf("wrong password: %s", out)
			}
		})
	}
}
