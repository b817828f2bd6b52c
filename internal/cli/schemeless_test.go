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

// TestSchemelessPlainHTTPRegistry: a registry given without a scheme is taken as https
// (as docker does); when it speaks plain HTTP, `token` and `doctor` say the same thing and
// give the -registry to use.
func TestSchemelessPlainHTTPRegistry(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://localhost:1/token",service="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	hostPort := strings.TrimPrefix(srv.URL, "http://")
	wants := []string{"speaks plain HTTP", "-registry " + srv.URL}

	tok := runTokenTest("", "-registry", hostPort, "-timeout", "5s")
	tok.failed(t, wants...)

	var out bytes.Buffer
	d := &doctorCmd{tok: tokenCmd{stdin: strings.NewReader(""), stdout: &out, stderr: &out, now: time.Now}, out: &out, now: time.Now}
	if code := d.run(context.Background(), []string{"-registry", hostPort, "-timeout", "5s"}); code != 1 {
		t.Errorf("doctor: exit %d, want 1 (a problem found)", code)
	}
	for _, w := range wants {
		if !strings.Contains(out.String(), w) {
			t.Errorf("doctor's output lacks %q:\n%s", w, out.String())
		}
	}
}
