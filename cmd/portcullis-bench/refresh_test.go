package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
)

// The refresh load is docker's request: a form POST with the refresh token, client_id docker
// and a pull scope, cycling through the tokens; an answer without an access token is an error.
func TestRefreshGrant(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/token" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Errorf("%s %s, Content-Type %q", r.Method, r.URL, r.Header.Get("Content-Type"))
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, r.PostForm)
		mu.Unlock()
		if r.PostForm.Get("refresh_token") == "pcr_refused" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"error":"x"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"a","token":"a"}`))
	}))
	defer srv.Close()

	send := refreshGrant(srv.URL, []string{"pcr_a", "pcr_b", "pcr_refused"})
	c := srv.Client()
	for i, wantErr := range []bool{false, false, true, false} {
		if _, err := send(c, i); (err != nil) != wantErr {
			t.Errorf("request %d: error %v, want error %t", i, err, wantErr)
		}
	}
	want := []struct{ token, scope string }{
		{"pcr_a", "repository:bench/app0:pull"},
		{"pcr_b", "repository:bench/app1:pull"},
		{"pcr_refused", "repository:bench/app2:pull"},
		{"pcr_a", "repository:bench/app0:pull"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		f := got[i]
		if f.Get("grant_type") != "refresh_token" || f.Get("client_id") != "docker" || f.Get("service") != "registry.local" ||
			f.Get("refresh_token") != w.token || f.Get("scope") != w.scope {
			t.Errorf("request %d: form %v; want refresh token %s, scope %s", i, f, w.token, w.scope)
		}
	}
}
