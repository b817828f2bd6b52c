package regclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestRevocationEndpoint(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		status    int
		body      string
		tls       bool
		want      string // "{origin}" is the server's URL
		wantGuess bool
		wantErr   string
	}{
		{name: "absolute", status: 200, body: `{"revocation_endpoint":"{origin}/oauth/revoke"}`, want: "{origin}/oauth/revoke"},
		{name: "another host", status: 200, body: `{"revocation_endpoint":"http://revoke.example/r"}`, want: "http://revoke.example/r"},
		{name: "relative", status: 200, body: `{"revocation_endpoint":"/revoke"}`, want: "{origin}/revoke"},
		{name: "no metadata", status: 404, body: `{"error":"not_found"}`, want: "{origin}/revoke", wantGuess: true},
		{name: "metadata without it", status: 200, body: `{"token_endpoint":"/token"}`, wantErr: "lists no revocation_endpoint"},
		{name: "not JSON", status: 200, body: `<html>`, wantErr: "not JSON"},
		{name: "not http", status: 200, body: `{"revocation_endpoint":"javascript:alert(1)"}`, wantErr: "not an http(s) URL"},
		{name: "server error", status: 500, body: `{"error":"server_error"}`, wantErr: "500"},
		{name: "https realm, http endpoint", tls: true, status: 200, body: `{"revocation_endpoint":"http://example.com/revoke"}`, wantErr: "in clear"},
		{name: "https realm, https endpoint", tls: true, status: 200, body: `{"revocation_endpoint":"{origin}/revoke"}`, want: "{origin}/revoke"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var origin string
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/.well-known/oauth-authorization-server" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, strings.ReplaceAll(tc.body, "{origin}", origin))
			})
			srv := httptest.NewUnstartedServer(h)
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			origin = srv.URL
			c := &Client{HTTP: srv.Client()}
			got, err := c.RevocationEndpoint(context.Background(), srv.URL+"/token")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tc.want, "{origin}", origin); got.Endpoint != want || (got.Guessed != "") != tc.wantGuess {
				t.Fatalf("got %+v, want %s (guessed: %v)", got, want, tc.wantGuess)
			}
		})
	}
	if _, err := (&Client{HTTP: http.DefaultClient}).RevocationEndpoint(context.Background(), "ftp://x/token"); err == nil {
		t.Fatal("an ftp realm was followed")
	}
}

func TestRevoke(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		status     int
		body       string
		wantErr    string
		wantStatus int
	}{
		{name: "revoked", status: 200},
		{name: "unsupported", status: 400, body: `{"error":"unsupported_token_type","error_description":"no"}`, wantErr: "unsupported_token_type", wantStatus: 400},
		{name: "unavailable", status: 503, body: `{"error":"temporarily_unavailable"}`, wantErr: "503", wantStatus: 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got url.Values
			var query, ctype, method string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				method, query, ctype = r.Method, r.URL.RawQuery, r.Header.Get("Content-Type")
				_ = r.ParseForm()
				got = r.PostForm
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c := &Client{HTTP: srv.Client(), ClientID: "portcullis-logout"}
			err := c.Revoke(context.Background(), srv.URL+"/revoke", "pcr_secret", "refresh_token")
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" {
				var se *StatusError
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &se) || se.StatusCode != tc.wantStatus {
					t.Fatalf("err = %v, want a %d StatusError containing %q", err, tc.wantStatus, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pcr_secret") {
					t.Fatalf("the error shows the token: %v", err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if method != http.MethodPost || query != "" || ctype != "application/x-www-form-urlencoded" ||
				got.Get("token") != "pcr_secret" || got.Get("token_type_hint") != "refresh_token" || got.Get("client_id") != "portcullis-logout" {
				t.Fatalf("request %s ?%s %s form %v", method, query, ctype, got)
			}
		})
	}
	t.Run("a redirect to another host is not followed", func(t *testing.T) {
		t.Parallel()
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Error("the token followed a redirect to another host")
		}))
		t.Cleanup(other.Close)
		srv := httptest.NewServer(http.RedirectHandler(strings.Replace(other.URL, "127.0.0.1", "localhost", 1)+"/revoke", http.StatusTemporaryRedirect))
		t.Cleanup(srv.Close)
		err := (&Client{HTTP: srv.Client()}).Revoke(context.Background(), srv.URL+"/revoke", "pcr_secret", "")
		if !errors.Is(err, ErrUnsafeRedirect) {
			t.Fatalf("err = %v, want ErrUnsafeRedirect", err)
		}
	})
}
