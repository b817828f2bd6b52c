//go:build e2e

package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRegistry3_JWKS_AllInOne starts Portcullis all-in-one with the development defaults
// and the CNCF distribution registry 3.1.2 trusting it through the jwks and rootcertbundle
// files `portcullis registry-config` wrote; then skopeo, crane and oras push and pull as
// alice, and are refused where the policy says no.
func TestRegistry3_JWKS_AllInOne(t *testing.T) {
	t.Parallel()
	pc := startAllInOneDev(t)
	clientSuite(t, pc, startRegistry(t, registry3, pc))
}

// clientSuite is what every registry must do behind Portcullis, with every client:
// skopeo, crane and oras push and pull as alice and are refused on bob/…; only admin lists
// the catalog: alice is refused it (401 insufficient_scope), not given an empty list.
func clientSuite(t *testing.T, pc *portcullis, reg *registry) {
	t.Run("Skopeo", func(t *testing.T) {
		skopeoPushPull(t, newClients(t), reg, "app")
	})

	t.Run("Crane", func(t *testing.T) {
		alice := newClients(t)
		alice.ok(t, "crane", "auth", "login", reg.Host, "-u", "alice", "-p", "alice")
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "hello from crane\n")
		ref := reg.Host + "/alice/crane:v1"

		alice.ok(t, "crane", "push", "--insecure", img.Dir, ref)
		if got := strings.TrimSpace(alice.ok(t, "crane", "digest", "--insecure", ref)); got != img.ManifestDigest {
			t.Fatalf("crane digest %s = %q, want %s", ref, got, img.ManifestDigest)
		}
		alice.ok(t, "crane", "copy", "--insecure", ref, reg.Host+"/alice/crane-copy:v1")
		if got := strings.TrimSpace(alice.ok(t, "crane", "digest", "--insecure", reg.Host+"/alice/crane-copy:v1")); got != img.ManifestDigest {
			t.Fatalf("crane digest of the copy = %q, want %s", got, img.ManifestDigest)
		}
		if tags := alice.ok(t, "crane", "ls", "--insecure", reg.Host+"/alice/crane"); !strings.Contains(tags, "v1") {
			t.Fatalf("crane ls alice/crane = %q, want v1", tags)
		}

		alice.refused(t, "crane", "push", "--insecure", img.Dir, reg.Host+"/bob/crane:v1")
		alice.refused(t, "crane", "copy", "--insecure", ref, reg.Host+"/bob/crane:v1")

		anonymous := newClients(t)
		anonymous.refused(t, "crane", "digest", "--insecure", ref)

		wrong := newClients(t)
		wrong.ok(t, "crane", "auth", "login", reg.Host, "-u", "alice", "-p", "wrong")
		wrong.refused(t, "crane", "digest", "--insecure", ref)
	})

	t.Run("Oras", func(t *testing.T) {
		work := t.TempDir()
		const content = "an artifact, not an image\n"
		if err := os.WriteFile(filepath.Join(work, "file.txt"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		alice := newClients(t)
		alice.cwd = work
		ref := reg.Host + "/alice/artifact:v1"

		alice.ok(t, "oras", "push", "--plain-http", "-u", "alice", "-p", "alice", ref, "file.txt")
		alice.ok(t, "oras", "pull", "--plain-http", "-u", "alice", "-p", "alice", "-o", "out", ref)
		got, err := os.ReadFile(filepath.Join(work, "out", "file.txt"))
		if err != nil {
			t.Fatalf("oras pull wrote no file.txt: %v", err)
		}
		if string(got) != content {
			t.Fatalf("pulled file.txt = %q, want %q", got, content)
		}

		alice.refused(t, "oras", "push", "--plain-http", "-u", "alice", "-p", "alice", reg.Host+"/bob/artifact:v1", "file.txt")
		alice.refused(t, "oras", "pull", "--plain-http", "-u", "alice", "-p", "wrong", "-o", "out-wrong", ref)
	})

	t.Run("Catalog", func(t *testing.T) {
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "hello for the catalog\n")
		alice := newClients(t)
		alice.ok(t, "crane", "auth", "login", reg.Host, "-u", "alice", "-p", "alice")
		alice.ok(t, "crane", "push", "--insecure", img.Dir, reg.Host+"/alice/listed:v1")

		admin := newClients(t)
		admin.ok(t, "crane", "auth", "login", reg.Host, "-u", "admin", "-p", "admin")
		repos := strings.Fields(admin.ok(t, "crane", "catalog", "--insecure", reg.Host))
		if !contains(repos, "alice/listed") {
			t.Fatalf("admin's catalog = %q, want it to list alice/listed", repos)
		}

		// alice may not list the catalog: her token for registry:catalog:* carries no
		// access, and the registry refuses it for insufficient scope — a successful
		// listing, even an empty one, is a hole.
		tok := mustToken(t, pc, "alice", "alice", "registry:catalog:*")
		checkAccess(t, tok, map[string][]string{})
		req := mustRequest(t, http.MethodGet, reg.URL+"/v2/_catalog")
		req.Header.Set("Authorization", "Bearer "+tok.raw)
		a := do(t, req)
		if a.status != http.StatusUnauthorized || !strings.Contains(a.header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("GET /v2/_catalog with alice's token: status %d, WWW-Authenticate %q, want 401 insufficient_scope\n%s",
				a.status, a.header.Get("WWW-Authenticate"), a.body)
		}
		// The control: the same request with the admin's token is answered.
		adminTok := mustToken(t, pc, "admin", "admin", "registry:catalog:*")
		req.Header.Set("Authorization", "Bearer "+adminTok.raw)
		if a := do(t, req); a.status != http.StatusOK || !strings.Contains(string(a.body), `"alice/listed"`) {
			t.Fatalf("GET /v2/_catalog with the admin's token: status %d, want 200 listing alice/listed\n%s", a.status, a.body)
		}
		alice.refused(t, "crane", "catalog", "--insecure", reg.Host)
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
