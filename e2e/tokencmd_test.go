//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// tokenCmdRun is one run of `portcullis token`, its streams kept apart: stdout must hold the
// token and nothing else.
type tokenCmdRun struct {
	code           int
	stdout, stderr string
}

// portcullisToken runs `bin/portcullis token args…` with the clients' isolated docker config.
func (c *clients) portcullisToken(t *testing.T, stdin string, args ...string) tokenCmdRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, portcullisBin(t), append([]string{"token"}, args...)...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := tokenCmdRun{stdout: out.String(), stderr: errOut.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("portcullis token %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("$ portcullis token %s  [exit %d]\n  stdout:\n%s\n  stderr:\n%s", strings.Join(args, " "), r.code, indent(r.stdout), indent(r.stderr))
	return r
}

// token is stdout as a token: exit 0 and one line holding a three-segment JWT.
func (r tokenCmdRun) token(t *testing.T) string {
	t.Helper()
	tok := strings.TrimSuffix(r.stdout, "\n")
	if r.code != 0 || strings.Contains(tok, "\n") || strings.Count(tok, ".") != 2 {
		t.Fatalf("exit %d, stdout %q: want exit 0 and just a token on stdout\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	return tok
}

// noToken checks a run that succeeded without a token: exit 0, stdout empty.
func (r tokenCmdRun) noToken(t *testing.T) {
	t.Helper()
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q: want exit 0 and nothing on stdout\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// failed checks exit 1, empty stdout, and a last stderr line that is the error.
func (r tokenCmdRun) failed(t *testing.T, wants ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(last, "portcullis token: ") {
		t.Fatalf("exit %d, stdout %q: want exit 1, nothing on stdout and a one-line error\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error %q lacks %q", last, w)
		}
	}
}

func (r tokenCmdRun) stderrHas(t *testing.T, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

// registryTakesToken checks that reg answers GET /v2/ with the token as bearer with 200: the
// token the command printed is one the registry verifies.
func registryTakesToken(t *testing.T, reg *registry, tok string) {
	t.Helper()
	req := mustRequest(t, http.MethodGet, reg.URL+"/v2/")
	req.Header.Set("Authorization", "Bearer "+tok)
	if a := do(t, req); a.status != http.StatusOK {
		t.Fatalf("GET %s/v2/ with the printed token: status %d, want 200\n%s", reg.URL, a.status, a.body)
	}
}

// TestTokenCmd_Registry3_Registry28_Portcullis runs `portcullis token` against the CNCF
// distribution registry 3.1.2 (thumbprint kids, development defaults) and Debian's
// distribution 2.8 (libtrust kids, config file), each behind an all-in-one Portcullis, and
// uses crane (auth login) to write docker's config.json. For each: a password login with
// -offline and -decode (stdout just the token, which the registry accepts; stderr the refresh
// token, the kid the JWKS names and the access list), the refresh grant with that refresh
// token (-identity-token), the credentials crane stored (-docker-config), and a wrong
// password (401 and Portcullis's message).
func TestTokenCmd_Registry3_Registry28_Portcullis(t *testing.T) {
	t.Parallel()
	cases := []struct {
		kind  registryKind
		start func(testing.TB) *portcullis
	}{
		{registry3, startAllInOneDev},
		{registry28, func(t testing.TB) *portcullis { return startAllInOneConfig(t, portcullisConfig{KIDMode: "libtrust"}) }},
	}
	for _, tc := range cases {
		t.Run(tc.kind.name, func(t *testing.T) {
			t.Parallel()
			pc := tc.start(t)
			reg := startRegistry(t, tc.kind, pc)
			c := newClients(t)

			r := c.portcullisToken(t, "alice\n", "-registry", reg.URL, "-u", "alice", "--password-stdin",
				"-scope", "repository:alice/app:pull,push", "-offline", "-decode")
			tok := r.token(t)
			registryTakesToken(t, reg, tok)
			_, kid, _ := verifyWithJWKS(t, pc, tok)
			if tc.kind == registry28 && !libtrustKID.MatchString(kid) {
				t.Fatalf("kid %q is not a libtrust key id", kid)
			}
			r.stderrHas(t, `registry challenge: bearer realm="`+pc.Realm+`",service="`+service+`"`,
				"token from "+pc.Realm+` (service "`+service+`") by GET as alice; scope repository:alice/app:pull,push; expires in `,
				"refresh token (secret; use it with -identity-token): pcr_",
				"decoded WITHOUT verifying the signature", "  kid:  "+kid+"\n", "  iss:  "+issuer+"\n", "  sub:  alice\n",
				"  aud:  "+service+"\n", "  access:\n    repository:alice/app:pull,push\n", " left)\n")
			_, after, _ := strings.Cut(r.stderr, "use it with -identity-token): ")
			refresh := strings.Fields(after + " ")[0]

			r = c.portcullisToken(t, "", "-registry", reg.URL, "-identity-token", refresh, "-scope", "repository:alice/app:pull", "-decode")
			registryTakesToken(t, reg, r.token(t))
			r.stderrHas(t, "by POST with the refresh grant; scope repository:alice/app:pull", "  kid:  "+kid+"\n", "  sub:  alice\n",
				"  access:\n    repository:alice/app:pull\n")

			c.ok(t, "crane", "auth", "login", reg.Host, "-u", "alice", "-p", "alice")
			r = c.portcullisToken(t, "", "-registry", "http://"+reg.Host, "-docker-config", "-scope", "repository:alice/app:push", "-decode")
			registryTakesToken(t, reg, r.token(t))
			r.stderrHas(t, "credentials for "+reg.Host+" from docker's config: alice (password ***)", "by GET as alice",
				"    repository:alice/app:push\n")

			c.portcullisToken(t, "", "-registry", reg.URL, "-u", "alice", "-p", "wrong-password").
				failed(t, "GET "+pc.Realm+" as alice: 401 Unauthorized: invalid username or password")
		})
	}
}

// startRegistryWithAuth starts kind with auth (the YAML of its auth section, "" for none)
// and waits until GET /v2/ answers want.
func startRegistryWithAuth(t *testing.T, kind registryKind, auth string, want int) *registry {
	t.Helper()
	port := freePort(t)
	reg := &registry{Host: fmt.Sprintf("localhost:%d", port), URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: 127.0.0.1:%d
  secret: portcullis-e2e-%d
%s`, filepath.Join(t.TempDir(), "storage"), port, port, auth)
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	reg.proc = startProc(t, kind.name, peer(t, kind.bin), "serve", path)
	waitUntil(t, fmt.Sprintf("%s GET /v2/ answering %d", kind.name, want), []*proc{reg.proc}, httpStatus(reg.URL+"/v2/", want))
	return reg
}

// TestTokenCmd_HtpasswdRegistry_Basic runs `portcullis token` against distribution 3.1.2 and
// Debian's 2.8 configured with `auth: htpasswd` (no token server): it says the registry uses
// Basic and there is no token, accepts alice's password and refuses a wrong one with the
// registry's 401.
func TestTokenCmd_HtpasswdRegistry_Basic(t *testing.T) {
	t.Parallel()
	for _, kind := range []registryKind{registry3, registry28} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			h, err := bcrypt.GenerateFromPassword([]byte("alice"), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			htpasswd := filepath.Join(t.TempDir(), "htpasswd")
			if err := os.WriteFile(htpasswd, []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			reg := startRegistryWithAuth(t, kind, fmt.Sprintf("auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n", htpasswd), http.StatusUnauthorized)
			c := newClients(t)

			r := c.portcullisToken(t, "alice", "-registry", reg.URL, "-u", "alice", "--password-stdin")
			r.noToken(t)
			r.stderrHas(t, `registry challenge: basic realm="basic-realm"`, "registry uses Basic auth (e.g. Amazon ECR); no token to fetch",
				"the registry accepts alice's credentials with Basic")

			r = c.portcullisToken(t, "", "-registry", reg.URL, "-u", "alice", "-p", "wrong")
			r.stderrHas(t, "registry uses Basic auth (e.g. Amazon ECR); no token to fetch")
			r.failed(t, "GET "+reg.URL+"/v2/ with Basic credentials as alice: 401 Unauthorized")

			c.portcullisToken(t, "", "-registry", reg.URL).failed(t, "no credentials to check")
		})
	}
}

// TestTokenCmd_OpenRegistry runs `portcullis token` against distribution 3.1.2 and Debian's
// 2.8 without an auth section: /v2/ answers 200, so it says no authentication is needed and
// prints no token, with or without credentials.
func TestTokenCmd_OpenRegistry(t *testing.T) {
	t.Parallel()
	for _, kind := range []registryKind{registry3, registry28} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			reg := startRegistryWithAuth(t, kind, "", http.StatusOK)
			c := newClients(t)
			for _, args := range [][]string{{"-registry", reg.URL}, {"-registry", reg.URL, "-u", "alice", "-p", "alice", "-scope", "repository:a:pull"}} {
				r := c.portcullisToken(t, "", args...)
				r.noToken(t)
				r.stderrHas(t, "answered 200 without credentials: the registry needs no authentication; no token to fetch")
			}
		})
	}
}
