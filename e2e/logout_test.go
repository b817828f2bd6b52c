//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/credhelpertest"
)

// TestLogout_DockerCLI_Registry3 drives `portcullis logout` after the real docker CLI's login:
// `docker login` against distribution 3.1.2 behind all-in-one Portcullis stores an identity
// token (a refresh token); a push works with it; `portcullis logout HOST`, with the same
// DOCKER_CONFIG, ends the session at the gateway's RFC 7009 endpoint (found in its metadata)
// and removes the entry. Then the admin API lists no session, a refresh with the old token is
// invalid_grant, config.json keeps its other keys but not the entry, and docker push is
// refused. A second logout says there is nothing to log out of.
func TestLogout_DockerCLI_Registry3(t *testing.T) {
	t.Parallel()
	sp := startSessionsAllInOne(t, app.StoreSpec{})
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	reg := startRegistry(t, registry3, sp.portcullis)
	ref := reg.Host + "/alice/logout:v1"
	t.Cleanup(func() { _, _ = c.run(t, "", "docker", "image", "rm", "--force", ref) })

	if out, err := c.run(t, "alice\n", "docker", "login", reg.Host, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login as alice: %v\n%s", err, out)
	}
	rt := dockerAuth(t, c, reg.Host).IdentityToken
	// The token is live before logout, so its refusal after it is logout's doing.
	if a := refreshPOST(t, sp.portcullis, rt, "docker"); a.status != 200 {
		t.Fatalf("refresh with docker's identity token before logout: %d %s", a.status, a.body)
	}
	// A key of docker's own that logout must keep.
	cfgPath := dockerConfigFile(c)
	addKey(t, cfgPath, "HttpHeaders", map[string]string{"X-E2E": "kept"})

	buildDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(buildDir, "hello.txt"), []byte("logout test "+time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "docker", "build", "--quiet", "--tag", ref, buildDir)
	c.ok(t, "docker", "push", ref)
	if ss := sp.listSessions(t, "alice"); len(ss) != 1 {
		t.Fatalf("sessions after docker login and push: %+v, want one", ss)
	}

	out, err := c.portcullis(t, "logout", reg.Host)
	if err != nil {
		t.Fatalf("portcullis logout %s: %v\n%s", reg.Host, err, out)
	}
	if !strings.Contains(out, "session ended at ") || !strings.Contains(out, "/revoke; removed "+reg.Host+" from "+cfgPath) {
		t.Fatalf("portcullis logout said:\n%s\nwant the session ended and the entry removed from %s", out, cfgPath)
	}
	if strings.Contains(out, rt) {
		t.Fatal("portcullis logout printed the refresh token")
	}

	if ss := sp.listSessions(t, "alice"); len(ss) != 0 {
		t.Fatalf("sessions after portcullis logout: %+v, want none", ss)
	}
	if a := refreshPOST(t, sp.portcullis, rt, "docker"); a.status != 400 || decodeTokenAnswer(t, a).Error != "invalid_grant" {
		t.Fatalf("refresh with the logged-out token: %d %s, want 400 invalid_grant", a.status, a.body)
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("config.json after logout: %v\n%s", err, data)
	}
	if strings.Contains(string(data), reg.Host) || strings.Contains(string(data), rt) || !strings.Contains(string(cfg["HttpHeaders"]), "X-E2E") {
		t.Fatalf("config.json after logout still names %s or lost HttpHeaders:\n%s", reg.Host, data)
	}
	if fi, err := os.Stat(cfgPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config.json after logout: %v, mode %v, want 0600", err, fi.Mode().Perm())
	}
	// The gateway's and authn's audit events are there, joined by the request id; the token is
	// in neither.
	logData, err := os.ReadFile(sp.Procs["all"].log)
	if err != nil {
		t.Fatal(err)
	}
	if logs := string(logData); !strings.Contains(logs, `"token revocation"`) || !strings.Contains(logs, `"session revoked"`) || strings.Contains(logs, rt) {
		t.Fatalf("the server log lacks the revocation's audit events or holds the refresh token:\n%s", logs)
	}
	// docker has no credentials now: the registry's 401 reaches the user.
	c.failsWith(t, revokedRE, "docker", "push", ref)

	if out, err := c.portcullis(t, "logout", reg.Host); err != nil || !strings.Contains(out, "not logged in to "+reg.Host) {
		t.Fatalf("second portcullis logout: %v\n%s", err, out)
	}
}

// portcullis runs this tree's portcullis binary with the clients' environment (DOCKER_CONFIG).
func (c *clients) portcullis(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, portcullisBin(t), args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.WaitDelay = stopTimeout
	out, err := cmd.CombinedOutput()
	t.Logf("$ portcullis %s  [%v]\n%s", strings.Join(args, " "), exitStatus(err), indent(string(out)))
	return string(out), err
}

// addKey sets a top-level key of a docker config.json.
func addKey(t *testing.T, path, key string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg[key] = v
	if data, err = json.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLogout_DockerCLI_CredentialHelper: docker configured with credsStore keeps the identity
// token in the helper (here the test helper of internal/testenv/credhelpertest, which docker
// runs as it would docker-credential-pass or -secretservice) and only an empty entry in
// config.json. `portcullis logout` gets the token from the helper, ends the session, erases
// it from the helper and removes the empty entry; docker push is refused after it.
func TestLogout_DockerCLI_CredentialHelper(t *testing.T) {
	t.Parallel()
	sp := startSessionsAllInOne(t, app.StoreSpec{})
	c := newClients(t)
	bin := t.TempDir()
	store := credhelpertest.Build(t, bin, "e2etest", nil)
	c.env = append(c.env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfgPath := dockerConfigFile(c)
	if err := os.WriteFile(cfgPath, []byte(`{"credsStore":"e2etest"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := startRegistry(t, registry3, sp.portcullis)
	ref := reg.Host + "/alice/logout-helper:v1"
	t.Cleanup(func() { _, _ = c.run(t, "", "docker", "image", "rm", "--force", ref) })

	if out, err := c.run(t, "alice\n", "docker", "login", reg.Host, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login as alice: %v\n%s", err, out)
	}
	data, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	var held map[string]struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal(data, &held); err != nil {
		t.Fatalf("helper store: %v\n%s", err, data)
	}
	rt := held[reg.Host].Secret
	if held[reg.Host].Username != "<token>" || !strings.HasPrefix(rt, "pcr_") {
		t.Fatalf("docker login stored %+v in the credential helper, want an identity token", held)
	}
	if data, _ := os.ReadFile(cfgPath); strings.Contains(string(data), rt) {
		t.Fatalf("config.json holds the token despite credsStore:\n%s", data)
	}
	buildDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM scratch\nCOPY Dockerfile /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "docker", "build", "--quiet", "--tag", ref, buildDir)
	c.ok(t, "docker", "push", ref)

	out, err := c.portcullis(t, "logout", reg.Host)
	if err != nil || !strings.Contains(out, "session ended at ") || !strings.Contains(out, "erased "+reg.Host+" from docker-credential-e2etest") {
		t.Fatalf("portcullis logout %s: %v\n%s", reg.Host, err, out)
	}
	if ss := sp.listSessions(t, "alice"); len(ss) != 0 {
		t.Fatalf("sessions after portcullis logout: %+v, want none", ss)
	}
	if data, _ := os.ReadFile(store); strings.Contains(string(data), rt) {
		t.Fatalf("the helper still holds the token:\n%s", data)
	}
	data, _ = os.ReadFile(cfgPath)
	if strings.Contains(string(data), reg.Host) || !strings.Contains(string(data), `"credsStore": "e2etest"`) {
		t.Fatalf("config.json after logout:\n%s", data)
	}
	c.failsWith(t, revokedRE, "docker", "push", ref)
}
