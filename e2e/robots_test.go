//go:build e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/services/authn/backend/robot"
)

// robotsAdminSecret is the admin bearer secret of the robot tests.
const robotsAdminSecret = "e2e-robots-admin-secret-0123456789"

// TestRobots_DockerCLI_Crane_Skopeo_Registry3 is a machine logging in with a robot account's
// API key. It starts all-in-one Portcullis (`portcullis -config FILE`) whose authn chain is
// htpasswd then a robot backend, with the shipped default policy, robots in the SQLite state
// store and the admin gRPC API on loopback; the CNCF distribution registry 3.1.2 trusting its
// tokens; and the real clients: the portcullis CLI (`robots create|list|revoke`), the docker
// CLI with this machine's engine, crane and skopeo. Then:
//
//   - `portcullis robots create` makes robot ci (group admins) and prints its pcp_ key once;
//   - docker login -u ci with the key (config.json keeps the key: a robot gets no refresh
//     token), a FROM-scratch image built, pushed, read back with skopeo, pulled back;
//   - crane logs in with the key and pushes an OCI layout, skopeo pulls it; robot reader
//     (no groups) may pull library/ and is refused a push; ci's key under reader's name and a
//     wrong key are refused;
//   - `portcullis robots revoke ci`: the key is refused at the token endpoint within 1 s of
//     the revocation, and docker (with the key in config.json), crane and skopeo are refused;
//   - a robot created with `-expires 3s` logs in, and once that has passed its key is refused
//     by docker login and skopeo; `robots list` shows ci revoked and it expired.
func TestRobots_DockerCLI_Crane_Skopeo_Registry3(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	pc, adminArgs := startRobotsAllInOne(t)
	reg := startRegistry(t, registry3, pc)
	robotsCLI := func(args ...string) string {
		t.Helper()
		args = append(append([]string{"robots"}, args...), adminArgs...)
		out, err := runPortcullis(t, args...)
		if err != nil {
			t.Fatalf("portcullis %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	create := func(args ...string) e2eRobot {
		t.Helper()
		var r e2eRobot
		out := robotsCLI(append([]string{"create", "-o", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &r); err != nil || !strings.HasPrefix(r.Key, "pcp_") {
			t.Fatalf("robots create -o json: %v\n%s", err, out)
		}
		return r
	}

	ci := create("-name", "ci", "-group", "admins", "-label", "team=platform")
	if ci.Robot.Subject != "robot:ci" || ci.Robot.State != "ROBOT_STATE_ACTIVE" {
		t.Fatalf("robot ci: %+v", ci.Robot)
	}
	// The human form shows the key once and says to keep it.
	out := robotsCLI("create", "-name", "reader")
	readerKey := regexp.MustCompile(`pcp_[A-Za-z0-9_-]{43}`).FindString(out)
	if readerKey == "" || !strings.Contains(out, "shown only this once") {
		t.Fatalf("robots create (table) shows no key or no hint:\n%s", out)
	}

	// What the policy makes of the robots, read straight from the token endpoint.
	tok := mustToken(t, pc, "ci", ci.Key, "repository:team/app:pull,push")
	checkStandardClaims(t, tok)
	if tok.claims.Subject != "robot:ci" {
		t.Fatalf("sub = %q, want robot:ci", tok.claims.Subject)
	}
	checkAccess(t, tok, map[string][]string{"repository:team/app": {"pull", "push"}})
	checkAccess(t, mustToken(t, pc, "reader", readerKey, "repository:library/base:pull,push", "repository:team/app:pull"),
		map[string][]string{"repository:library/base": {"pull"}})

	app := reg.Host + "/team/app"
	var tags []string // every image tag the engine holds, removed at the end
	t.Cleanup(func() {
		if len(tags) > 0 {
			_, _ = c.run(t, "", "docker", append([]string{"image", "rm", "--force"}, tags...)...)
		}
	})

	t.Run("DockerLoginPush", func(t *testing.T) {
		if out, err := c.run(t, ci.Key+"\n", "docker", "login", reg.Host, "-u", "ci", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login with the robot key: %v\n%s", err, out)
		}
		// A robot login gets no refresh token: docker keeps the key itself.
		e := robotDockerAuth(t, c, reg.Host)
		if dec, err := base64.StdEncoding.DecodeString(e.Auth); e.IdentityToken != "" || err != nil || string(dec) != "ci:"+ci.Key {
			t.Fatalf("config.json auths.%s = identitytoken %q, auth of %q (%v); want ci and the key", reg.Host, e.IdentityToken, dec, err)
		}
		ref := app + ":v1"
		tags = append(tags, ref)
		robotScratchImage(t, c, ref, "pushed by robot ci")
		out := c.ok(t, "docker", "push", ref)
		m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("docker push printed no digest:\n%s", out)
		}
		if got := c.skopeoDigest(t, ref, "ci:"+ci.Key); got != m[1] {
			t.Fatalf("the registry holds %s as %s, docker pushed %s", ref, got, m[1])
		}
		c.ok(t, "docker", "image", "rm", ref)
		if out := c.ok(t, "docker", "pull", ref); !strings.Contains(out, m[1]) {
			t.Fatalf("docker pull %s did not report the pushed digest %s:\n%s", ref, m[1], out)
		}
		// Another robot's name with ci's key: refused.
		if out, err := c.run(t, ci.Key+"\n", "docker", "login", reg.Host, "-u", "reader", "--password-stdin"); err == nil || !refusedRE.MatchString(out) {
			t.Fatalf("docker login as reader with ci's key: %v, want it refused\n%s", err, out)
		}
	})

	t.Run("CraneSkopeo", func(t *testing.T) {
		cc := newClients(t)
		cc.ok(t, "crane", "auth", "login", reg.Host, "-u", "ci", "-p", ci.Key)
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "pushed by crane as robot ci\n")
		base := reg.Host + "/library/base:v1"
		cc.ok(t, "crane", "push", "--insecure", img.Dir, base)
		if got := strings.TrimSpace(cc.ok(t, "crane", "digest", "--insecure", base)); got != img.ManifestDigest {
			t.Fatalf("crane digest %s = %q, want %s", base, got, img.ManifestDigest)
		}
		// reader pulls library/ with skopeo, and may not push there.
		out := filepath.Join(t.TempDir(), "pulled")
		cc.ok(t, "skopeo", skopeoCopyFrom("docker://"+base, "oci:"+out+":v1", "reader:"+readerKey)...)
		if got := layoutManifestDigest(t, out, "v1"); got != img.ManifestDigest {
			t.Fatalf("skopeo pulled %s as %s, want %s", base, got, img.ManifestDigest)
		}
		cc.refused(t, "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest", "docker://"+reg.Host+"/library/by-reader:v1", "reader:"+readerKey)...)
		cc.refused(t, "skopeo", skopeoCopyFrom("docker://"+base, "oci:"+out+":wrong", "ci:pcp_"+strings.Repeat("A", 43))...)
	})

	t.Run("Revoke", func(t *testing.T) {
		if a := robotTokenStatus(t, pc, "ci", ci.Key); a != http.StatusOK {
			t.Fatalf("ci's key before the revocation: %d", a)
		}
		out := robotsCLI("revoke", "-name", "ci")
		revoked := time.Now()
		if !strings.Contains(out, "revoked robot ci") {
			t.Fatalf("robots revoke:\n%s", out)
		}
		for {
			status := robotTokenStatus(t, pc, "ci", ci.Key)
			if status == http.StatusUnauthorized {
				t.Logf("ci's key refused %s after the revocation", time.Since(revoked).Round(time.Millisecond))
				break
			}
			if time.Since(revoked) > revocationDeadline {
				t.Fatalf("ci's key still gets %d %s after the revocation, want 401 within %s", status, time.Since(revoked), revocationDeadline)
			}
			time.Sleep(revocationPoll)
		}
		// docker still holds the key in config.json: the next push is refused.
		c.refused(t, "docker", "push", app+":v1")
		cc := newClients(t)
		cc.ok(t, "crane", "auth", "login", reg.Host, "-u", "ci", "-p", ci.Key)
		cc.refused(t, "crane", "digest", "--insecure", app+":v1")
		cc.refused(t, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false", "--creds", "ci:"+ci.Key, "docker://"+app+":v1")
		// reader is untouched.
		if a := robotTokenStatus(t, pc, "reader", readerKey); a != http.StatusOK {
			t.Fatalf("reader's key after ci's revocation: %d", a)
		}
	})

	t.Run("Expired", func(t *testing.T) {
		temp := create("-name", "temp", "-group", "admins", "-expires", "3s")
		expires, err := time.Parse(time.RFC3339Nano, temp.Robot.ExpiresAt)
		if err != nil {
			t.Fatalf("expires_at %q: %v", temp.Robot.ExpiresAt, err)
		}
		if a := robotTokenStatus(t, pc, "temp", temp.Key); a != http.StatusOK {
			t.Fatalf("temp's key before it expires: %d", a)
		}
		time.Sleep(time.Until(expires))
		ec := newClients(t)
		if out, err := ec.run(t, temp.Key+"\n", "docker", "login", reg.Host, "-u", "temp", "--password-stdin"); err == nil || !refusedRE.MatchString(out) {
			t.Fatalf("docker login with an expired robot key: %v, want it refused\n%s", err, out)
		}
		ec.refused(t, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false", "--creds", "temp:"+temp.Key, "docker://"+app+":v1")
	})

	var list struct {
		Robots []struct {
			Name       string `json:"name"`
			State      string `json:"state"`
			LastUsedAt string `json:"last_used_at"`
		} `json:"robots"`
	}
	out = robotsCLI("list", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("robots list -o json: %v\n%s", err, out)
	}
	want := map[string]string{"ci": "ROBOT_STATE_REVOKED", "reader": "ROBOT_STATE_ACTIVE", "temp": "ROBOT_STATE_EXPIRED"}
	if len(list.Robots) != len(want) {
		t.Fatalf("robots list: %s", out)
	}
	for _, r := range list.Robots {
		if want[r.Name] != r.State || r.LastUsedAt == "" {
			t.Errorf("robots list: %s is %s, last used %q; want %s and a last use", r.Name, r.State, r.LastUsedAt, want[r.Name])
		}
	}
	if table := robotsCLI("list"); !strings.Contains(table, "revoked") || !strings.Contains(table, "expired") || strings.Contains(table, "pcp_") {
		t.Errorf("robots list (table):\n%s", table)
	}
}

// e2eRobot is `portcullis robots create -o json`.
type e2eRobot struct {
	Robot struct {
		Name      string `json:"name"`
		Subject   string `json:"subject"`
		State     string `json:"state"`
		ExpiresAt string `json:"expires_at"`
	} `json:"robot"`
	Key string `json:"key"`
}

// startRobotsAllInOne runs `portcullis -config FILE -target=all` whose authn chain is the
// suite's htpasswd then a robot backend, with an admin listener; it returns the admin flags of
// the CLI.
func startRobotsAllInOne(t *testing.T) (*portcullis, []string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(robotsAdminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pc := startAllInOneConfig(t, portcullisConfig{
		Admin: app.AdminConfig{TokenFile: tokenFile, Listen: addr},
		Edit:  withRobots(t),
	})
	waitUntil(t, "admin API listening on "+addr, pc.allProcs(), tcpListening(addr))
	return pc, []string{"-addr", addr, "-admin-token-file", tokenFile}
}

// robotTokenStatus is the token endpoint's status for user and key, as docker asks it.
func robotTokenStatus(t *testing.T, pc *portcullis, user, key string) int {
	t.Helper()
	return getToken(t, pc, user, key, url.Values{"service": {service}, "scope": {"repository:team/app:pull"},
		"offline_token": {"true"}, "client_id": {"docker"}}).status
}

// robotScratchImage builds ref FROM scratch with the engine, one file with content.
func robotScratchImage(t *testing.T, c *clients, ref, content string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte(content+" "+time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "docker", "build", "--quiet", "--tag", ref, dir)
}

// robotDockerAuth is auths.<host> of the clients' docker config.json.
func robotDockerAuth(t *testing.T, c *clients, host string) dockerAuthEntry {
	t.Helper()
	data, err := os.ReadFile(dockerConfigFile(c))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]dockerAuthEntry `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	e, ok := cfg.Auths[host]
	if !ok {
		t.Fatalf("config.json has no auths entry for %s", host)
	}
	return e
}

// withRobots adds a robot backend named robots after the suite's htpasswd users.
func withRobots(t testing.TB) func(*app.Config) {
	return func(c *app.Config) {
		c.Authn.Backends = append(c.Authn.Backends, backendSpec(t, "robots", &robot.Config{}))
	}
}
