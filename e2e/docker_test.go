//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDockerCLI_Registry3 drives the real docker CLI and engine against distribution
// registry 3.1.2 and all-in-one Portcullis: login (wrong and right password), build an
// image FROM scratch, push it to alice/…, remove it, pull it back, and be refused pushing
// it to bob/… and pulling it after logout. The engine treats localhost registries as
// insecure (plain HTTP) by default and fetches tokens from the localhost realm itself.
func TestDockerCLI_Registry3(t *testing.T) {
	t.Parallel()
	dockerRoundTrip(t, registry3, startAllInOneDev(t))
}

// TestDockerCLI_Registry28 is the same against Debian's distribution 2.8, with Portcullis
// in libtrust kid mode (rootcertbundle).
func TestDockerCLI_Registry28(t *testing.T) {
	t.Parallel()
	dockerRoundTrip(t, registry28, startAllInOneConfig(t, portcullisConfig{KIDMode: "libtrust"}))
}

func dockerRoundTrip(t *testing.T, kind registryKind, pc *portcullis) {
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	reg := startRegistry(t, kind, pc)
	dockerPushPull(t, c, reg.Host)
}

// dockerPushPull logs the docker CLI in to host as alice (a wrong password refused first),
// builds a FROM-scratch image, pushes it, removes it, pulls it back, is refused a push to
// bob's namespace, and after logout a pull.
func dockerPushPull(t *testing.T, c *clients, host string) {
	t.Helper()
	alice := host + "/alice/hello:v1"
	bob := host + "/bob/hello:v1"
	t.Cleanup(func() {
		// Remove what the test created, whatever state it stopped in.
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, peer(t, "docker"), "image", "rm", "--force", alice, bob)
		cmd.Env = append(os.Environ(), c.env...)
		_ = cmd.Run()
	})

	loginArgs := []string{"login", host, "-u", "alice", "--password-stdin"}
	out, err := c.run(t, "wrong\n", "docker", loginArgs...)
	if err == nil || !refusedRE.MatchString(out) {
		t.Fatalf("docker login with a wrong password: %v, want it refused\n%s", err, out)
	}
	if out, err := c.run(t, "alice\n", "docker", loginArgs...); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login as alice: %v\n%s", err, out)
	}

	buildDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(buildDir, "hello.txt"), []byte("hello from the docker CLI "+time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "docker", "build", "--quiet", "--tag", alice, buildDir)

	out = c.ok(t, "docker", "push", alice)
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("docker push printed no digest:\n%s", out)
	}
	pushed := m[1]
	if got := c.skopeoDigest(t, alice, "alice:alice"); got != pushed {
		t.Fatalf("the registry holds %s as %s, docker pushed %s", alice, got, pushed)
	}

	c.ok(t, "docker", "image", "rm", alice)
	if out, err := c.run(t, "", "docker", "image", "inspect", alice); err == nil {
		t.Fatalf("%s is still present after docker image rm:\n%s", alice, out)
	}
	out = c.ok(t, "docker", "pull", alice)
	if !strings.Contains(out, pushed) {
		t.Fatalf("docker pull %s did not report the pushed digest %s:\n%s", alice, pushed, out)
	}

	c.ok(t, "docker", "tag", alice, bob)
	c.refused(t, "docker", "push", bob)

	c.ok(t, "docker", "logout", host)
	c.ok(t, "docker", "image", "rm", alice)
	c.refused(t, "docker", "pull", alice)
}
