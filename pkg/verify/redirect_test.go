package verify_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/pkg/verify"
)

// TestVerifierRefusesUnsafeRedirects: the keys decide which tokens are trusted, so a
// redirect of the discovery or JWKS fetch off https, or to another host, is not followed
// (whoever answers it would choose the keys); one on the same host is.
func TestVerifierRefusesUnsafeRedirects(t *testing.T) {
	t.Parallel()
	is := newIssuer(t) // plain http, on its own port
	k := is.newest()
	tok := sign(t, k, jose.ES256, k.Key, good(time.Now()), nil)
	to := func(target string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target+r.URL.Path, http.StatusFound)
		}
	}
	offHTTPS := httptest.NewTLSServer(to(is.srv.URL))
	t.Cleanup(offHTTPS.Close)
	otherHost := httptest.NewServer(to(is.srv.URL))
	t.Cleanup(otherHost.Close)
	cases := []struct {
		name string
		url  string
		hc   *http.Client
	}{
		{"https to http", offHTTPS.URL, offHTTPS.Client()},
		{"to another host", otherHost.URL, nil},
	}
	for _, tc := range cases {
		v, err := verify.New(verify.Options{URL: tc.url, Audience: "registry.local", HTTPClient: tc.hc})
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(context.Background(), tok)
		if !errors.Is(err, verify.ErrUnavailable) || !strings.Contains(err.Error(), "redirect") {
			t.Errorf("%s: Verify = %v, want ErrUnavailable naming the refused redirect", tc.name, err)
		}
	}
	if n := is.fetches.Load(); n != 0 {
		t.Errorf("the JWKS behind the redirects was fetched %d time(s)", n)
	}

	// The same host may move its documents.
	sameHost := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/old/") {
			http.Redirect(w, r, strings.TrimPrefix(r.URL.Path, "/old"), http.StatusFound)
			return
		}
		is.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(sameHost.Close)
	v, _ := verify.New(verify.Options{URL: sameHost.URL + "/old", Audience: "registry.local"})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("same-host redirect: %v", err)
	}
}
