//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

// TestOIDC_WorkloadIdentity_DockerCLI_Crane_Skopeo_Registry3 is a CI job logging in with the
// token its platform gave it. It starts two test OIDC issuers on loopback (internal/testenv/oidctest: one
// trusted standing in for GitHub Actions, one not), all-in-one Portcullis whose authn chain is
// htpasswd then an oidc backend named github-actions trusting the first for audience
// registry.local, with the shipped default policy plus deploy/examples/ci/policy (keyed on the
// labels the backend maps), the CNCF distribution registry 3.1.2, and the real docker CLI and
// engine, crane and skopeo. With the JWT as the password:
//
//   - docker login, then a FROM-scratch image pushed to the job's own project (myorg/app) and
//     pulled back; the same image pushed to another project (myorg/other) is refused and
//     nothing lands there;
//   - crane pushes and reads under the project, skopeo pulls; a pull-request job's token
//     (not a release ref) may pull but not push;
//   - docker login is refused for a token for another audience, an expired one, one issued
//     longer ago than max_token_age, one from an untrusted issuer, one whose repository does
//     not match the required claim, and one naming a key the issuer does not publish;
//   - with the issuer down after its keys were fetched, new tokens still work (a token with an
//     unknown key then gets 503, not 401); after the issuer rotates its key, a token with the
//     new kid works.
func TestOIDC_WorkloadIdentity_DockerCLI_Crane_Skopeo_Registry3(t *testing.T) {
	t.Parallel()
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	idp := oidctest.Start(t)
	untrusted := oidctest.Start(t)
	pc := startOIDCAllInOne(t, idp)
	reg := startRegistry(t, registry3, pc)

	app := reg.Host + "/myorg/app"
	var tags []string // every image tag the engine holds, removed at the end
	t.Cleanup(func() {
		if len(tags) > 0 {
			_, _ = c.run(t, "", "docker", append([]string{"image", "rm", "--force"}, tags...)...)
		}
	})
	dockerLogin := func(c *clients, user, jwt string) {
		t.Helper()
		if out, err := c.run(t, jwt+"\n", "docker", "login", reg.Host, "-u", user, "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login with a workload token as %s: %v\n%s", user, err, out)
		}
	}
	dockerPush := func(ref string) string {
		t.Helper()
		out := c.ok(t, "docker", "push", ref)
		m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("docker push %s printed no digest:\n%s", ref, out)
		}
		return m[1]
	}

	release := ghToken(t, idp, "myorg/app", "refs/heads/main", nil)

	// What the policy makes of the mapped labels, read straight from the token endpoint: the
	// job's own project and below, nothing of a neighbour whose name shares its prefix.
	tok := mustToken(t, pc, "ci", release, "repository:myorg/app:pull,push", "repository:myorg/app/cache:pull,push",
		"repository:myorg/app2:pull,push", "repository:myorg/other:pull")
	checkStandardClaims(t, tok)
	if want := "github:repo:myorg/app:ref:refs/heads/main"; tok.claims.Subject != want {
		t.Fatalf("sub = %q, want the workload token's sub under the backend's subject_prefix %q", tok.claims.Subject, want)
	}
	checkAccess(t, tok, map[string][]string{
		"repository:myorg/app":       {"pull", "push"},
		"repository:myorg/app/cache": {"pull", "push"},
	})

	t.Run("DockerPushOwnProject", func(t *testing.T) {
		dockerLogin(c, "ci", release)
		// A workload login gets no refresh token: docker keeps the JWT itself.
		e := dockerConfigEntry(t, c, reg.Host)
		if e.IdentityToken != "" {
			t.Fatalf("config.json holds an identity token for a workload login: %+v", e)
		}
		if dec, err := base64.StdEncoding.DecodeString(e.Auth); err != nil || string(dec) != "ci:"+release {
			t.Fatalf("config.json auths.%s.auth does not hold ci and the workload token (%v)", reg.Host, err)
		}

		ref := app + ":v1"
		tags = append(tags, ref)
		buildScratchImage(t, c, ref, "built by a CI job")
		pushed := dockerPush(ref)
		if got := c.skopeoDigest(t, ref, "ci:"+release); got != pushed {
			t.Fatalf("the registry holds %s as %s, docker pushed %s", ref, got, pushed)
		}
		c.ok(t, "docker", "image", "rm", ref)
		if out := c.ok(t, "docker", "pull", ref); !strings.Contains(out, pushed) {
			t.Fatalf("docker pull %s did not report the pushed digest %s:\n%s", ref, pushed, out)
		}

		other := reg.Host + "/myorg/other:v1"
		tags = append(tags, other)
		c.ok(t, "docker", "tag", ref, other)
		c.refused(t, "docker", "push", other)
		// The refused push left nothing behind: even an admin finds no myorg/other.
		c.failsWith(t, notFoundRE, "skopeo", "inspect", "--retry-times=0", "--tls-verify=false", "--creds", "admin:admin", "docker://"+other)
	})

	t.Run("CraneSkopeo", func(t *testing.T) {
		ci := newClients(t)
		ci.ok(t, "crane", "auth", "login", reg.Host, "-u", "ci", "-p", release)
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "pushed by crane from a CI job\n")
		ref := app + "/tools:v1"
		ci.ok(t, "crane", "push", "--insecure", img.Dir, ref)
		if got := strings.TrimSpace(ci.ok(t, "crane", "digest", "--insecure", ref)); got != img.ManifestDigest {
			t.Fatalf("crane digest %s = %q, want %s", ref, got, img.ManifestDigest)
		}
		ci.refused(t, "crane", "push", "--insecure", img.Dir, reg.Host+"/myorg/app2:v1")
		ci.refused(t, "crane", "copy", "--insecure", ref, reg.Host+"/alice/stolen:v1")

		out := filepath.Join(t.TempDir(), "pulled")
		ci.ok(t, "skopeo", skopeoCopyFrom("docker://"+ref, "oci:"+out+":v1", "ci:"+release)...)
		if got := layoutManifestDigest(t, out, "v1"); got != img.ManifestDigest {
			t.Fatalf("skopeo pulled %s as %s, want %s", ref, got, img.ManifestDigest)
		}

		// A pull request's job is not a release: it may pull its project, not push to it.
		pr := newClients(t)
		prToken := ghToken(t, idp, "myorg/app", "refs/pull/7/merge", nil)
		pr.ok(t, "crane", "auth", "login", reg.Host, "-u", "ci", "-p", prToken)
		pr.ok(t, "crane", "pull", "--insecure", ref, filepath.Join(t.TempDir(), "pr.tar"))
		// A repository the layers are not in yet, so the first write is a blob upload (a POST):
		// a refused manifest PUT (the first write where the layers exist) makes crane retry it
		// with a spent body and report that instead of the 401.
		pr.refused(t, "crane", "push", "--insecure", img.Dir, app+"/from-pr:v1")
		pr.failsWith(t, notFoundRE, "crane", "digest", "--insecure", app+"/from-pr:v1")
	})

	t.Run("Refused", func(t *testing.T) {
		now := time.Now()
		for _, tc := range []struct {
			name string
			jwt  string
		}{
			{"wrong audience", ghToken(t, idp, "myorg/app", "refs/heads/main", func(c map[string]any) { c["aud"] = "another-service" })},
			{"expired", ghToken(t, idp, "myorg/app", "refs/heads/main", func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
			})},
			{"older than max_token_age", ghToken(t, idp, "myorg/app", "refs/heads/main", func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(time.Hour).Unix()
			})},
			{"untrusted issuer", ghToken(t, untrusted, "myorg/app", "refs/heads/main", nil)},
			{"required claim mismatch", ghToken(t, idp, "evilorg/app", "refs/heads/main", func(c map[string]any) { c["repository_owner"] = "myorg" })},
			{"key the issuer does not publish", signWithKID(t, idp, ghClaims(idp, "myorg/app", "refs/heads/main"), "not-published")},
		} {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				// The backend ignores the user name; one per case keeps these failures from
				// adding up to a lockout of the "ci" logins that follow.
				user := "ci-" + strings.ReplaceAll(tc.name, " ", "-")
				job := newClients(t)
				out, err := job.run(t, tc.jwt+"\n", "docker", "login", reg.Host, "-u", user, "--password-stdin")
				if err == nil || !refusedRE.MatchString(out) {
					t.Fatalf("docker login with a token (%s): %v, want it refused\n%s", tc.name, err, out)
				}
				// The gateway's own answer: 401, not a 5xx.
				if a := getToken(t, pc, user, tc.jwt, url.Values{"service": {service}, "scope": {"repository:myorg/app:pull"}}); a.status != http.StatusUnauthorized {
					t.Fatalf("GET /token with the token (%s): status %d, want 401\n%s", tc.name, a.status, a.body)
				}
			})
		}
	})

	t.Run("IssuerDownThenKeyRotation", func(t *testing.T) {
		// Keys were fetched by the logins above. A new token (not in the login cache) is
		// verified with them while the issuer cannot be reached.
		idp.SetDown(true)
		down := ghToken(t, idp, "myorg/app", "refs/heads/main", nil)
		dockerLogin(c, "ci", down)
		ref := app + ":while-issuer-down"
		tags = append(tags, ref)
		c.ok(t, "docker", "tag", app+":v1", ref)
		dockerPush(ref)

		// A key it does not hold cannot be looked up: unavailable (retry), not a wrong password.
		unknown := signWithKID(t, idp, ghClaims(idp, "myorg/app", "refs/heads/main"), "rotated-in-while-down")
		a := getToken(t, pc, "ci", unknown, url.Values{"service": {service}, "scope": {"repository:myorg/app:pull"}})
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("GET /token with an unknown key while the issuer is down: status %d, Retry-After %q; want 503 with Retry-After\n%s",
				a.status, a.header.Get("Retry-After"), a.body)
		}
		idp.SetDown(false)

		kid, err := idp.Rotate(jose.RS256, true)
		if err != nil {
			t.Fatal(err)
		}
		rotated := ghToken(t, idp, "myorg/app", "refs/heads/main", nil)
		if got := tokenKID(t, rotated); got != kid {
			t.Fatalf("the issuer signed with kid %q after rotating to %q", got, kid)
		}
		dockerLogin(c, "ci", rotated)
		ref = app + ":after-rotation"
		tags = append(tags, ref)
		c.ok(t, "docker", "tag", app+":v1", ref)
		pushed := dockerPush(ref)
		if got := c.skopeoDigest(t, ref, "ci:"+rotated); got != pushed {
			t.Fatalf("the registry holds %s as %s, docker pushed %s", ref, got, pushed)
		}
		c.ok(t, "docker", "logout", reg.Host)
	})

	t.Run("PasswordUsersUnchanged", func(t *testing.T) {
		// htpasswd users sit in the same chain and keep the default policy.
		alice := newClients(t)
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "alice next to the CI jobs\n")
		alice.ok(t, "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest", "docker://"+reg.Host+"/alice/app:v1", "alice:alice")...)
		alice.refused(t, "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest", "docker://"+app+":from-alice", "alice:alice")...)
	})
}

// startOIDCAllInOne runs all-in-one Portcullis from the suite's config file with an oidc
// backend named github-actions after the htpasswd users, trusting idp the way
// deploy/examples/ci/portcullis.yaml trusts GitHub Actions, and a policy directory holding the
// shipped default policy and the CI example's.
func startOIDCAllInOne(t *testing.T, idp *oidctest.Issuer) *portcullis {
	t.Helper()
	return startOIDCAllInOneConfig(t, idp, portcullisConfig{})
}

// startOIDCAllInOneConfig is startOIDCAllInOne from c (KIDMode libtrust for distribution 2.8).
func startOIDCAllInOneConfig(t *testing.T, idp *oidctest.Issuer, c portcullisConfig) *portcullis {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "policy")
	if err := os.Mkdir(policy, 0o700); err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	for dst, src := range map[string]string{
		"default.rego": filepath.Join(root, "deploy", "policies", "default", "policy.rego"),
		"ci.rego":      filepath.Join(root, "deploy", "examples", "ci", "policy", "policy.rego"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(policy, dst), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.OPA = opa.Config{Dir: policy}
	// jwks_min_refresh_interval is short so that whether a token with an unknown kid reaches
	// the issuer does not depend on how long ago the last fetch was.
	gh := backendSpec(t, "github-actions", &oidc.Config{
		JWKSMinRefreshInterval: config.Duration(time.Millisecond),
		Issuers: []oidc.Issuer{{
			Issuer:      idp.URL,
			Audiences:   []string{service},
			Algorithms:  []string{"RS256"},
			MaxTokenAge: config.Duration(time.Hour),
			Claims:      map[string]oidc.Strings{"repository_owner": {"myorg"}, "repository": {"myorg/*"}},
			Subject:     "sub",
			Groups:      oidc.Strings{"repository_owner"},
			Labels:      map[string]string{"project": "repository", "ref": "ref", "workflow": "workflow"},
		}},
	})
	gh.SubjectPrefix = "github:"
	c.Edit = func(cfg *app.Config) { cfg.Authn.Backends = append(cfg.Authn.Backends, gh) }
	pc, _ := writePortcullisConfig(t, c)
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	pc.waitReady(t)
	return pc
}

// ghClaims are the claims of a GitHub Actions job token for repo on ref, for the registry,
// issued now for ten minutes. Each has its own jti: RS256 signatures are deterministic, and
// two tokens with equal claims would be one to the login cache.
func ghClaims(idp *oidctest.Issuer, repo, ref string) map[string]any {
	c := idp.Claims(service, time.Now(), 10*time.Minute)
	owner, _, _ := strings.Cut(repo, "/")
	c["sub"] = "repo:" + repo + ":ref:" + ref
	c["repository"] = repo
	c["repository_owner"] = owner
	c["ref"] = ref
	c["workflow"] = "image"
	c["jti"] = rand.Text()
	return c
}

// ghToken signs ghClaims after edit changes them.
func ghToken(t *testing.T, idp *oidctest.Issuer, repo, ref string, edit func(map[string]any)) string {
	t.Helper()
	c := ghClaims(idp, repo, ref)
	if edit != nil {
		edit(c)
	}
	return idp.MustSign(t, c)
}

func signWithKID(t *testing.T, idp *oidctest.Issuer, claims map[string]any, kid string) string {
	t.Helper()
	tok, err := idp.SignWithKID(claims, kid)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenKID is the kid in a compact JWS's header.
func tokenKID(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID
}

// buildScratchImage builds a one-file image FROM scratch tagged ref.
func buildScratchImage(t *testing.T, c *clients, ref, content string) {
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

// dockerConfigEntry is auths.<host> of the clients' docker config.json.
func dockerConfigEntry(t *testing.T, c *clients, host string) dockerAuthEntry {
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
