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
	"github.com/portcullis-dev/portcullis/internal/config"
)

// patsAdminSecret is the admin bearer secret of the personal access token tests.
const patsAdminSecret = "e2e-pats-admin-secret-0123456789abcdef"

// TestPATs_DockerCLI_Registry3 is a person's tool logging in with a personal access token. It
// starts all-in-one Portcullis (`portcullis -config FILE`) with the suite's htpasswd users
// (alice in developers, admin in admins), the shipped default policy (a user may push under
// "<subject>/"), sso.pat.enabled and the admin gRPC API on loopback; the CNCF distribution
// registry 3.1.2 trusting its tokens; and the real clients: the portcullis CLI (`pats
// create|list|revoke`) and the docker CLI with this machine's engine. Then:
//
//   - `portcullis pats create -owner alice` makes ci, narrowed to repository:alice/*:pull,push,
//     and puller, narrowed to repository:alice/*:pull; the secret is printed once;
//   - docker login -u alice with ci (config.json keeps the token: no refresh token); docker push
//     alice/app works (inside the narrowing); alice/team/app is refused though the policy
//     grants alice all of alice/ ("*" stays in one path component), and admin/app is refused
//     by the policy;
//   - docker login with puller: pull works, push is refused by the narrowing;
//   - docker login -u admin with alice's token → refused; at the token endpoint: a wrong
//     prefix, a truncated token, admin's token under alice's name, an expired token and a
//     1 MB password are all refused, none with a 5xx;
//   - `portcullis pats revoke`: docker (with the token in config.json) is refused.
func TestPATs_DockerCLI_Registry3(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	pc, adminArgs := startPATsAllInOne(t)
	reg := startRegistry(t, registry3, pc)
	patsCLI := func(args ...string) string {
		t.Helper()
		args = append(append([]string{"pats"}, args...), adminArgs...)
		out, err := runPortcullis(t, args...)
		if err != nil {
			t.Fatalf("portcullis %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	type created struct {
		PAT struct {
			ID, Owner, Name string
			Scopes          []string
		} `json:"personal_access_token"`
		Secret string `json:"secret"`
	}
	create := func(args ...string) created {
		t.Helper()
		var p created
		out := patsCLI(append([]string{"create", "-o", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &p); err != nil || !strings.HasPrefix(p.Secret, "pat_") {
			t.Fatalf("pats create -o json: %v\n%s", err, out)
		}
		return p
	}
	ci := create("-owner", "alice", "-name", "ci", "-expires", "24h", "-scope", "repository:alice/*:pull,push")
	puller := create("-owner", "alice", "-name", "puller", "-expires", "24h", "-scope", "repository:alice/*:pull")
	adminTok := create("-owner", "admin", "-name", "adm", "-expires", "24h")
	// The human form shows the secret once and says to keep it.
	if out := patsCLI("create", "-owner", "alice", "-name", "shown", "-expires", "1h"); !regexp.MustCompile(`pat_[A-Za-z0-9_-]{43}`).MatchString(out) ||
		!strings.Contains(out, "shown only this once") {
		t.Fatalf("pats create (table) shows no token or no hint:\n%s", out)
	}

	// What the policy and the narrowing make of the tokens, read straight from the token endpoint.
	tok := mustToken(t, pc, "alice", ci.Secret, "repository:alice/app:pull,push", "repository:alice/team/app:pull,push")
	checkStandardClaims(t, tok)
	if tok.claims.Subject != "alice" {
		t.Fatalf("sub = %q, want alice", tok.claims.Subject)
	}
	checkAccess(t, tok, map[string][]string{"repository:alice/app": {"pull", "push"}})
	checkAccess(t, mustToken(t, pc, "alice", puller.Secret, "repository:alice/app:pull,push"), map[string][]string{"repository:alice/app": {"pull"}})

	var tags []string
	t.Cleanup(func() {
		if len(tags) > 0 {
			_, _ = c.run(t, "", "docker", append([]string{"image", "rm", "--force"}, tags...)...)
		}
	})
	login := func(user, secret string) (string, error) {
		t.Helper()
		return c.run(t, secret+"\n", "docker", "login", reg.Host, "-u", user, "--password-stdin")
	}
	app := reg.Host + "/alice/app:v1"

	t.Run("PushWithinTheNarrowing", func(t *testing.T) {
		if out, err := login("alice", ci.Secret); err != nil || !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login with the token: %v\n%s", err, out)
		}
		// A token's login gets no refresh token: docker keeps the token itself.
		e := robotDockerAuth(t, c, reg.Host)
		if dec, err := base64.StdEncoding.DecodeString(e.Auth); e.IdentityToken != "" || err != nil || string(dec) != "alice:"+ci.Secret {
			t.Fatalf("config.json auths.%s = identitytoken %q, auth of %q (%v); want alice and the token", reg.Host, e.IdentityToken, dec, err)
		}
		tags = append(tags, app)
		robotScratchImage(t, c, app, "pushed with alice's token ci")
		c.ok(t, "docker", "push", app)
		// Outside the narrowing, though the policy would grant it: "*" is one path component.
		deep := reg.Host + "/alice/team/app:v1"
		tags = append(tags, deep)
		c.ok(t, "docker", "tag", app, deep)
		c.refused(t, "docker", "push", deep)
		// Outside the policy: the narrowing adds nothing.
		other := reg.Host + "/admin/app:v1"
		tags = append(tags, other)
		c.ok(t, "docker", "tag", app, other)
		c.refused(t, "docker", "push", other)
	})

	t.Run("PullOnlyToken", func(t *testing.T) {
		if out, err := login("alice", puller.Secret); err != nil || !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login with puller: %v\n%s", err, out)
		}
		c.ok(t, "docker", "image", "rm", app)
		c.ok(t, "docker", "pull", app)
		v2 := reg.Host + "/alice/app:v2"
		tags = append(tags, v2)
		c.ok(t, "docker", "tag", app, v2)
		c.refused(t, "docker", "push", v2)
	})

	t.Run("Attacks", func(t *testing.T) {
		// docker login under another user name with alice's token.
		if out, err := login("admin", ci.Secret); err == nil || !refusedRE.MatchString(out) {
			t.Fatalf("docker login -u admin with alice's token: %v\n%s", err, out)
		}
		expiring := create("-owner", "alice", "-name", "brief", "-expires", "2s")
		for name, cr := range map[string][2]string{
			"another user's name":        {"admin", ci.Secret},
			"another user's token":       {"alice", adminTok.Secret},
			"the wrong prefix":           {"alice", "pcp_" + ci.Secret[4:]},
			"no prefix":                  {"alice", ci.Secret[4:]},
			"truncated":                  {"alice", ci.Secret[:len(ci.Secret)-3]},
			"one character changed":      {"alice", ci.Secret[:10] + flip(ci.Secret[10]) + ci.Secret[11:]},
			"the owner's password first": {"alice", "alice" + ci.Secret},
		} {
			if st := patTokenStatus(t, pc, cr[0], cr[1]); st != http.StatusUnauthorized {
				t.Errorf("%s: status %d, want 401", name, st)
			}
		}
		// A 1 MB password: refused, by the gateway's header limit or the backend, never a 5xx.
		if st := patTokenStatus(t, pc, "alice", "pat_"+strings.Repeat("A", 1<<20)); st != http.StatusUnauthorized && st != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("1 MB password: status %d, want 401 or 431", st)
		}
		waitUntil(t, "the 2s token refused once expired", pc.allProcs(), func() error {
			if st := patTokenStatus(t, pc, "alice", expiring.Secret); st != http.StatusUnauthorized {
				return fmt.Errorf("status %d", st)
			}
			return nil
		})
	})

	t.Run("Revoke", func(t *testing.T) {
		if out, err := login("alice", ci.Secret); err != nil {
			t.Fatalf("docker login: %v\n%s", err, out)
		}
		list := patsCLI("list", "-owner", "alice")
		if !strings.Contains(list, ci.PAT.ID) || strings.Contains(list, ci.Secret) {
			t.Fatalf("pats list:\n%s", list)
		}
		if out := patsCLI("revoke", "-id", ci.PAT.ID); !strings.Contains(out, "revoked alice's token ci") {
			t.Fatalf("pats revoke:\n%s", out)
		}
		waitUntil(t, "the revoked token refused", pc.allProcs(), func() error {
			if st := patTokenStatus(t, pc, "alice", ci.Secret); st != http.StatusUnauthorized {
				return fmt.Errorf("status %d", st)
			}
			return nil
		})
		// docker still holds the token in config.json: the registry's challenge leads to a refusal.
		v3 := reg.Host + "/alice/app:v3"
		tags = append(tags, v3)
		c.ok(t, "docker", "tag", app, v3)
		c.refused(t, "docker", "push", v3)
		if out, err := login("alice", ci.Secret); err == nil || !refusedRE.MatchString(out) {
			t.Fatalf("docker login with the revoked token: %v\n%s", err, out)
		}
	})

	t.Run("LogHoldsNoSecret", func(t *testing.T) {
		data, err := os.ReadFile(pc.Procs["all"].log)
		if err != nil {
			t.Fatal(err)
		}
		log := string(data)
		for _, s := range []string{ci.Secret, puller.Secret, adminTok.Secret, ci.Secret[4:20]} {
			if strings.Contains(log, s) {
				t.Errorf("the server log holds a token (or part of one)")
			}
		}
		// The audit trail is there, by id and name.
		for _, want := range []string{"personal access token created", "personal access token revoked",
			"personal access token login refused", ci.PAT.ID} {
			if !strings.Contains(log, want) {
				t.Errorf("the server log lacks %q", want)
			}
		}
	})
}

// flip is another base64url character than b.
func flip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// patTokenStatus is the token endpoint's status for user and secret, as docker asks it.
func patTokenStatus(t *testing.T, pc *portcullis, user, secret string) int {
	t.Helper()
	return getToken(t, pc, user, secret, url.Values{"service": {service}, "scope": {"repository:alice/app:pull"},
		"offline_token": {"true"}, "client_id": {"docker"}}).status
}

// startPATsAllInOne runs `portcullis -config FILE -target=all` with the suite's htpasswd users,
// personal access tokens on and an admin listener; it returns the admin flags of the CLI.
func startPATsAllInOne(t *testing.T) (*portcullis, []string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(patsAdminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pc, _ := writePortcullisConfig(t, portcullisConfig{
		Admin: app.AdminConfig{TokenFile: tokenFile, Listen: addr},
		Edit: func(c *app.Config) {
			c.SSO.PAT.Enabled = true
			c.SSO.PAT.MaxTTL = config.Duration(720 * time.Hour)
		},
	})
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	pc.waitReady(t)
	waitUntil(t, "admin API listening on "+addr, pc.allProcs(), tcpListening(addr))
	return pc, []string{"-addr", addr, "-admin-token-file", tokenFile}
}
