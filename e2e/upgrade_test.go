//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
)

// upgradeFrom is the earlier release the upgrade test starts from: main before session
// fingerprints (sessions schema step 4), the lockout's attempt times and labels arrays, so
// the new binary has to migrate every table that release wrote. It is a commit of the
// repository's own history; move it forward when a release changes what is stored.
const upgradeFrom = "5b96e096319c23d043bbeb77901c6704ebead4e5"

// TestUpgrade_FromPinnedCommit_DockerSession_Robot_Lockout upgrades a running all-in-one
// Portcullis in place. It builds `portcullis` at upgradeFrom from this clone's git history
// (git archive, go build) and runs it with `-config FILE -target=all`, its authn state in
// SQLite (a file beside the config) and, in a second variant, in a real PostgreSQL (Debian's
// server, started by internal/testenv/pgtest). In front of the CNCF distribution registry 3.1.2, with the
// real docker CLI and engine and the old binary's own `portcullis robots` CLI:
//
//   - `docker login` as alice stores a refresh token (docker's identity token) and a push works;
//   - robot ci (group admins, label team=platform) is created and its key gets a token;
//   - three wrong passwords for admin lock (admin, 127.0.0.1): admin's right password is 429;
//
// then the old process is stopped (SIGTERM) and this tree's binary starts on the same config,
// data and database. The lock is still in force (the lockout rows are read), the refresh
// grant with docker's identity token answers 200, docker pushes and pulls without a new login,
// the robot key still gets its token, `portcullis robots list` shows ci as it was created,
// and `portcullis sessions list` shows alice's session. The session, which the earlier release
// stored without a fingerprint, got alice's at that first refresh: a password change (Apache's
// htpasswd tool) then ends it.
func TestUpgrade_FromPinnedCommit_DockerSession_Robot_Lockout(t *testing.T) {
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	oldBin := buildPortcullisAt(t, upgradeFrom)
	newBin := portcullisBin(t)

	for _, v := range []struct {
		name  string
		store func(t *testing.T, dir string) (typ, key, value string) // sessions.store
	}{
		{"SQLite", func(_ *testing.T, dir string) (string, string, string) {
			return "sqlite", "path", filepath.Join(dir, "sessions.db")
		}},
		{"PostgreSQL", func(t *testing.T, _ string) (string, string, string) {
			return "postgres", "dsn", pgtest.StartServer(t).NewDatabase(t)
		}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			typ, key, value := v.store(t, dir)
			upgradeInPlace(t, oldBin, newBin, dir, map[string]string{"STORE_TYPE": typ, "STORE_KEY": key, "STORE_VALUE": value})
		})
	}
}

// upgradeFixture is the config both binaries run on. The earlier release refuses keys it
// does not know, so it cannot be a marshalled app.Config as everywhere else in the suite:
// it is the suite's one YAML fixture, and so also the test that the file format, as
// operators write it (sessions.store, the old name of authn.store, included), keeps working.
const upgradeFixture = "testdata/upgrade-from.yml"

// writeUpgradeConfig fills in upgradeFixture's placeholders from vars and writes it to dir,
// checking that this tree reads it (app.Load, Validate) and warns about sessions.store.
func writeUpgradeConfig(t *testing.T, dir string, vars map[string]string) string {
	t.Helper()
	data, err := os.ReadFile(upgradeFixture)
	if err != nil {
		t.Fatal(err)
	}
	cfg := os.Expand(string(data), func(name string) string {
		v, ok := vars[name]
		if !ok || v == "" || strings.ContainsAny(v, "\"\\\n") {
			t.Fatalf("%s: placeholder ${%s}: value %q missing or not plain text", upgradeFixture, name, v)
		}
		return v
	})
	path := filepath.Join(dir, "portcullis.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := app.Load(path, false)
	if err == nil {
		err = c.Validate()
	}
	if err != nil {
		t.Fatalf("this tree refuses %s: %v\n%s", upgradeFixture, err, cfg)
	}
	if d := c.Deprecations(); len(d) != 1 || !strings.Contains(d[0], "sessions.store") {
		t.Fatalf("deprecations of %s: %q, want sessions.store's", upgradeFixture, d)
	}
	return path
}

// upgradeInPlace is one variant of the upgrade test, in dir, on the authn store vars say.
func upgradeInPlace(t *testing.T, oldBin, newBin, dir string, vars map[string]string) {
	tokenFile := filepath.Join(t.TempDir(), "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(sessionsAdminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	port, metrics := freePort(t), freePort(t)
	writeHtpasswd(t, dir)
	maps.Copy(vars, map[string]string{
		"GATEWAY_PORT": strconv.Itoa(port), "METRICS_PORT": strconv.Itoa(metrics), "SERVICE": service, "ISSUER": issuer,
		"DIR": dir, "ADMIN_TOKEN_FILE": tokenFile, "ADMIN_ADDR": addr,
	})
	base := fmt.Sprintf("http://localhost:%d", port)
	pc := &portcullis{URL: base, Realm: base + "/token", Dir: dir, Config: writeUpgradeConfig(t, dir, vars), Procs: map[string]*proc{},
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)}
	sp := &sessionsPortcullis{portcullis: pc, AdminAddr: addr, AdminTokenFile: tokenFile}
	start := func(name, bin string) {
		t.Helper()
		sp.Procs["all"] = startProc(t, name, bin, "-config", pc.Config, "-target=all")
		sp.waitReady(t)
		waitUntil(t, name+" admin API listening on "+addr, sp.allProcs(), tcpListening(addr))
	}

	// The earlier release writes its data.
	start("portcullis-old", oldBin)
	reg := startRegistry(t, registry3, pc)
	c := newClients(t)
	ref := reg.Host + "/alice/upgrade:v1"
	t.Cleanup(func() { _, _ = c.run(t, "", "docker", "image", "rm", "--force", ref) })
	if out, err := c.run(t, "alice\n", "docker", "login", reg.Host, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login as alice: %v\n%s", err, out)
	}
	session := dockerAuth(t, c, reg.Host) // a refresh token, no password
	robotScratchImage(t, c, ref, "pushed before the upgrade")
	c.ok(t, "docker", "push", ref)
	out, err := runPortcullisBin(t, oldBin, "sessions", "list", "-o", "json", "-user", "alice", "-addr", addr, "-admin-token-file", tokenFile)
	var before struct{ Sessions []e2eSession }
	if err != nil || json.Unmarshal([]byte(out), &before) != nil || len(before.Sessions) != 1 {
		t.Fatalf("old portcullis sessions list: %v, want alice's one session\n%s", err, out)
	}

	out, err = runPortcullisBin(t, oldBin, "robots", "create", "-name", "ci", "-group", "admins", "-label", "team=platform", "-o", "json",
		"-addr", addr, "-admin-token-file", tokenFile)
	var ci e2eRobot
	if err != nil || json.Unmarshal([]byte(out), &ci) != nil || !strings.HasPrefix(ci.Key, "pcp_") {
		t.Fatalf("old portcullis robots create: %v\n%s", err, out)
	}
	robotToken := func() {
		t.Helper()
		tok := mustToken(t, pc, "ci", ci.Key, "repository:team/app:pull,push")
		if tok.claims.Subject != "robot:ci" {
			t.Fatalf("robot ci's token: sub %q, want robot:ci", tok.claims.Subject)
		}
		checkAccess(t, tok, map[string][]string{"repository:team/app": {"pull", "push"}})
	}
	robotToken()

	for range 3 {
		if a := getToken(t, pc, "admin", "wrong", url.Values{"service": {service}}); a.status != http.StatusUnauthorized {
			t.Fatalf("admin with a wrong password: status %d, want 401\n%s", a.status, a.body)
		}
	}
	locked := func(when string) {
		t.Helper()
		a := getToken(t, pc, "admin", "admin", url.Values{"service": {service}})
		if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s: admin's right password while locked: status %d (Retry-After %q), want 429 with Retry-After\n%s",
				when, a.status, a.header.Get("Retry-After"), a.body)
		}
	}
	locked("before the upgrade")

	// The upgrade: a clean stop, then the new binary on the same config, data and database.
	old := sp.Procs["all"]
	if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to the old portcullis: %v", err)
	}
	old.wait()
	if !old.exited() {
		t.Fatal("the old portcullis did not exit after SIGTERM")
	}
	start("portcullis-new", newBin)
	logContains(t, sp.Procs["all"], "config: sessions.store is the old name of authn.store")

	locked("after the upgrade")
	if a := refreshPOST(t, pc, session.IdentityToken, "docker"); a.status != http.StatusOK || decodeTokenAnswer(t, a).AccessToken == "" {
		t.Fatalf("refresh grant with docker's identity token from before the upgrade: status %d, want 200 with a token\n%s", a.status, a.body)
	}
	// docker refreshes with the identity token it stored; no new login.
	robotScratchImage(t, c, ref, "pushed after the upgrade")
	push := c.ok(t, "docker", "push", ref)
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(push)
	if m == nil {
		t.Fatalf("docker push printed no digest:\n%s", push)
	}
	c.ok(t, "docker", "image", "rm", ref)
	if out := c.ok(t, "docker", "pull", ref); !strings.Contains(out, m[1]) {
		t.Fatalf("docker pull %s did not report the pushed digest %s:\n%s", ref, m[1], out)
	}
	robotToken()
	out, err = runPortcullis(t, "robots", "list", "-o", "json", "-addr", addr, "-admin-token-file", tokenFile)
	var list struct {
		Robots []struct {
			Name   string            `json:"name"`
			State  string            `json:"state"`
			Groups []string          `json:"groups"`
			Labels map[string]string `json:"labels"`
		} `json:"robots"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list.Robots) != 1 {
		t.Fatalf("robots list after the upgrade: %v\n%s", err, out)
	}
	if r := list.Robots[0]; r.Name != "ci" || r.State != "ROBOT_STATE_ACTIVE" || strings.Join(r.Groups, ",") != "admins" || r.Labels["team"] != "platform" {
		t.Fatalf("robots list after the upgrade: %+v, want ci, active, group admins, label team=platform", r)
	}
	ss := sp.listSessions(t, "alice")
	if len(ss) != 1 || ss[0].ID != before.Sessions[0].ID || ss[0].ClientID != "docker" || ss[0].Subject != "alice" || ss[0].Service != service {
		t.Fatalf("sessions after the upgrade: %+v, want alice's docker session from before it, %s", ss, before.Sessions[0].ID)
	}

	// The session had no fingerprint; its first refresh after the upgrade recorded alice's,
	// so a password change now ends it.
	// Polled with the refresh grant itself: a password login would count failures until the
	// file is reloaded, and the lockout above locks after three.
	c.ok(t, "htpasswd", "-bB", "-C", "4", filepath.Join(pc.Dir, "htpasswd"), "alice", "alice-new")
	waitUntil(t, "the refresh grant refused after alice's password change", sp.allProcs(), func() error {
		a := refreshPOST(t, pc, session.IdentityToken, "docker")
		if a.status == http.StatusOK {
			return errors.New("status 200: the htpasswd file is not reloaded yet")
		}
		if a.status != http.StatusBadRequest || decodeTokenAnswer(t, a).Error != "invalid_grant" {
			t.Fatalf("refresh grant after alice's password change: status %d, want 400 invalid_grant\n%s", a.status, a.body)
		}
		return nil
	})
	if ss := sp.listSessions(t, "alice"); len(ss) != 0 {
		t.Fatalf("sessions after alice's password change: %+v, want none", ss)
	}
}

// buildPortcullisAt builds cmd/portcullis at commit of this clone's history into a temp dir
// (git archive, then go build there; the module and build caches are shared, so it is
// quick). A commit missing from the history fails the test: a shallow clone cannot run it.
func buildPortcullisAt(t *testing.T, commit string) string {
	t.Helper()
	root := repoRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	run := func(dir, name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "cat-file", "-e", commit+"^{commit}").CombinedOutput(); err != nil {
		t.Fatalf("commit %s, the earlier release the upgrade test builds, is not in this clone's history "+
			"(a shallow clone? fetch the full history: git fetch --unshallow): %v\n%s", commit, err, out)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "src.tar")
	run(root, "git", "archive", "--format=tar", "-o", archive, commit)
	run(src, "tar", "-xf", archive)
	bin := filepath.Join(dir, "portcullis-"+commit[:7])
	start := time.Now()
	run(src, "go", "build", "-o", bin, "./cmd/portcullis")
	t.Logf("built portcullis at %s in %s", commit[:7], time.Since(start).Round(time.Millisecond))
	return bin
}
