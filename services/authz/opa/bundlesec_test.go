package opa

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/plugins/rest"

	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa/opatest"
)

// TestBundleTransportSettings: a bundle over plain http must be signed (verification) or
// said to be insecure, and a bearer token never goes to a plain-http bundle server.
func TestBundleTransportSettings(t *testing.T) {
	keyFile := opatest.PublicKeyFile(t, opatest.Key(t))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	verification := &VerificationConfig{PublicKeyFile: keyFile}
	cases := []struct {
		name string
		b    BundleConfig
		want string // "" when valid
	}{
		{"http, unsigned", BundleConfig{URL: "http://h/b"}, "plain http without verification"},
		{"http, signed", BundleConfig{URL: "http://h/b", Verification: verification}, ""},
		{"http, unsigned, insecure", BundleConfig{URL: "http://h/b", Insecure: true}, ""},
		{"http, insecure, bearer token", BundleConfig{URL: "http://h/b", Insecure: true, BearerTokenFile: tokenFile}, "never sent over plain http"},
		{"https, unsigned", BundleConfig{URL: "https://h/b"}, ""},
		{"http, signed, bearer token", BundleConfig{URL: "http://h/b", Verification: verification, BearerTokenFile: tokenFile}, "never sent over plain http"},
		{"https, bearer token", BundleConfig{URL: "https://h/b", BearerTokenFile: tokenFile}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b
			errs := Config{Bundle: &b}.Validate()
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			all := strings.Join(msgs, "\n")
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("unexpected: %s", all)
			case tc.want != "" && !strings.Contains(all, tc.want):
				t.Errorf("errors %q lack %q", all, tc.want)
			}
		})
	}
}

// TestBundleInsecureAtStart: Open refuses an unsigned plain-http bundle, and with insecure:
// true starts and says so in a WARN.
func TestBundleInsecureAtStart(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	if _, err := (Config{Bundle: &BundleConfig{URL: srv.URL + "/b.tar.gz"}}).Open(context.Background(), authz.Deps{}); err == nil ||
		!strings.Contains(err.Error(), "insecure: true") {
		t.Fatalf("Open of an unsigned http bundle = %v, want refused", err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := Config{Bundle: &BundleConfig{URL: srv.URL + "/b.tar.gz", Insecure: true}}.Open(context.Background(), authz.Deps{Logger: logger})
	if err != nil {
		t.Fatalf("Open with insecure: true: %v", err)
	}
	_ = a.(*engine).Close(context.Background())
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "plain http unsigned") {
		t.Errorf("no WARN about the insecure bundle:\n%s", logs.String())
	}
}

// TestBundleAuth: the bundle client's token goes over https only, is read per request, and
// the client follows no redirect off https or to another host.
func TestBundleAuth(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("t1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &bundleAuth{tokenFile: tokenFile}
	for _, tc := range []struct{ url, want string }{
		{"https://bundles.example/b.tar.gz", "Bearer t1"},
		{"http://bundles.example/b.tar.gz", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		if err := a.Prepare(req); err != nil {
			t.Fatal(err)
		}
		if got := req.Header.Get("Authorization"); got != tc.want {
			t.Errorf("%s: Authorization %q, want %q", tc.url, got, tc.want)
		}
	}
	if err := os.WriteFile(tokenFile, []byte("t2"), 0o600); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://bundles.example/b.tar.gz", nil)
	_ = a.Prepare(req)
	if got := req.Header.Get("Authorization"); got != "Bearer t2" {
		t.Errorf("after the token file changed: %q, want Bearer t2", got)
	}

	timeout := int64(10)
	hc, err := a.NewClient(rest.Config{ResponseHeaderTimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	redirect := func(from, to string) error {
		f, _ := url.Parse(from)
		d, _ := url.Parse(to)
		return hc.CheckRedirect(&http.Request{URL: d}, []*http.Request{{URL: f}})
	}
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{"https://b.example/x", "https://b.example/y", true},
		{"https://b.example/x", "http://b.example/x", false},
		{"https://b.example/x", "https://b.example:8443/x", false},
		{"https://b.example/x", "https://evil.example/x", false},
	} {
		if err := redirect(tc.from, tc.to); (err == nil) != tc.ok {
			t.Errorf("redirect %s → %s: %v, want followed %v", tc.from, tc.to, err, tc.ok)
		}
	}
}
