//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/browsertest"
	"github.com/portcullis-dev/portcullis/internal/testenv/hydratest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

// The people of the sign-in suite. At the IdP a person's subject is an opaque id; Portcullis
// names them by preferred_username (sso.subject), so a mix-up of the two shows.
const (
	aliceIdP = "idp-1001-alice"
	bobIdP   = "idp-1002-bob"
	// carol has a password (htpasswd) and no IdP account.
	carolPassword = "carol-password-7f3a"
	// signinLockAfter is authn.lockout.max_failures_per_account_address of the suite.
	signinLockAfter = 5
	// revokeDeadline bounds the wait for a revocation, a disabled account or a back-channel
	// logout to reach the registry's clients (the login cache, revalidate_interval, Hydra's
	// asynchronous logout): generous, and never a timed assertion.
	revokeDeadline = 60 * time.Second
)

// signinPolicy lets people in the IdP group dev push and pull their own namespace, when they
// come through the IdP (an SSO session, "sso") or one of their personal access tokens ("pat"):
// groups from the IdP's claims and the backend names reach the policy.
const signinPolicy = `package portcullis.authz

allowed contains ["repository", s.class, s.name, action] if {
	input.identity.backend in {"sso", "pat"}
	"dev" in input.identity.groups
	some s in input.scopes
	s.type == "repository"
	startswith(s.name, concat("", [input.identity.subject, "/"]))
	some action in s.actions
	action in {"pull", "push"}
}
`

// signinEnv is what the sign-in suite's steps share: the peers are expensive to start.
type signinEnv struct {
	pc      *portcullis
	reg     *registry
	hydra   *hydratest.Server
	browser *browsertest.Browser
}

// TestSignIn_Hydra_Chromium_DockerCLI_Registry3 is a person signing in with the company IdP,
// end to end against the real things. It starts ORY Hydra v2.3.0 (internal/testenv/hydratest,
// the suite acting as its login and consent app) with alice and bob in the group dev;
// all-in-one Portcullis (`portcullis -config FILE`) with sso: pointing at Hydra (client
// secret and encryption key from files, revalidate_interval 3s), sso.pat.enabled, an
// htpasswd user carol, the lockout after 5 failures and a policy letting group dev push
// their own namespace; distribution 3.1.2; Debian's chromium, headless through chromedp
// (internal/testenv/browsertest, a screenshot of every page in the test's artifacts); and the
// real clients: `portcullis login`/`logout`, the docker CLI with this machine's engine,
// crane and skopeo. In order:
//
//   - DeviceLogin: `portcullis login -no-browser` prints a URL and a user code; the browser
//     opens it, is sent to our sign-in page, signs in at Hydra, comes back to the device
//     page with the code filled in, sees who asked (client, address, registry) and approves;
//     the CLI says Login Succeeded and docker's config.json holds an identity token;
//   - Clients: docker push and pull, crane and skopeo work with that config;
//   - Deny: a code the person did not start is denied on the page; that CLI gets nothing;
//   - PersonalAccessToken: the account page makes a token; `docker login -u alice -p pat_…`
//     and docker push work; revoked on the page, the push is refused;
//   - RevokeSession: the CLI's session revoked on the account page, docker pull, crane and
//     skopeo are refused;
//   - Logout: after a fresh `portcullis login`, `portcullis logout` ends the session at the
//     server: its identity token, put back in a config, is refused;
//   - DisabledAtIdP: alice disabled at Hydra, a fresh session's pushes are refused within
//     revalidate_interval, and her browser sign-in has ended too;
//   - BackChannelLogout: bob signs in (a new Hydra login), Hydra ends that login session and
//     sends a logout token: bob's session is refused;
//   - Password: carol signs in to the same pages with her password;
//   - WrongUserCodes: guessed codes on the device page run into the per-address limit (429);
//   - Lockout: wrong passwords lock carol out ("Too many attempts", 429), the right one
//     included.
func TestSignIn_Hydra_Chromium_DockerCLI_Registry3(t *testing.T) {
	t.Parallel()
	e := startSignIn(t)
	c := newClients(t) // the person's terminal: `portcullis login` and the clients
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	app := e.reg.Host + "/alice/app:v1"
	var images []string
	t.Cleanup(func() {
		if len(images) > 0 {
			_, _ = c.run(t, "", "docker", append([]string{"image", "rm", "--force"}, images...)...)
		}
	})
	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"DeviceLogin", func(t *testing.T) {
			login := startPortcullisLogin(t, c, e.reg.Host)
			e.approve(t, login, true)
			login.succeeded(t)
			// An identity token (pcr_) and no password; beside it the user name, as docker
			// writes it: skopeo and podman skip an entry without one.
			if entry := dockerAuth(t, c, e.reg.Host); entry.Auth == "" {
				t.Fatalf("config.json's entry for %s has no auth (the user name): containers/image would not use it", e.reg.Host)
			}
		}},
		{"Clients", func(t *testing.T) {
			images = append(images, app)
			buildScratchImage(t, c, app, "pushed after portcullis login")
			out := c.ok(t, "docker", "push", app)
			pushed := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
			if pushed == nil {
				t.Fatalf("docker push printed no digest:\n%s", out)
			}
			c.ok(t, "docker", "image", "rm", app)
			if out := c.ok(t, "docker", "pull", app); !strings.Contains(out, pushed[1]) {
				t.Fatalf("docker pull did not report the pushed digest %s:\n%s", pushed[1], out)
			}
			// crane reads DOCKER_CONFIG, skopeo the same file: both refresh with its identity token.
			if got := strings.TrimSpace(c.ok(t, "crane", "digest", "--insecure", app)); got != pushed[1] {
				t.Fatalf("crane digest %s = %q, want %s", app, got, pushed[1])
			}
			c.ok(t, "crane", "copy", "--insecure", app, e.reg.Host+"/alice/copied:v1")
			if got := e.skopeoDigest(t, c, app); got != pushed[1] {
				t.Fatalf("skopeo inspect %s: digest %s, want %s", app, got, pushed[1])
			}
			// The policy holds: bob's namespace is not alice's.
			c.refused(t, "crane", "copy", "--insecure", app, e.reg.Host+"/bob/app:v1")
		}},
		{"Deny", func(t *testing.T) {
			// Someone else's code (RFC 8628 §5.4): the person denies it, and the device that
			// asked gets nothing.
			stranger := newClients(t)
			login := startPortcullisLogin(t, stranger, e.reg.Host)
			b := e.browser.For(t)
			b.Navigate(login.completeURI())
			b.ClickButton("Continue")
			b.MustSee(login.code, loginClientID)
			b.ClickButton("Deny")
			b.MustSee("You denied the request")
			b.Screenshot(t, "device denied")
			login.failed(t, "the sign-in was denied")
			if _, err := os.Stat(dockerConfigFile(stranger)); err == nil {
				if data, _ := os.ReadFile(dockerConfigFile(stranger)); strings.Contains(string(data), "pcr_") {
					t.Fatalf("a denied login wrote a session:\n%s", data)
				}
			}
		}},
		{"PersonalAccessToken", func(t *testing.T) {
			b := e.browser.For(t)
			b.Navigate(e.pc.URL + "/")
			b.MustSee("alice", "Registry sessions", "Personal access tokens", "127.0.0.1")
			b.Screenshot(t, "account")
			b.Fill("Name", "ci-e2e")
			b.Fill("Expires in", "1 day")
			b.ClickButton("Create token")
			secret := b.Find(regexp.MustCompile(`pat_[A-Za-z0-9_-]{43}`))
			b.MustSee("ci-e2e", "docker login -u alice")
			b.Screenshot(t, "token created")

			ci := newClients(t) // a CI server that holds only the token
			if out, err := ci.run(t, "", "docker", "login", "-u", "alice", "-p", secret, e.reg.Host); err != nil || !strings.Contains(out, "Login Succeeded") {
				t.Fatalf("docker login -u alice -p pat_…: %v\n%s", err, out)
			}
			patRef := e.reg.Host + "/alice/pat:v1"
			images = append(images, patRef)
			buildScratchImage(t, ci, patRef, "pushed with a personal access token")
			ci.ok(t, "docker", "push", patRef)

			b.Navigate(e.pc.URL + "/")
			b.MustSee("ci-e2e")
			b.Screenshot(t, "account with the token")
			b.ClickButtonNear("ci-e2e", "Revoke")
			b.Screenshot(t, "token revoked")
			if n := b.Count(`form[action="/pats/revoke"]`); n != 0 {
				t.Fatalf("the account page lists %d tokens after the revoke:\n%s", n, b.PageText())
			}
			// Revocation reaches every replica within a second (the login cache).
			eventually(t, "the revoked token refused", func() error {
				if s := patTokenStatus(t, e.pc, "alice", secret); s != http.StatusUnauthorized {
					return fmt.Errorf("token endpoint: %d", s)
				}
				return nil
			})
			ci.refused(t, "docker", "push", patRef)
		}},
		{"RevokeSession", func(t *testing.T) {
			b := e.browser.For(t)
			b.Navigate(e.pc.URL + "/")
			if n := b.Count(`form[action="/sessions/revoke"]`); n != 1 {
				t.Fatalf("the account page lists %d sessions, want the one of portcullis login:\n%s", n, b.PageText())
			}
			b.MustSee(loginClientID, service, "127.0.0.1")
			b.Screenshot(t, "account with the session")
			rt := dockerAuth(t, c, e.reg.Host).IdentityToken
			refreshWorks(t, e.pc, rt)
			b.Click(`form[action="/sessions/revoke"] button`)
			b.Screenshot(t, "session revoked")
			if n := b.Count(`form[action="/sessions/revoke"]`); n != 0 {
				t.Fatalf("the account page lists %d sessions after the revoke:\n%s", n, b.PageText())
			}
			eventually(t, "the revoked session refused", func() error { return refreshRefused(t, e.pc, rt) })
			c.ok(t, "docker", "image", "rm", app)
			c.failsWith(t, revokedRE, "docker", "pull", app)
			c.failsWith(t, revokedRE, "crane", "digest", "--insecure", app)
			c.failsWith(t, skopeoRevokedRE, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false",
				"--authfile", dockerConfigFile(c), "docker://"+app)
		}},
		{"Logout", func(t *testing.T) {
			login := startPortcullisLogin(t, c, e.reg.Host)
			e.approve(t, login, false) // the browser is still signed in: no IdP round trip
			login.succeeded(t)
			rt := dockerAuth(t, c, e.reg.Host).IdentityToken
			refreshWorks(t, e.pc, rt)
			if got := strings.TrimSpace(c.ok(t, "crane", "digest", "--insecure", e.reg.Host+"/alice/copied:v1")); !strings.HasPrefix(got, "sha256:") {
				t.Fatalf("crane digest after the second login: %q", got)
			}
			saved, err := os.ReadFile(dockerConfigFile(c))
			if err != nil {
				t.Fatal(err)
			}
			if out, err := c.portcullis(t, "logout", e.reg.Host); err != nil || !strings.Contains(out, "session ended at ") {
				t.Fatalf("portcullis logout: %v\n%s", err, out)
			}
			// Ended at the server, not only forgotten here: the old config is refused.
			if err := refreshRefused(t, e.pc, rt); err != nil {
				t.Fatalf("after portcullis logout: %v", err)
			}
			old := newClients(t)
			if err := os.WriteFile(dockerConfigFile(old), saved, 0o600); err != nil {
				t.Fatal(err)
			}
			old.failsWith(t, revokedRE, "crane", "digest", "--insecure", e.reg.Host+"/alice/copied:v1")
		}},
		{"DisabledAtIdP", func(t *testing.T) {
			login := startPortcullisLogin(t, c, e.reg.Host)
			e.approve(t, login, false)
			login.succeeded(t)
			ref := e.reg.Host + "/alice/copied:v1"
			c.ok(t, "crane", "digest", "--insecure", ref)
			e.hydra.DisableUser(t, aliceIdP)
			// Nothing is done in Portcullis: the next revalidation at Hydra (3s) ends it.
			eventually(t, "alice's session refused after she was disabled at the IdP", func() error {
				out, err := c.run(t, "", "crane", "digest", "--insecure", ref)
				if err == nil {
					return fmt.Errorf("crane digest still works")
				}
				if !revokedRE.MatchString(out) {
					return testutil.Abort(fmt.Errorf("crane digest failed, but not refused: %s", out))
				}
				return nil
			})
			// Her account ended with it: the browser's sign-in too.
			b := e.browser.For(t)
			if p := b.Navigate(e.pc.URL + "/"); !onPath(p.URL, "/signin") {
				t.Fatalf("after alice was disabled at the IdP the account page is still open (%s):\n%s", p.URL, b.PageText())
			}
			b.Screenshot(t, "signed out: disabled at the IdP")
			images = append(images, e.reg.Host+"/alice/after-disable:v1")
			buildScratchImage(t, c, e.reg.Host+"/alice/after-disable:v1", "pushed by a disabled account")
			c.failsWith(t, revokedRE, "docker", "push", e.reg.Host+"/alice/after-disable:v1")
		}},
		{"BackChannelLogout", func(t *testing.T) {
			b := e.browser.For(t)
			e.signOut(t)
			e.hydra.SignInAs(bobIdP)
			bobTerm := newClients(t)
			login := startPortcullisLogin(t, bobTerm, e.reg.Host)
			e.approve(t, login, true)
			login.succeeded(t)
			b.Navigate(e.pc.URL + "/")
			b.MustSee("bob")
			b.Screenshot(t, "bob's account")
			ref := e.reg.Host + "/bob/app:v1"
			img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "bob's image\n")
			bobTerm.ok(t, "crane", "push", "--insecure", img.Dir, ref)

			sids := e.hydra.SessionIDs(bobIdP)
			if len(sids) == 0 {
				t.Fatal("hydra recorded no login session for bob")
			}
			rt := dockerConfigEntry(t, bobTerm, e.reg.Host).IdentityToken // dockerAuth expects alice
			refreshWorks(t, e.pc, rt)
			e.hydra.BackChannelLogout(t, sids[len(sids)-1])
			eventually(t, "bob's session refused after Hydra's back-channel logout", func() error { return refreshRefused(t, e.pc, rt) })
			bobTerm.failsWith(t, revokedRE, "crane", "digest", "--insecure", ref)
			// The browser's session came from the same IdP login: it ended too.
			if p := b.Navigate(e.pc.URL + "/"); !onPath(p.URL, "/signin") {
				t.Fatalf("after the back-channel logout the account page is still open (%s):\n%s", p.URL, b.PageText())
			}
			b.Screenshot(t, "signed out by the IdP")
		}},
		{"Password", func(t *testing.T) {
			b := e.browser.For(t)
			e.signOut(t)
			b.Navigate(e.pc.URL + "/signin")
			b.Fill("Username", "carol")
			b.Fill("Password", carolPassword)
			b.Screenshot(t, "password sign-in")
			if p := b.ClickButton("Sign in"); p.URL != e.pc.URL+"/" {
				t.Fatalf("carol's sign-in ended on %s (%d):\n%s", p.URL, p.Status, b.PageText())
			}
			b.MustSee("carol", "Personal access tokens")
			b.Screenshot(t, "carol's account")
		}},
		{"WrongUserCodes", func(t *testing.T) {
			// Guessing codes from one address runs into the limit (10 per 10 minutes). Last of
			// the device steps: the browser's address is everyone's here, 127.0.0.1.
			b := e.browser.For(t)
			var limited browsertest.Page
			for i := range 15 {
				b.Navigate(e.pc.URL + "/device")
				b.Fill("Code", fmt.Sprintf("BCDF-GH%c%c", 'J'+i%4, 'K'+i/4))
				p := b.ClickButton("Continue")
				if p.Status == http.StatusTooManyRequests {
					limited = p
					break
				}
				if p.Status != http.StatusNotFound {
					t.Fatalf("a wrong code answered %d:\n%s", p.Status, b.PageText())
				}
				if i == 0 {
					b.MustSee("That code is not valid or has expired.")
					b.Screenshot(t, "wrong code")
				}
			}
			if limited.Status != http.StatusTooManyRequests {
				t.Fatalf("15 wrong codes from one address, and still no limit:\n%s", b.PageText())
			}
			b.MustSee("Too many attempts")
			b.Screenshot(t, "too many codes")
		}},
		{"Lockout", func(t *testing.T) {
			b := e.browser.For(t)
			e.signOut(t)
			var locked browsertest.Page
			for i := range signinLockAfter + 2 {
				b.Navigate(e.pc.URL + "/signin")
				b.Fill("Username", "carol")
				b.Fill("Password", fmt.Sprintf("wrong-%d", i))
				p := b.ClickButton("Sign in")
				if p.Status == http.StatusTooManyRequests {
					locked = p
					break
				}
				if p.Status == http.StatusOK && p.URL == e.pc.URL+"/" {
					t.Fatalf("a wrong password signed carol in")
				}
				if i == 0 {
					b.Screenshot(t, "wrong password")
				}
			}
			if locked.Status != http.StatusTooManyRequests {
				t.Fatalf("after %d wrong passwords the sign-in page still answers %d:\n%s", signinLockAfter+2, locked.Status, b.PageText())
			}
			b.MustSee("Too many attempts")
			b.Screenshot(t, "too many attempts")
			// Locked means locked: the right password waits too.
			b.Navigate(e.pc.URL + "/signin")
			b.Fill("Username", "carol")
			b.Fill("Password", carolPassword)
			if p := b.ClickButton("Sign in"); p.Status != http.StatusTooManyRequests {
				t.Fatalf("the right password while locked: %d on %s", p.Status, p.URL)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			return // each step builds on the ones before
		}
	}
	// The pages never echoed a secret into the browser's console, and no page needed an
	// inline script or style the Content-Security-Policy had to block.
	for _, m := range e.browser.Console() {
		if strings.Contains(m, "Content Security Policy") {
			t.Errorf("the browser reported a CSP violation: %s", m)
		}
	}
}

// startSignIn starts Hydra, Portcullis with sso: pointing at it, the registry and chromium.
func startSignIn(t *testing.T) *signinEnv {
	t.Helper()
	hydra := hydratest.Start(t)
	hydra.AddUser(hydratest.User{Subject: aliceIdP, Claims: map[string]any{
		"preferred_username": "alice", "email": "alice@example.com", "email_verified": true, "groups": []string{"dev"},
	}})
	hydra.AddUser(hydratest.User{Subject: bobIdP, Claims: map[string]any{
		"preferred_username": "bob", "email": "bob@example.com", "email_verified": true, "groups": []string{"dev"},
	}})

	pc, cfg, _ := newPortcullisConfig(t, portcullisConfig{})
	secrets := t.TempDir()
	client := hydra.CreateClient(t, hydratest.ClientConfig{
		ID:                   "portcullis",
		RedirectURIs:         []string{pc.URL + "/signin/callback"},
		BackChannelLogoutURI: pc.URL + "/backchannel-logout",
	})
	secretFile := filepath.Join(secrets, "sso-client-secret")
	if err := os.WriteFile(secretFile, []byte(client.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(secrets, "sso-key")
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	policyDir := filepath.Join(pc.Dir, "policy")
	if err := os.MkdirAll(policyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(policyDir, "policy.rego"), []byte(signinPolicy), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg.SSO.Issuer = hydra.Issuer
	cfg.SSO.ClientID = client.ID
	cfg.SSO.ClientSecretFile = secretFile
	cfg.SSO.Scopes = []string{"openid", "email", "profile", "groups", "offline_access"}
	cfg.SSO.Subject = "preferred_username"
	cfg.SSO.Groups = []string{"groups"}
	cfg.SSO.Claims = map[string]oidc.Strings{"email_verified": {"true"}}
	cfg.SSO.EncryptionKeyFile = keyFile
	cfg.SSO.RevalidateInterval = config.Duration(3 * time.Second)
	cfg.SSO.PAT.Enabled = true
	cfg.SSO.PAT.MaxTTL = config.Duration(30 * 24 * time.Hour)
	cfg.Authn.Backends = []backend.Spec{backendSpec(t, "users", &htpasswd.Config{Path: writeCarol(t, pc.Dir)})}
	cfg.Authn.Lockout.MaxFailuresPerAccountAddress = signinLockAfter
	cfg.Authn.Lockout.BaseDelay = config.Duration(time.Minute)
	cfg.Authn.Lockout.MaxDelay = config.Duration(2 * time.Minute)
	cfg.Authz.OPA = opa.Config{Dir: policyDir}
	pc.Config = writeConfig(t, pc.Dir, cfg)
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	pc.waitReady(t)

	return &signinEnv{pc: pc, reg: startRegistry(t, registry3, pc), hydra: hydra, browser: browsertest.Start(t)}
}

// writeCarol writes an htpasswd file with carol alone: the IdP's people have no password.
func writeCarol(t *testing.T, dir string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(carolPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(path, []byte("carol:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// approve does in the browser what the person does with the code `portcullis login` printed:
// open the verification URI (the one with the code), sign in at the IdP when our sign-in page
// asks (viaIdP says it must), continue with the code filled in, check that the page names
// who asked, and approve. Every page gets a screenshot.
func (e *signinEnv) approve(t *testing.T, l *portcullisLogin, viaIdP bool) {
	t.Helper()
	b := e.browser.For(t)
	p := b.Navigate(l.completeURI())
	if onPath(p.URL, "/signin") != viaIdP {
		t.Fatalf("the verification URI led to %s; want the sign-in page: %v", p.URL, viaIdP)
	}
	if viaIdP {
		b.MustSee("Sign in with")
		b.Screenshot(t, "sign-in")
		logins := e.hydra.Logins(aliceIdP) + e.hydra.Logins(bobIdP)
		p = b.ClickButton("Sign in with")
		if e.hydra.Logins(aliceIdP)+e.hydra.Logins(bobIdP) == logins {
			t.Fatalf("the sign-in did not go through Hydra's login (ended on %s)", p.URL)
		}
	}
	if !onPath(p.URL, "/device") {
		t.Fatalf("after the sign-in the browser is on %s (%d), want the device page:\n%s", p.URL, p.Status, b.PageText())
	}
	// The entry page, the code already filled in from the URI.
	if b.Count(`input[name="user_code"]:not([type="hidden"])`) > 0 {
		if got := b.Value(`input[name="user_code"]:not([type="hidden"])`); normCode(got) != normCode(l.code) {
			t.Fatalf("the device page holds the code %q, want %q", got, l.code)
		}
		b.Screenshot(t, "device entry")
		b.ClickButton("Continue")
	}
	// RFC 8628 §5.4: the person sees who asked before approving.
	b.MustSee(l.code, loginClientID, "127.0.0.1", service, "Approve", "Deny")
	b.Screenshot(t, "device confirm")
	b.ClickButton("Approve")
	b.MustSee("approved")
	b.Screenshot(t, "device approved")
}

// signOut ends the browser's session at Portcullis when it has one.
func (e *signinEnv) signOut(t *testing.T) {
	t.Helper()
	b := e.browser.For(t)
	b.Navigate(e.pc.URL + "/")
	if b.Count(`form[action="/signout"]`) > 0 {
		b.ClickButton("Sign out")
		b.Screenshot(t, "signed out")
	}
}

func (e *signinEnv) skopeoDigest(t *testing.T, c *clients, ref string) string {
	t.Helper()
	out := c.ok(t, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false", "--authfile", dockerConfigFile(c), "docker://"+ref)
	m := regexp.MustCompile(`"Digest":\s*"(sha256:[0-9a-f]{64})"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("skopeo inspect printed no digest:\n%s", out)
	}
	return m[1]
}

func onPath(rawURL, path string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Path == path
}

func normCode(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(s))
}

// refreshRefused says whether a refresh with rt is refused (400 invalid_grant).
func refreshRefused(t *testing.T, pc *portcullis, rt string) error {
	t.Helper()
	a := refreshPOST(t, pc, rt, "e2e")
	if a.status != http.StatusBadRequest {
		return fmt.Errorf("refresh: %d %s", a.status, a.body)
	}
	return nil
}

// refreshWorks checks that a refresh with rt works: a later refusal is then the test's doing.
func refreshWorks(t *testing.T, pc *portcullis, rt string) {
	t.Helper()
	if a := refreshPOST(t, pc, rt, "e2e"); a.status != http.StatusOK {
		t.Fatalf("refresh with the live session: %d %s", a.status, a.body)
	}
}

// eventually polls cond every 500ms for at most revokeDeadline.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	took := testutil.WaitFor(t, revokeDeadline, 500*time.Millisecond, what, cond)
	t.Logf("%s after %s", what, took.Round(10*time.Millisecond))
}

// portcullisLogin is a `portcullis login` running in the background, as in a terminal.
type portcullisLogin struct {
	uri, code string
	out       *testutil.Buffer
	done      chan struct{} // closed when the process has exited; err is set then
	err       error
}

// loginClientID is the client_id `portcullis login` starts its device flows with.
const loginClientID = "portcullis-cli"

// loginPromptRE is the CLI's prompt on stderr: the verification URI and the user code.
var loginPromptRE = regexp.MustCompile(`open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})`)

// startPortcullisLogin runs `portcullis login -no-browser -docker-config DIR HOST` with c's
// environment and waits for it to print the code.
func startPortcullisLogin(t *testing.T, c *clients, host string) *portcullisLogin {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	dir := filepath.Dir(dockerConfigFile(c))
	args := []string{"login", "-no-browser", "-docker-config", dir, host}
	cmd := exec.CommandContext(ctx, portcullisBin(t), args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.WaitDelay = stopTimeout
	l := &portcullisLogin{out: &testutil.Buffer{}, done: make(chan struct{})}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = l.out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("portcullis login: %v", err)
	}
	prompt := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(l.out, line)
			if m := loginPromptRE.FindStringSubmatch(line); m != nil {
				select {
				case prompt <- m:
				default:
				}
			}
		}
		_, _ = io.Copy(l.out, stderr)
		l.err = cmd.Wait()
		cancel()
		close(l.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	select {
	case m := <-prompt:
		l.uri, l.code = m[1], m[2]
	case <-l.done:
		t.Fatalf("portcullis %s exited before printing a code (%v):\n%s", strings.Join(args, " "), l.err, l.out)
	case <-time.After(waitTimeout):
		t.Fatalf("portcullis %s printed no code in %s:\n%s", strings.Join(args, " "), waitTimeout, l.out)
	}
	t.Logf("$ portcullis %s  → %s, code %s", strings.Join(args, " "), l.uri, l.code)
	return l
}

// completeURI is the verification URI with the code in it (RFC 8628 verification_uri_complete).
func (l *portcullisLogin) completeURI() string {
	u, err := url.Parse(l.uri)
	if err != nil || u.Query().Get("user_code") != "" {
		return l.uri
	}
	q := u.Query()
	q.Set("user_code", l.code)
	u.RawQuery = q.Encode()
	return u.String()
}

// succeeded waits for the CLI to finish and checks it said so.
func (l *portcullisLogin) succeeded(t *testing.T) {
	t.Helper()
	select {
	case <-l.done:
		if l.err != nil || !strings.Contains(l.out.String(), "Login Succeeded") {
			t.Fatalf("portcullis login: %v\n%s", l.err, l.out)
		}
		t.Logf("portcullis login said:\n%s", indent(l.out.String()))
	case <-time.After(waitTimeout):
		t.Fatalf("portcullis login did not finish %s after the approval:\n%s", waitTimeout, l.out)
	}
}

// failed waits for the CLI to end with an error saying want, and nothing saved.
func (l *portcullisLogin) failed(t *testing.T, want string) {
	t.Helper()
	select {
	case <-l.done:
		if l.err == nil || !strings.Contains(l.out.String(), want) || strings.Contains(l.out.String(), "Login Succeeded") {
			t.Fatalf("portcullis login: %v, want it to fail saying %q\n%s", l.err, want, l.out)
		}
		t.Logf("portcullis login said:\n%s", indent(l.out.String()))
	case <-time.After(waitTimeout):
		t.Fatalf("portcullis login did not end %s after the denial:\n%s", waitTimeout, l.out)
	}
}
