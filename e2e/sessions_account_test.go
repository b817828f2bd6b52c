//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
)

// TestSessions_DockerCLI_PasswordChangeEndsSession is the reproduction with the real
// docker CLI and engine, distribution 3.1.2 and all-in-one Portcullis (SQLite sessions):
// `docker login` as alice stores a refresh token and a push works; alice's password is then
// changed in the htpasswd file with Apache's htpasswd tool. Once Portcullis has reloaded the
// file, the next `docker push` (which refreshes with the stored token) is refused, the session
// is gone from `portcullis sessions list`, the audit log and the sessions-ended metric say
// why, and a login with the new password works again.
func TestSessions_DockerCLI_PasswordChangeEndsSession(t *testing.T) {
	t.Parallel()
	sp := startSessionsAllInOne(t, app.StoreSpec{})
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	reg := startRegistry(t, registry3, sp.portcullis)
	ref := reg.Host + "/alice/pwchange:v1"
	t.Cleanup(func() { _, _ = c.run(t, "", "docker", "image", "rm", "--force", ref) })

	login := func(pw string) {
		t.Helper()
		if out, err := c.run(t, pw+"\n", "docker", "login", reg.Host, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login as alice: %v\n%s", err, out)
		}
	}
	login("alice")
	dockerAuth(t, c, reg.Host) // an identity token, no password
	if ss := sp.listSessions(t, "alice"); len(ss) != 1 {
		t.Fatalf("sessions after docker login: %+v, want one", ss)
	}
	buildDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(buildDir, "hello.txt"), []byte("password change "+time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "docker", "build", "--quiet", "--tag", ref, buildDir)
	c.ok(t, "docker", "push", ref)

	// htpasswd -bB, as an administrator would; Portcullis sees the file change on its own.
	htpasswdFile := filepath.Join(sp.Dir, "htpasswd")
	c.ok(t, "htpasswd", "-bB", "-C", "4", htpasswdFile, "alice", "alice-new")
	waitUntil(t, "the htpasswd file reloaded (alice's new password accepted)", sp.allProcs(), func() error {
		a := getToken(t, sp.portcullis, "alice", "alice-new", url.Values{"service": {service}})
		if a.status != http.StatusOK {
			return fmt.Errorf("status %d", a.status)
		}
		return nil
	})

	c.failsWith(t, revokedRE, "docker", "push", ref)
	if ss := sp.listSessions(t, "alice"); len(ss) != 0 {
		t.Fatalf("sessions after the password change and a refresh: %+v, want none", ss)
	}
	resp, err := httpClient.Get(sp.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`portcullis_authn_sessions_ended_total\{reason="account_changed"\} 1\b`).Match(body) {
		t.Fatalf("metrics do not count the ended session:\n%s", grepLines(string(body), "sessions_ended"))
	}
	logContains(t, sp.Procs["all"], `"msg":"session ended"`)
	logContains(t, sp.Procs["all"], `"reason":"account_changed"`)

	login("alice-new")
	c.ok(t, "docker", "push", ref)
	c.ok(t, "docker", "logout", reg.Host)
}
