package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests do not run in parallel: closing an httptest server closes the idle connections
// of http.DefaultTransport, which the parallel token tests use.

// catcher is a token endpoint that must never be reached with credentials: it records every
// request it gets (and answers with a token, so a client that trusts it would go on).
type catcher struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string // "METHOD authorization=… form=…" per request
}

func newCatcher(t *testing.T, tls bool) *catcher {
	t.Helper()
	c := &catcher{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		c.mu.Lock()
		c.seen = append(c.seen, r.Method+" authorization="+r.Header.Get("Authorization")+" form="+r.PostForm.Encode())
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token":"caught","expires_in":60}`))
	})
	if tls {
		c.srv = httptest.NewTLSServer(h)
	} else {
		c.srv = httptest.NewServer(h)
	}
	t.Cleanup(c.srv.Close)
	return c
}

func (c *catcher) requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

// noSecrets fails when any request the catcher saw carried a credential.
func (c *catcher) noSecrets(t *testing.T, secrets ...string) {
	t.Helper()
	for _, r := range c.requests() {
		if strings.Contains(r, "authorization=Basic") || strings.Contains(r, "authorization=Bearer") {
			t.Errorf("the untrusted endpoint got credentials: %s", r)
		}
		for _, s := range secrets {
			if strings.Contains(r, s) {
				t.Errorf("the untrusted endpoint got the secret %q: %s", s, r)
			}
		}
	}
}

// tlsRegistry is an https registry answering /v2/ with a Bearer challenge naming realm.
func tlsRegistry(t *testing.T, realm string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="reg.test"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// redirector is an https token endpoint that answers every request with status and a
// Location on target: a realm handing the client on to somewhere else.
func redirector(t *testing.T, status int, target string) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func runTokenHTTP(hc *http.Client, stdin string, args ...string) tokenRun {
	var out, errOut strings.Builder
	c := &tokenCmd{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut, keychain: keychainOf{}, now: time.Now, http: hc}
	code := c.run(context.Background(), args)
	return tokenRun{code, out.String(), errOut.String()}
}

// credentialArgs are the ways `portcullis token` and the doctor send a secret to a realm.
var credentialArgs = []struct {
	name string
	args []string
}{
	{"GET with Basic", []string{"-u", "alice", "-p", "s3cret"}},
	{"OAuth2 password grant", []string{"-u", "alice", "-p", "s3cret", "-oauth"}},
	{"refresh grant", []string{"-identity-token", "s3cret"}},
}

// TestTokenCmdRefusesPlainHTTPRealm: an https registry naming an http realm gets nothing
// sent there, unless -insecure-realm says to.
func TestTokenCmdRefusesPlainHTTPRealm(t *testing.T) {
	for _, ca := range credentialArgs {
		t.Run(ca.name, func(t *testing.T) {
			realm := newCatcher(t, false)
			reg := tlsRegistry(t, realm.srv.URL+"/token")
			r := runTokenHTTP(reg.Client(), "", append([]string{"-registry", reg.URL}, ca.args...)...)
			r.failed(t, "plain http", "-insecure-realm")
			if n := len(realm.requests()); n != 0 {
				t.Errorf("the http realm got %d request(s): %q", n, realm.requests())
			}
			realm.noSecrets(t, "s3cret")

			// Said explicitly: the realm is asked (what an operator testing a lab setup wants).
			r = runTokenHTTP(reg.Client(), "", append([]string{"-registry", reg.URL, "-insecure-realm"}, ca.args...)...)
			if r.code != 0 || r.stdout != "caught\n" {
				t.Errorf("-insecure-realm: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
			}
			r.stderrHas(t, "WARNING")
		})
	}
}

// TestTokenCmdRefusesUnsafeRedirects: a realm that redirects a request carrying credentials
// off https or to another host gets the request refused; nothing reaches the target.
func TestTokenCmdRefusesUnsafeRedirects(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		for _, target := range []string{"to http", "to another host"} {
			for _, ca := range credentialArgs {
				t.Run(http.StatusText(status)+"/"+target+"/"+ca.name, func(t *testing.T) {
					dest := newCatcher(t, target == "to another host")
					realm := redirector(t, status, dest.srv.URL+"/token")
					reg := tlsRegistry(t, realm.URL+"/token")
					r := runTokenHTTP(reg.Client(), "", append([]string{"-registry", reg.URL}, ca.args...)...)
					r.failed(t, "redirect")
					dest.noSecrets(t, "s3cret")
					if n := len(dest.requests()); n != 0 {
						t.Errorf("the redirect target got %d request(s): %q", n, dest.requests())
					}
				})
			}
		}
	}
}

// TestDoctorSendsNothingToPlainHTTPRealm: the doctor reports an http realm behind an https
// registry, exits 1 and does not send the credentials there to see what happens.
func TestDoctorSendsNothingToPlainHTTPRealm(t *testing.T) {
	for _, ca := range credentialArgs {
		if slices.Contains(ca.args, "-oauth") {
			continue // the doctor speaks docker's GET and the refresh grant
		}
		t.Run(ca.name, func(t *testing.T) {
			realm := newCatcher(t, false)
			reg := tlsRegistry(t, realm.srv.URL+"/token")
			var out bytes.Buffer
			d := &doctorCmd{tok: tokenCmd{stdin: strings.NewReader(""), stdout: &out, stderr: &out, now: time.Now}, out: &out, now: time.Now, http: reg.Client()}
			code := d.run(context.Background(), append([]string{"-registry", reg.URL}, ca.args...))
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, want := range []string{"is plain http while the registry is https", "nothing was sent to it", "-insecure-realm"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if n := len(realm.requests()); n != 0 {
				t.Errorf("the http realm got %d request(s): %q", n, realm.requests())
			}
			realm.noSecrets(t, "s3cret")
			if t.Failed() {
				t.Logf("output:\n%s", out.String())
			}
		})
	}
}

// TestDoctorRefusesUnsafeRedirects: the doctor hands its credentials to the same client
// rules: a realm redirecting to http gets nothing.
func TestDoctorRefusesUnsafeRedirects(t *testing.T) {
	dest := newCatcher(t, false)
	realm := redirector(t, http.StatusTemporaryRedirect, dest.srv.URL+"/token")
	reg := tlsRegistry(t, realm.URL+"/token")
	var out bytes.Buffer
	d := &doctorCmd{tok: tokenCmd{stdin: strings.NewReader(""), stdout: &out, stderr: &out, now: time.Now}, out: &out, now: time.Now, http: reg.Client()}
	if code := d.run(context.Background(), []string{"-registry", reg.URL, "-u", "alice", "-p", "s3cret"}); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out.String(), "redirect") {
		t.Errorf("output does not mention the refused redirect:\n%s", out.String())
	}
	if n := len(dest.requests()); n != 0 {
		t.Errorf("the redirect target got %d request(s): %q", n, dest.requests())
	}
	dest.noSecrets(t, "s3cret")
}
