package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	"github.com/portcullis-dev/portcullis/internal/testenv/credhelpertest"
)

// logoutApp is a real Portcullis (all targets) with an admin API.
func logoutApp(t *testing.T) (*app.App, *app.Config) {
	t.Helper()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen, cfg.Gateway.MetricsListen = "127.0.0.1:0", "127.0.0.1:0"
	apptest.WithAdmin(t, cfg)
	return apptest.Start(t, cfg, "all"), cfg
}

// challengingRegistry is a registry's /v2/ that sends its clients to realm, as distribution
// configured for Portcullis does; tls serves it over https.
func challengingRegistry(t *testing.T, realm string, tls bool) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="registry.local"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	srv := httptest.NewUnstartedServer(h)
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func writeDockerConfig(t *testing.T, dir string, cfg map[string]any) string {
	t.Helper()
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readDockerConfig(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return m
}

// TestLogout: `portcullis logout HOST` against a real Portcullis. With an identity token the
// session ends at the gateway's RFC 7009 endpoint (found in its metadata) and the entry goes;
// a password entry just goes; when the session cannot be ended the entry stays (exit 1) unless
// -force; an https registry with an http realm is refused unless -insecure-realm.
func TestLogout(t *testing.T) {
	t.Parallel()
	a, _ := logoutApp(t)
	gwRealm := "http://" + a.GatewayAddr + "/token"
	// A token server that is down, and one that answers 503 at its revocation endpoint.
	down := httptest.NewServer(http.NotFoundHandler())
	downRealm := down.URL + "/token"
	down.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-authorization-server" {
			_, _ = io.WriteString(w, `{"revocation_endpoint":"/revoke"}`)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"temporarily_unavailable"}`)
	}))
	t.Cleanup(failing.Close)

	cases := []struct {
		name     string
		realm    string
		tls      bool
		password bool // a password entry instead of an identity token
		flags    []string
		wantErr  string // "" = success
		wantOut  []string
		wantGone bool // the entry is removed
		wantEnd  bool // the session ended
	}{
		{name: "identity token", realm: gwRealm, wantGone: true, wantEnd: true,
			wantOut: []string{"session ended at http://localhost:", "/revoke; removed 127.0.0.1:"}},
		{name: "flags after the registry", realm: gwRealm, flags: []string{"-timeout", "10s"}, wantGone: true, wantEnd: true,
			wantOut: []string{"session ended at"}},
		{name: "password entry", realm: gwRealm, password: true, wantGone: true,
			wantOut: []string{"no session to end", "removed 127.0.0.1:"}},
		{name: "token server down", realm: downRealm, wantErr: "the session may still be live: the entry is kept (-force removes it anyway)"},
		{name: "token server down, -force", realm: downRealm, flags: []string{"-force"}, wantGone: true, wantOut: []string{"removed 127.0.0.1:"}},
		{name: "revocation answers 503", realm: failing.URL + "/token", wantErr: "503"},
		{name: "https registry, http realm", realm: gwRealm, tls: true, wantErr: "plain http"},
		{name: "https registry, http realm, -insecure-realm", realm: gwRealm, tls: true, flags: []string{"-insecure-realm"},
			wantGone: true, wantEnd: true, wantOut: []string{"session ended at"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := challengingRegistry(t, tc.realm, tc.tls)
			host := strings.TrimPrefix(strings.TrimPrefix(reg.URL, "http://"), "https://")
			arg := host
			if tc.tls {
				arg = "https://" + host // 127.0.0.1 is plain http unless said otherwise
			}
			rt := apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
			other := apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
			entry := map[string]any{"identitytoken": rt}
			if tc.password {
				entry = map[string]any{"auth": "YWxpY2U6YWxpY2U="}
			}
			dir := t.TempDir()
			path := writeDockerConfig(t, dir, map[string]any{
				"auths":       map[string]any{host: entry, "registry.example.com": map[string]any{"auth": "Ym9iOnB3"}},
				"HttpHeaders": map[string]any{"X-Meta": "kept"},
			})
			args := append([]string{"-docker-config", dir, arg}, tc.flags...)
			var out, errb bytes.Buffer
			err := (&logoutCmd{stdout: &out, stderr: &errb, http: reg.Client()}).exec(t.Context(), args)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("logout: %v\nstderr: %s", err, errb.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("logout: %v, want an error containing %q", err, tc.wantErr)
			case tc.wantErr != "" && exitCode(err) != 1:
				t.Fatalf("exit code %d, want 1", exitCode(err))
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("stdout %q, want it to say %q", out.String(), w)
				}
			}
			if strings.Contains(out.String()+errb.String(), rt) || (err != nil && strings.Contains(err.Error(), rt)) {
				t.Fatal("logout printed the refresh token")
			}
			cfg := readDockerConfig(t, path)
			auths, _ := cfg["auths"].(map[string]any)
			if _, kept := auths[host]; kept == tc.wantGone {
				t.Fatalf("entry kept = %v, want %v: %v", kept, !tc.wantGone, cfg)
			}
			if auths["registry.example.com"] == nil || cfg["HttpHeaders"] == nil {
				t.Fatalf("other keys lost: %v", cfg)
			}
			if fi, _ := os.Stat(path); tc.wantGone && fi.Mode().Perm() != 0o600 {
				t.Errorf("config.json mode %v after logout, want 0600", fi.Mode().Perm())
			}
			code, ans := apptest.Refresh(t, a.GatewayAddr, rt)
			if ended := code == 400 && ans["error"] == "invalid_grant"; ended != tc.wantEnd {
				t.Fatalf("refresh after logout: %d %v; want the session ended: %v", code, ans, tc.wantEnd)
			}
			if code, _ := apptest.Refresh(t, a.GatewayAddr, other); code != 200 {
				t.Fatalf("another session of the same user: refresh %d after logout, want 200", code)
			}
		})
	}

	t.Run("not logged in", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		out, err := cli(t, "logout", "-docker-config", dir, "localhost:5999")
		if err != nil || !strings.Contains(out, "not logged in to localhost:5999") {
			t.Fatalf("logout: %v %q", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
			t.Fatal("logout created a config.json with nothing to remove")
		}
	})
	t.Run("usage", func(t *testing.T) {
		t.Parallel()
		var out, errb bytes.Buffer
		if err := run(t.Context(), []string{"logout", "-h"}, &out, &errb); err != nil ||
			!strings.Contains(errb.String(), "RFC 7009") || !strings.Contains(errb.String(), "-force") {
			t.Errorf("logout -h: %v\n%s", err, errb.String())
		}
		for _, args := range [][]string{{"logout"}, {"logout", "a.example", "b.example"}, {"logout", "ftp://a.example"},
			{"logout", "user@a.example"}, {"logout", "-timeout", "0s", "a.example"}, {"logout", "-nope", "a.example"}} {
			if _, err := cli(t, args...); exitCode(err) != 2 {
				t.Errorf("%q: %v (exit %d), want a usage error (2)", args, err, exitCode(err))
			}
		}
	})
}

// TestLogoutCredentialHelper: docker with credsStore keeps the identity token in the helper
// and an empty entry in config.json. logout gets the token from the helper (`get`), ends its
// session, erases it (`erase`) and removes the empty entry; the helper's other entries stay.
// Not parallel: the helper is found on $PATH.
func TestLogoutCredentialHelper(t *testing.T) {
	a, _ := logoutApp(t)
	reg := challengingRegistry(t, "http://"+a.GatewayAddr+"/token", false)
	host := strings.TrimPrefix(reg.URL, "http://")
	rt := apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
	bin := t.TempDir()
	store := credhelpertest.Build(t, bin, "pctest", map[string][2]string{
		host:                   {"<token>", rt},
		"registry.example.com": {"bob", "pw"},
	})
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	path := writeDockerConfig(t, dir, map[string]any{"auths": map[string]any{host: map[string]any{}}, "credsStore": "pctest"})

	out, err := cli(t, "logout", "-docker-config", dir, host)
	if err != nil {
		t.Fatalf("logout: %v", err)
	}
	for _, w := range []string{"session ended at", "erased " + host + " from docker-credential-pctest", "removed " + host + " from " + path} {
		if !strings.Contains(out, w) {
			t.Errorf("stdout %q, want %q", out, w)
		}
	}
	if code, _ := apptest.Refresh(t, a.GatewayAddr, rt); code != 400 {
		t.Fatalf("refresh after logout: %d, want 400", code)
	}
	data, _ := os.ReadFile(store)
	if strings.Contains(string(data), rt) || !strings.Contains(string(data), "registry.example.com") {
		t.Fatalf("helper store after logout: %s", data)
	}
	cfg := readDockerConfig(t, path)
	if auths, _ := cfg["auths"].(map[string]any); auths[host] != nil || cfg["credsStore"] != "pctest" {
		t.Fatalf("config after logout: %v", cfg)
	}
	// authn counts the revocation with the admin API's.
	_, metrics := apptest.Get(t, http.DefaultClient, "http://"+a.MetricsAddr+"/metrics", nil)
	if want := `portcullis_authn_session_events_total{event="revoked"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q", want)
	}
	// Again: the helper and the file hold nothing now.
	if out, err := cli(t, "logout", "-docker-config", dir, host); err != nil || !strings.Contains(out, "not logged in") {
		t.Fatalf("second logout: %v %q", err, out)
	}
}
