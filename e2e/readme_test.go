//go:build e2e

// The README's commands, run as written: its quick start ("Try it with a registry") and the
// policy loop ("Policy as code"). The test reads each sh block from README.md and runs it line
// by line in bash, a line ending in `&` in the background (its process group is stopped at
// the end), waiting for each server it starts to answer before the next line — what a reader
// typing the lines does. Only the make data directories move into a temp dir (the Makefile's
// RUN_DIR and REGISTRY_DIR, which the commands do not name) so the test never touches the
// reader's own .cache/run; the ports are the README's (5000, 5001, 7010) and must be free.

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock returns the lines of the first ```sh block after the heading, with `\`
// continuations joined.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "\n"+heading)
	if i < 0 {
		t.Fatalf("README.md has no section %q", heading)
	}
	text = text[i:]
	start := strings.Index(text, "\n```sh\n")
	if start < 0 {
		t.Fatalf("README.md section %q has no sh block", heading)
	}
	text = text[start+len("\n```sh\n"):]
	text = text[:strings.Index(text, "\n```")]
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\\\n", " "), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// backgroundRE splits `cmd &  # comment` into the command.
var backgroundRE = regexp.MustCompile(`^(.*[^&])&\s*(#.*)?$`)

// readmeShell runs README lines in bash in a scratch working directory that sees the
// repository's bin/, deploy/ and .cache/bin through symlinks, with `make` meaning the
// repository's Makefile.
type readmeShell struct {
	t    *testing.T
	dir  string
	env  []string
	bg   []*bgLine
	wait map[string]func() error // readiness of a background line, by its command's prefix
}

type bgLine struct {
	line string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func newReadmeShell(t *testing.T, ports ...int) *readmeShell {
	t.Helper()
	for _, p := range ports {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d is taken: the README's commands run on their own ports (5000, 5001, 7010); stop what holds it: %v", p, err)
		}
		_ = l.Close()
	}
	root := repoRoot(t)
	portcullisBin(t) // built once for the suite; make's own build then finds it up to date
	dir := t.TempDir()
	for _, d := range []string{".cache", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"bin": "bin", "deploy": "deploy", ".cache/bin": ".cache/bin"} {
		if err := os.Symlink(filepath.Join(root, target), filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	prelude := filepath.Join(dir, ".bashenv")
	if err := os.WriteFile(prelude, []byte(fmt.Sprintf("make() { command make --no-print-directory -C %q \"$@\"; }\n", root)), 0o600); err != nil {
		t.Fatal(err)
	}
	// make builds with go: keep the reader's module and build caches, which live under the
	// real HOME the clients' HOME below would hide.
	goEnv, err := exec.Command("go", "env", "-json", "GOPATH", "GOMODCACHE", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	var goVars map[string]string
	if err := json.Unmarshal(goEnv, &goVars); err != nil {
		t.Fatalf("go env: %v", err)
	}
	c := newClients(t)
	env := append(os.Environ(), c.env...)
	for k, v := range goVars {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"HOME="+filepath.Join(dir, "home"), // after the clients' HOME: the last one counts
		"BASH_ENV="+prelude,
		"EDITOR=true", // the reader edits; the test keeps the shipped example
		"PATH="+filepath.Join(root, ".cache", "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		// The make data directories, where the commands' relative .cache/run finds them.
		"RUN_DIR="+filepath.Join(dir, ".cache", "run"),
		"REGISTRY_DIR="+filepath.Join(dir, ".cache", "registry"),
	)
	sh := &readmeShell{t: t, dir: dir, env: env, wait: map[string]func() error{}}
	t.Cleanup(sh.stop)
	return sh
}

// run runs one README line: in the foreground it must exit 0; in the background it must
// become ready (the readiness registered for its command).
func (sh *readmeShell) run(line string) string {
	t := sh.t
	t.Helper()
	if m := backgroundRE.FindStringSubmatch(line); m != nil {
		command := strings.TrimSpace(m[1])
		var ready func() error
		for prefix, f := range sh.wait {
			if strings.HasPrefix(command, prefix) {
				ready = f
			}
		}
		if ready == nil {
			t.Fatalf("README line %q runs in the background, and the test does not know when it is ready: add it to the test", line)
		}
		b := sh.start(command)
		deadline := time.Now().Add(5 * time.Minute) // make builds first
		for {
			err := ready()
			if err == nil {
				return ""
			}
			select {
			case <-b.done:
				log, _ := os.ReadFile(b.log)
				t.Fatalf("README line %q exited before it was ready (%v):\n%s", line, err, log)
			default:
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(b.log)
				t.Fatalf("README line %q: not ready after 5m: %v\n%s", line, err, log)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = sh.dir, sh.env
	cmd.WaitDelay = stopTimeout
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("$ %s  [%s, %s]\n%s", line, time.Since(start).Round(time.Millisecond), exitStatus(err), indent(string(out)))
	if err != nil {
		t.Fatalf("README line %q failed: %v", line, err)
	}
	return string(out)
}

// start runs a background line in its own process group (make, bash and the server it
// starts), its output in a log file.
func (sh *readmeShell) start(line string) *bgLine {
	t := sh.t
	logPath := filepath.Join(t.TempDir(), fmt.Sprintf("bg%d.log", len(sh.bg)))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", line)
	cmd.Dir, cmd.Env = sh.dir, sh.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("start %q: %v", line, err)
	}
	t.Logf("$ %s &  [pid %d, log %s]", line, cmd.Process.Pid, logPath)
	b := &bgLine{line: line, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(b.done)
	}()
	sh.bg = append(sh.bg, b)
	return b
}

// stop ends every background line's process group, last started first, and waits for it.
func (sh *readmeShell) stop() {
	for i := len(sh.bg) - 1; i >= 0; i-- {
		b := sh.bg[i]
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(2 * stopTimeout):
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
		if sh.t.Failed() {
			log, _ := os.ReadFile(b.log)
			sh.t.Logf("log of %q:\n%s", b.line, indent(string(log)))
		}
	}
	sh.bg = nil
}

// TestReadmeQuickStart runs "Try it with a registry" as written: make run (bin/portcullis,
// all-in-one, development defaults), make registry (distribution 3.1.2, .cache/bin/registry3),
// the sample image (tar and skopeo's tarball transport) and skopeo copy as alice. Then the
// image is read back from the registry. Real peers: make, bash, distribution 3.1.2, skopeo.
func TestReadmeQuickStart(t *testing.T) {
	sh := newReadmeShell(t, 5000, 5001)
	sh.wait["make run"] = httpStatus("http://127.0.0.1:5001/readyz", 200)
	sh.wait["make registry"] = httpStatus("http://localhost:5000/v2/", 401)
	lines := readmeBlock(t, "## Try it with a registry")
	pushed := false
	for _, l := range lines {
		sh.run(l)
		pushed = pushed || strings.Contains(l, "docker://localhost:5000/alice/app:v1")
	}
	if !pushed {
		t.Fatalf("the quick start pushes no image to localhost:5000/alice/app:v1 any more: update the test\n%s", strings.Join(lines, "\n"))
	}
	out := sh.run("skopeo inspect --tls-verify=false --creds alice:alice docker://localhost:5000/alice/app:v1")
	if !strings.Contains(out, `"Digest"`) {
		t.Errorf("skopeo inspect of the pushed image:\n%s", out)
	}
	// The owner may delete in their own namespace (the shipped default policy).
	sh.run("skopeo delete --tls-verify=false --creds alice:alice docker://localhost:5000/alice/app:v1")
}

// TestReadmePolicyAsCode runs "Policy as code" as written: the teams policy copied into a
// directory, OPA's tests and an eval on it, make run POLICY_DIR=… (bin/portcullis with
// deploy/dev/policy-dir.yaml) and its policy status over the admin REST API. Then an edit
// that breaks the policy shows in the status, and reverting it clears the error. Real peers:
// make, bash, curl.
func TestReadmePolicyAsCode(t *testing.T) {
	sh := newReadmeShell(t, 5001, 7010)
	sh.wait["make run"] = func() error {
		if err := httpStatus("http://127.0.0.1:5001/readyz", 200)(); err != nil {
			return err
		}
		return tcpListening("127.0.0.1:7010")()
	}
	var status string
	for _, l := range readmeBlock(t, "## Policy as code") {
		out := sh.run(l)
		if strings.Contains(l, "/v1/policy/status") {
			status = out
		}
	}
	policyDir := filepath.Join(sh.dir, "home", "policy")
	if st := readmePolicyStatus(t, status); st["source"] != "dir "+policyDir || st["revision"] == "" || st["lastError"] != "" {
		t.Fatalf("the policy status does not show the copied policy (dir %s) active:\n%s", policyDir, status)
	}
	curl := `curl -s -H "Authorization: Bearer $(cat .cache/run/admin-token)" http://127.0.0.1:7010/v1/policy/status`
	good, err := os.ReadFile(filepath.Join(policyDir, "policy.rego"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, "policy.rego"), append(append([]byte{}, good...), "\nbroken if {\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the broken edit in the status", nil, func() error {
		if s := sh.run(curl); readmePolicyStatus(t, s)["lastError"] == "" {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(policyDir, "policy.rego"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the error cleared after the revert", nil, func() error {
		if s := sh.run(curl); readmePolicyStatus(t, s)["lastError"] != "" {
			return fmt.Errorf("status %s", s)
		}
		return nil
	})
}

// readmePolicyStatus reads GET /v1/policy/status's answer.
func readmePolicyStatus(t *testing.T, body string) map[string]string {
	t.Helper()
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("policy status %q: %v", body, err)
	}
	out := map[string]string{}
	for k, v := range st {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}
