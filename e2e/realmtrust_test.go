//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
)

// TestClients_PlainHTTPRealm_Registry28TLS: Debian's distribution 2.8 served over https
// whose auth.token.realm is plain http — the case, a registry naming
// realm="http://127.0.0.1:…/token". `portcullis token` and `portcullis doctor`, given alice's
// password, refuse to follow it: the token command fails naming -insecure-realm, the doctor
// reports the realm and exits 1, and the realm (a recorder standing in for whoever the
// registry names) never gets a request, let alone the password. With -insecure-realm the
// token command asks it, which shows the recorder is reachable.
func TestClients_PlainHTTPRealm_Registry28TLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pki := testpki.Write(t, dir) // a certificate for 127.0.0.1 and localhost

	var mu sync.Mutex
	var seen []string
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.String()+" authorization="+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token":"from-the-http-realm","expires_in":60}`))
	}))
	t.Cleanup(realm.Close)
	requests := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}

	port := freePort(t)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: 127.0.0.1:%d
  secret: portcullis-e2e-%d
  tls:
    certificate: %s
    key: %s
auth:
  token:
    realm: %s/token
    service: %s
    issuer: %s
    rootcertbundle: %s
`, filepath.Join(dir, "storage"), port, port, pki.Cert, pki.Key, realm.URL, service, issuer, pki.CA)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := startProc(t, registry28.name, peer(t, registry28.bin), "serve", cfgPath)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	caPEM, err := os.ReadFile(pki.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitUntil(t, "distribution 2.8 over https answering 401", []*proc{reg}, func() error {
		resp, err := tlsClient.Get(base + "/v2/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(wa, realm.URL) {
			return fmt.Errorf("GET /v2/: %d, WWW-Authenticate %q", resp.StatusCode, wa)
		}
		return nil
	})

	// The clients trust the registry's CA through SSL_CERT_FILE, as an operator's would
	// through the system store.
	run := func(args ...string) (int, string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, portcullisBin(t), args...)
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+pki.CA, "DOCKER_CONFIG="+filepath.Join(dir, "docker"))
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatalf("portcullis %s: %v", strings.Join(args, " "), err)
		}
		t.Logf("$ portcullis %s  [exit %d]\n  stdout:\n%s\n  stderr:\n%s", strings.Join(args, " "), code, indent(out.String()), indent(errOut.String()))
		return code, out.String(), errOut.String()
	}

	code, stdout, stderr := run("token", "-registry", base, "-u", "alice", "-p", "s3cret-e2e")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "plain http") || !strings.Contains(stderr, "-insecure-realm") {
		t.Errorf("portcullis token: exit %d, stdout %q: want exit 1 naming the plain-http realm and -insecure-realm", code, stdout)
	}
	code, stdout, _ = run("doctor", "-registry", base, "-u", "alice", "-p", "s3cret-e2e")
	if code != 1 || !strings.Contains(stdout, "is plain http while the registry is https") || !strings.Contains(stdout, "nothing was sent to it") {
		t.Errorf("portcullis doctor: exit %d: want 1, the realm reported and nothing sent", code)
	}
	if got := requests(); len(got) != 0 {
		t.Fatalf("the plain-http realm got %d request(s): %q", len(got), got)
	}

	code, stdout, _ = run("token", "-registry", base, "-u", "alice", "-p", "s3cret-e2e", "-insecure-realm")
	if code != 0 || stdout != "from-the-http-realm\n" {
		t.Errorf("-insecure-realm: exit %d, stdout %q: want the realm's token", code, stdout)
	}
	if got := requests(); len(got) != 1 || !strings.Contains(got[0], "authorization=Basic") {
		t.Errorf("-insecure-realm: the realm saw %q, want one GET with Basic credentials", got)
	}
}
