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
	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
)

// sessionsAdminSecret is the admin bearer secret of the sessions tests.
const sessionsAdminSecret = "e2e-sessions-admin-secret-0123456789"

// revokedRE matches how clients report a refresh grant Portcullis refused (400 invalid_grant
// on POST, 401 on GET) or the registry's 401 that follows.
var revokedRE = regexp.MustCompile(`(?i)invalid_grant|unauthorized|authentication required|denied`)

// skopeoRevokedRE is skopeo's report of the same: it prints only the token endpoint's status.
var skopeoRevokedRE = regexp.MustCompile(`obtain access token: invalid status code from registry 400`)

// sessionsPortcullis is an all-in-one Portcullis with an admin listener, for `portcullis
// sessions`.
type sessionsPortcullis struct {
	*portcullis
	AdminAddr, AdminTokenFile string
}

// startSessionsAllInOne runs `portcullis -config FILE -target=all` with admin.listen and
// the authn store given (zero: SQLite in the test's directory).
func startSessionsAllInOne(t *testing.T, store app.StoreSpec) *sessionsPortcullis {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(sessionsAdminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pc := startAllInOneConfig(t, portcullisConfig{
		Store: store,
		Admin: app.AdminConfig{TokenFile: tokenFile, Listen: addr},
	})
	waitUntil(t, "admin API listening on "+addr, pc.allProcs(), tcpListening(addr))
	return &sessionsPortcullis{portcullis: pc, AdminAddr: addr, AdminTokenFile: tokenFile}
}

// restart kills the all-in-one process (a crash, not a shutdown) and starts it again on the
// same config: what the sessions store committed must survive.
func (sp *sessionsPortcullis) restart(t *testing.T) {
	t.Helper()
	sp.Procs["all"].kill(t)
	sp.Procs["all"] = startProc(t, "portcullis-all-restarted", portcullisBin(t), "-config", sp.Config, "-target=all")
	sp.waitReady(t)
	waitUntil(t, "admin API listening on "+sp.AdminAddr, sp.allProcs(), tcpListening(sp.AdminAddr))
}

// sessionsCLI runs `portcullis sessions ARGS -addr … -admin-token-file …`.
func (sp *sessionsPortcullis) sessionsCLI(t *testing.T, args ...string) string {
	t.Helper()
	args = append(append([]string{"sessions"}, args...), "-addr", sp.AdminAddr, "-admin-token-file", sp.AdminTokenFile)
	out, err := runPortcullis(t, args...)
	if err != nil {
		t.Fatalf("portcullis %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// e2eSession is a session as `portcullis sessions list -o json` prints it.
type e2eSession struct {
	ID         string `json:"id"`
	Subject    string `json:"subject"`
	Backend    string `json:"backend"`
	Service    string `json:"service"`
	ClientID   string `json:"client_id"`
	CreatedAt  string `json:"created_at"`
	LastUsedAt string `json:"last_used_at"`
}

func (sp *sessionsPortcullis) listSessions(t *testing.T, user string) []e2eSession {
	t.Helper()
	out := sp.sessionsCLI(t, "list", "-o", "json", "-user", user)
	var l struct {
		Sessions []e2eSession `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("sessions list -o json: %v\n%s", err, out)
	}
	return l.Sessions
}

// dockerConfigFile is $DOCKER_CONFIG/config.json of the clients.
func dockerConfigFile(c *clients) string {
	for _, e := range c.env {
		if v, ok := strings.CutPrefix(e, "DOCKER_CONFIG="); ok {
			return filepath.Join(v, "config.json")
		}
	}
	return ""
}

// dockerAuthEntry is auths.<host> of a docker config.json.
type dockerAuthEntry struct {
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	Password      string `json:"password"`
}

// dockerAuth reads the entry `docker login` wrote for host into the clients' config.json,
// and checks it holds an identity token and no password.
func dockerAuth(t *testing.T, c *clients, host string) dockerAuthEntry {
	t.Helper()
	data, err := os.ReadFile(dockerConfigFile(c))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Auths map[string]dockerAuthEntry `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("config.json: %v\n%s", err, data)
	}
	e, ok := cfg.Auths[host]
	if !ok {
		t.Fatalf("config.json has no auths entry for %s:\n%s", host, data)
	}
	if !strings.HasPrefix(e.IdentityToken, "pcr_") {
		t.Fatalf("config.json holds no Portcullis identitytoken for %s:\n%s", host, data)
	}
	if e.Password != "" {
		t.Fatalf("config.json holds a password for %s:\n%s", host, data)
	}
	if e.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			t.Fatalf("auths.%s.auth is not base64: %v", host, err)
		}
		if user, pass, _ := strings.Cut(string(dec), ":"); user != "alice" || pass != "" {
			t.Fatalf("auths.%s.auth holds %q, want the user name and no password", host, dec)
		}
	}
	if strings.Contains(string(data), base64.StdEncoding.EncodeToString([]byte("alice:alice"))) {
		t.Fatalf("config.json holds alice's password:\n%s", data)
	}
	return e
}

// TestSessions_DockerCLI_Registry3_Crane_Skopeo drives the real docker CLI and engine
// against distribution registry 3.1.2 and all-in-one Portcullis with the SQLite session
// store: `docker login` stores an identity token (a refresh token) and no password in
// config.json; push and pull work through the refresh grant, and so do crane and skopeo
// reading that identity token; after `portcullis sessions revoke -user alice` the next push
// (and crane, skopeo) fail with an auth error; a new `docker login` makes pushing work again.
func TestSessions_DockerCLI_Registry3_Crane_Skopeo(t *testing.T) {
	t.Parallel()
	sp := startSessionsAllInOne(t, app.StoreSpec{})
	c := newClients(t)
	if out, err := c.run(t, "", "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		t.Fatalf("the docker engine is not reachable: %v\n%s", err, out)
	}
	reg := startRegistry(t, registry3, sp.portcullis)
	ref := reg.Host + "/alice/session:v1"
	t.Cleanup(func() { _, _ = c.run(t, "", "docker", "image", "rm", "--force", ref) })

	login := func() dockerAuthEntry {
		t.Helper()
		if out, err := c.run(t, "alice\n", "docker", "login", reg.Host, "-u", "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Login Succeeded") {
			t.Fatalf("docker login as alice: %v\n%s", err, out)
		}
		return dockerAuth(t, c, reg.Host)
	}
	first := login()
	ss := sp.listSessions(t, "alice")
	if len(ss) != 1 || ss[0].ClientID != "docker" || ss[0].Service != service || ss[0].Subject != "alice" {
		t.Fatalf("sessions after docker login: %+v, want one of alice's, client docker", ss)
	}
	if strings.Contains(sp.sessionsCLI(t, "list"), first.IdentityToken) {
		t.Fatal("sessions list prints the refresh token")
	}

	buildDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(buildDir, "hello.txt"), []byte("session test "+time.Now().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(buildDir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok(t, "docker", "build", "--quiet", "--tag", ref, buildDir)
	out := c.ok(t, "docker", "push", ref)
	m := regexp.MustCompile(`digest: (sha256:[0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("docker push printed no digest:\n%s", out)
	}
	pushed := m[1]
	c.ok(t, "docker", "image", "rm", ref)
	if out := c.ok(t, "docker", "pull", ref); !strings.Contains(out, pushed) {
		t.Fatalf("docker pull %s did not report the pushed digest %s:\n%s", ref, pushed, out)
	}

	// crane's default keychain reads the identitytoken from $DOCKER_CONFIG/config.json and
	// uses the refresh grant (client_id go-containerregistry); skopeo reads the same file as
	// its auth file (client_id containers/image). Both pull, and crane pushes a copy.
	authFile := dockerConfigFile(c)
	if got := strings.TrimSpace(c.ok(t, "crane", "digest", "--insecure", ref)); got != pushed {
		t.Fatalf("crane digest with the identity token: %s, want %s", got, pushed)
	}
	c.ok(t, "crane", "copy", "--insecure", ref, reg.Host+"/alice/session-crane:v1")
	skopeoInspect := []string{"inspect", "--retry-times=0", "--tls-verify=false", "--authfile", authFile, "docker://" + reg.Host + "/alice/session-crane:v1"}
	if out := c.ok(t, "skopeo", skopeoInspect...); !strings.Contains(out, pushed) {
		t.Fatalf("skopeo inspect with the identity token does not show %s:\n%s", pushed, out)
	}
	ss = sp.listSessions(t, "alice")
	if len(ss) != 1 {
		t.Fatalf("refreshing made sessions: %+v, want still one", ss)
	}

	if out := sp.sessionsCLI(t, "revoke", "-user", "alice"); !strings.Contains(out, "revoked 1 session") {
		t.Fatalf("sessions revoke -user alice:\n%s", out)
	}
	if ss := sp.listSessions(t, "alice"); len(ss) != 0 {
		t.Fatalf("sessions after revoke: %+v", ss)
	}
	c.failsWith(t, revokedRE, "docker", "push", ref)
	c.failsWith(t, revokedRE, "crane", "digest", "--insecure", ref)
	c.failsWith(t, skopeoRevokedRE, "skopeo", skopeoInspect...)

	second := login()
	if second.IdentityToken == first.IdentityToken {
		t.Fatal("the new login got the revoked identity token back")
	}
	if out := c.ok(t, "docker", "push", ref); !strings.Contains(out, pushed) {
		t.Fatalf("docker push after a new login did not report %s:\n%s", pushed, out)
	}
	c.ok(t, "docker", "logout", reg.Host)
}

// tokenAnswer is the token endpoint's JSON answer (success or OAuth2 error).
type tokenAnswer struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

func decodeTokenAnswer(t *testing.T, a httpAnswer) tokenAnswer {
	t.Helper()
	var ta tokenAnswer
	if err := json.Unmarshal(a.body, &ta); err != nil {
		t.Fatalf("token answer (status %d) is not JSON: %v\n%s", a.status, err, a.body)
	}
	return ta
}

// postToken sends POST /token with form.
func postToken(t *testing.T, pc *portcullis, form url.Values) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, pc.URL+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, req)
}

// refreshPOST is docker's refresh grant.
func refreshPOST(t *testing.T, pc *portcullis, rt, clientID string) httpAnswer {
	t.Helper()
	return postToken(t, pc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {clientID},
		"service": {service}, "scope": {"repository:alice/app:pull,push"}})
}

// TestSessions_PostgreSQL_AllInOne runs all-in-one Portcullis with the session store on a
// real PostgreSQL (Debian's server, started by internal/testenv/pgtest on its own port and data dir):
// docker's offline login (GET offline_token=true) and containerd's (POST password grant,
// access_type=offline) get refresh tokens; the refresh grant works by POST and by GET; the
// sessions survive a crash of Portcullis; `portcullis sessions revoke` by id and by user ends
// them, and a refresh is then refused.
func TestSessions_PostgreSQL_AllInOne(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t)
	sp := startSessionsAllInOne(t, storeSpec(t, &postgres.Config{DSN: dsn}))
	pc := sp.portcullis

	a := getToken(t, pc, "alice", "alice", url.Values{"service": {service}, "offline_token": {"true"}, "client_id": {"docker"}, "account": {"alice"}})
	docker := decodeTokenAnswer(t, a)
	if a.status != http.StatusOK || !strings.HasPrefix(docker.RefreshToken, "pcr_") {
		t.Fatalf("docker's offline login: status %d\n%s", a.status, a.body)
	}
	a = postToken(t, pc, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice"}, "access_type": {"offline"},
		"client_id": {"containerd-client"}, "service": {service}, "scope": {"repository:alice/app:pull"}})
	containerd := decodeTokenAnswer(t, a)
	if a.status != http.StatusOK || !strings.HasPrefix(containerd.RefreshToken, "pcr_") || containerd.AccessToken == "" {
		t.Fatalf("containerd's offline login: status %d\n%s", a.status, a.body)
	}

	refreshOK := func(rt, clientID string) {
		t.Helper()
		a := refreshPOST(t, pc, rt, clientID)
		ta := decodeTokenAnswer(t, a)
		if a.status != http.StatusOK || ta.AccessToken == "" || ta.RefreshToken != rt {
			t.Fatalf("refresh grant (%s): status %d, want 200 with access_token and the same refresh_token\n%s", clientID, a.status, a.body)
		}
		if tok, _, _ := verifyWithJWKS(t, pc, ta.AccessToken); !strings.Contains(string(tok), `"sub":"alice"`) {
			t.Fatalf("refreshed token is not alice's: %s", tok)
		}
		g := refreshWithBasic(t, pc, rt)
		if g.status != http.StatusOK || decodeTokenAnswer(t, g).Token == "" {
			t.Fatalf("GET refresh (Basic, empty user): status %d\n%s", g.status, g.body)
		}
	}
	refreshOK(docker.RefreshToken, "docker")
	refreshOK(containerd.RefreshToken, "containerd-client")

	ss := sp.listSessions(t, "alice")
	if len(ss) != 2 {
		t.Fatalf("sessions on PostgreSQL: %+v, want docker's and containerd's", ss)
	}

	sp.restart(t)
	refreshOK(docker.RefreshToken, "containerd-client") // not bound to the client_id
	var containerdID string
	for _, s := range sp.listSessions(t, "alice") {
		if s.ClientID == "containerd-client" {
			containerdID = s.ID
		}
	}
	if containerdID == "" {
		t.Fatalf("no containerd-client session after the restart: %+v", sp.listSessions(t, "alice"))
	}
	sp.sessionsCLI(t, "revoke", "-id", containerdID)
	if a := refreshPOST(t, pc, containerd.RefreshToken, "containerd-client"); a.status != http.StatusBadRequest || decodeTokenAnswer(t, a).Error != "invalid_grant" {
		t.Fatalf("refresh after revoke -id: status %d, want 400 invalid_grant\n%s", a.status, a.body)
	}
	refreshOK(docker.RefreshToken, "docker")
	if out := sp.sessionsCLI(t, "revoke", "-user", "alice"); !strings.Contains(out, "revoked 1 session") {
		t.Fatalf("sessions revoke -user alice:\n%s", out)
	}
	if a := refreshPOST(t, pc, docker.RefreshToken, "docker"); a.status != http.StatusBadRequest || decodeTokenAnswer(t, a).Error != "invalid_grant" {
		t.Fatalf("refresh after revoke -user: status %d, want 400 invalid_grant\n%s", a.status, a.body)
	}
	if g := refreshWithBasic(t, pc, docker.RefreshToken); g.status != http.StatusUnauthorized {
		t.Fatalf("GET refresh after revoke: status %d, want 401\n%s", g.status, g.body)
	}
}

// refreshWithBasic is the GET refresh: Basic auth with an empty user and the refresh token
// as the password (containerd's fallback).
func refreshWithBasic(t *testing.T, pc *portcullis, rt string) httpAnswer {
	t.Helper()
	q := url.Values{"service": {service}, "scope": {"repository:alice/app:pull"}}
	req, err := http.NewRequest(http.MethodGet, pc.URL+"/token?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("", rt)
	return do(t, req)
}
