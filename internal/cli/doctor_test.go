package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The registry-side findings that need no token server: each registry is a stub answering
// /v2/ the way the named kind of registry does.
func TestDoctorRegistryFindings(t *testing.T) {
	challenge := func(h string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", h)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}
	cases := []struct {
		name     string
		tls      bool
		handler  http.HandlerFunc
		args     []string
		code     int
		contains []string
	}{
		{name: "open registry", handler: func(w http.ResponseWriter, r *http.Request) {}, code: 0,
			contains: []string{"needs no authentication"}},
		{name: "Basic registry, no credentials", handler: challenge(`Basic realm="ecr"`), code: 0,
			contains: []string{"like Amazon ECR", "give -u and -p"}},
		{name: "no challenge", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) }, code: 1,
			contains: []string{"PROBLEM  GET", "without a WWW-Authenticate challenge"}},
		{name: "unparsable challenge", handler: challenge(`Bearer realm="x`), code: 1,
			contains: []string{"does not parse"}},
		{name: "not a registry", handler: http.NotFound, code: 1, contains: []string{"no registry API there"}},
		{name: "http realm for an https registry", tls: true, handler: challenge(`Bearer realm="http://auth.invalid/token",service="r"`), code: 1,
			contains: []string{"is plain http while the registry is https", "nothing was sent to it"}},
		{name: "http realm for an https registry, -insecure-realm", tls: true, handler: challenge(`Bearer realm="http://auth.invalid/token",service="r"`),
			args: []string{"-insecure-realm"}, code: 1,
			contains: []string{"is plain http while the registry is https", "asking the plain-http realm anyway", "the realm http://auth.invalid/token is unreachable"}},
		{name: "private IP realm", handler: challenge(`Bearer realm="http://10.1.2.3:1/token",service="r"`), args: []string{"-timeout", "2s"}, code: 1,
			contains: []string{"on the IP address 10.1.2.3", "e.g. http://localhost:1/token"}},
		{name: "no service", handler: challenge(`Bearer realm="http://auth.invalid/token"`), code: 1,
			contains: []string{"names no service"}},
		{name: "locked out", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				w.Header().Set("Retry-After", "30")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			challenge(`Bearer realm="http://localhost:`+r.Host[strings.LastIndex(r.Host, ":")+1:]+`/token",service="r"`)(w, r)
		}, args: []string{"-u", "alice", "-p", "wrong"}, code: 1,
			// No admin call lifts a lock: the hint must not send the operator looking for one.
			contains: []string{"locked the user out", "ends by itself", "gateway.trusted_proxies"}},
		{name: "registry clock off", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", time.Now().Add(-10*time.Minute).UTC().Format(http.TimeFormat))
		}, code: 1, contains: []string{"clocks", "differ by 10m"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			if tc.tls {
				srv = httptest.NewTLSServer(tc.handler)
			} else {
				srv = httptest.NewServer(tc.handler)
			}
			defer srv.Close()
			var out bytes.Buffer
			d := &doctorCmd{tok: tokenCmd{stdin: strings.NewReader(""), stdout: &out, stderr: &out, now: time.Now}, out: &out, now: time.Now, http: srv.Client()}
			code := d.run(context.Background(), append([]string{"-registry", srv.URL}, tc.args...))
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			for _, want := range tc.contains {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out.String())
			}
		})
	}
	var out bytes.Buffer
	d := &doctorCmd{tok: tokenCmd{stdout: &out, stderr: &out}, out: &out, now: time.Now}
	if code := d.run(context.Background(), []string{"-registry", "http://127.0.0.1:1", "-timeout", "2s"}); code != 1 || !strings.Contains(out.String(), "the registry is unreachable") {
		t.Errorf("unreachable registry: exit %d\n%s", code, out.String())
	}
}
