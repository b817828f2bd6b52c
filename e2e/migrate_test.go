//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

// TestMigrateDockerAuth_Registry3_Skopeo runs what `portcullis migrate docker-auth` makes of
// a docker_auth config without "" in its users and with multi-valued labels, in front of
// distribution 3.1.2, and drives it with skopeo: what docker_auth refused stays refused
// (an anonymous pull), what it granted through label permutations is still granted.
func TestMigrateDockerAuth_Registry3_Skopeo(t *testing.T) {
	out := filepath.Join(t.TempDir(), "migrated")
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	fixture := filepath.Join(repoRoot(t), "internal", "cli", "testdata", "docker_auth_labels.yml")
	if b, err := exec.CommandContext(ctx, portcullisBin(t), "migrate", "docker-auth", "-out", out, fixture).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, b)
	}
	// What an operator edits after the migration: the FIXME placeholders and the address.
	// The file is read as the binary reads it, and what the suite writes back is checked.
	cfg, err := app.Load(filepath.Join(out, "portcullis.yaml"), false)
	if err != nil {
		t.Fatalf("the migrated config: %v", err)
	}
	if cfg.Gateway.PublicURL != "https://auth.example.com" || !slices.Equal(cfg.Gateway.Services, []string{"registry.example.com"}) {
		t.Fatalf("the migrated config's placeholders: public_url %q, services %q", cfg.Gateway.PublicURL, cfg.Gateway.Services)
	}
	port := freePort(t)
	base := fmt.Sprintf("http://localhost:%d", port)
	cfg.Gateway.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	cfg.Gateway.PublicURL = base
	cfg.Gateway.Services = []string{service}
	cfg.Signer.Audiences = nil // the default, gateway.services
	cfg.Authn.Store = storeSpec(t, &sqlite.Config{Path: filepath.Join(out, "sessions.db")})
	path := writeConfig(t, out, cfg)
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
