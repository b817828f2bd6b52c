//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateDockerAuth_Registry3_Skopeo runs what `portcullis migrate docker-auth` makes of
// a docker_auth config without "" in its users and with multi-valued labels, in front of
// distribution 3.1.2, and drives it with skopeo: what docker_auth refused stays refused
// (an anonymous pull), what it granted through label permutations is still granted.
func TestMigrateDockerAuth_Registry3_Skopeo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "migrated")
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	fixture := filepath.Join(repoRoot(t), "cmd", "portcullis", "testdata", "docker_auth_labels.yml")
	if b, err := exec.CommandContext(ctx, portcullisBin(t), "migrate", "docker-auth", "-out", out, fixture).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, b)
	}
	// What an operator edits after the migration: the FIXME placeholders and the address.
	path := filepath.Join(out, "portcullis.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cfg := strings.NewReplacer(
		`listen: "0.0.0.0:5001"`, fmt.Sprintf(`listen: "127.0.0.1:%d"`, port),
		"public_url: https://auth.example.com", fmt.Sprintf("public_url: http://localhost:%d", port),
		"services: [registry.example.com]", "services: ["+service+"]",
	).Replace(string(data))
	cfg += fmt.Sprintf("sessions:\n  store: {type: sqlite, config: {path: %s}}\n", filepath.Join(out, "sessions.db"))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("http://localhost:%d", port)
	pc := &portcullis{URL: base, Realm: base + "/token", Dir: out, Config: path, Procs: map[string]*proc{}}
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", path, "-target=all")
	pc.waitReady(t)
	reg := startRegistry(t, registry3, pc)
	c := newClients(t)
	img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "migrated from docker_auth\n")
	src := "oci:" + img.Dir + ":latest"

	// admin may do everything: it publishes hello-world, which every caller docker_auth
	// authenticated may pull.
	hello := "docker://" + reg.Host + "/hello-world:latest"
	c.ok(t, "skopeo", skopeoCopyTo(src, hello, "admin:badmin")...)
	c.ok(t, "skopeo", skopeoCopyFrom(hello, "oci:"+filepath.Join(t.TempDir(), "pulled")+":latest", "dev:123")...)
	// docker_auth's users had no "": it answered callers without credentials 401, so an
	// anonymous pull of hello-world ("everyone" in its ACL) stays refused.
	c.refused(t, "skopeo", "--insecure-policy", "copy", "--retry-times=0", "--src-tls-verify=false", "--src-no-creds",
		hello, "oci:"+filepath.Join(t.TempDir(), "anon")+":latest")

	// dev's labels group [dev ops] × project [p1 p2]: a push to each permutation.
	for _, ns := range []string{"dev-p1", "ops-p2", "dev-p2", "ops-p1"} {
		c.ok(t, "skopeo", skopeoCopyTo(src, "docker://"+reg.Host+"/"+ns+"/app:v1", "dev:123")...)
	}
	c.refused(t, "skopeo", skopeoCopyTo(src, "docker://"+reg.Host+"/qa-p1/app:v1", "dev:123")...)
	// ${labels:project}/* grants pull only; ci's project "*" is a literal, not every namespace.
	c.refused(t, "skopeo", skopeoCopyTo(src, "docker://"+reg.Host+"/p1/app:v1", "dev:123")...)
	c.refused(t, "skopeo", skopeoCopyFrom("docker://"+reg.Host+"/dev-p1/app:v1", "oci:"+filepath.Join(t.TempDir(), "ci")+":latest", "ci:123")...)
}
