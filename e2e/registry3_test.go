//go:build e2e

package e2e

import (
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
	clientSuite(t, startRegistry(t, registry3, pc))
}

// clientSuite is what every registry must do behind Portcullis, with every client:
// skopeo, crane and oras push and pull as alice and are refused on bob/…; only admin lists
// the catalog.
func clientSuite(t *testing.T, reg *registry) {
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

		// alice's token carries no registry:catalog:* access: the registry refuses, or at
		// least lists nothing.
		out, err := alice.run(t, "", "crane", "catalog", "--insecure", reg.Host)
		switch {
		case err == nil && strings.TrimSpace(out) != "":
			t.Fatalf("alice's catalog request succeeded and listed %q, want it refused or empty", out)
		case err != nil && !refusedRE.MatchString(out):
			t.Fatalf("alice's catalog request failed (%v), but not with an auth error:\n%s", err, out)
		}
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
