package regclient

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

// fakeKeychain answers from a map of registry hosts.
type fakeKeychain struct {
	configs map[string]authn.AuthConfig
	err     error
	asked   []string
}

func (k *fakeKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	k.asked = append(k.asked, r.RegistryStr())
	if k.err != nil {
		return nil, k.err
	}
	cfg, ok := k.configs[r.RegistryStr()]
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(cfg), nil
}

func TestKeychainCredentials(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		registry  string
		configs   map[string]authn.AuthConfig
		err       error
		want      Credentials
		wantFound bool
		wantAsked string
		wantErr   string
	}{
		{name: "user and password", registry: "https://reg.example.com:5000", configs: map[string]authn.AuthConfig{"reg.example.com:5000": {Username: "alice", Password: "pw"}},
			want: Credentials{Username: "alice", Password: "pw"}, wantFound: true, wantAsked: "reg.example.com:5000"},
		{name: "auth field only", registry: "http://localhost:5000", configs: map[string]authn.AuthConfig{"localhost:5000": {Auth: "YWxpY2U6cDpX"}},
			want: Credentials{Username: "alice", Password: "p:W"}, wantFound: true, wantAsked: "localhost:5000"},
		{name: "identity token from docker login", registry: "https://reg", configs: map[string]authn.AuthConfig{"reg": {Username: "alice", IdentityToken: "pcr_x"}},
			want: Credentials{Username: "alice", IdentityToken: "pcr_x"}, wantFound: true},
		{name: "identity token from a credential helper", registry: "https://reg", configs: map[string]authn.AuthConfig{"reg": {Username: "<token>", IdentityToken: "pcr_x"}},
			want: Credentials{IdentityToken: "pcr_x"}, wantFound: true},
		{name: "Docker Hub's API host is looked up as index.docker.io", registry: "https://registry-1.docker.io",
			configs: map[string]authn.AuthConfig{"index.docker.io": {Username: "u", Password: "p"}}, want: Credentials{Username: "u", Password: "p"}, wantFound: true, wantAsked: "index.docker.io"},
		{name: "nothing for the host", registry: "https://other", configs: map[string]authn.AuthConfig{"reg": {Username: "u", Password: "p"}}, wantFound: false},
		{name: "registry token", registry: "https://reg", configs: map[string]authn.AuthConfig{"reg": {RegistryToken: "abc"}}, wantErr: "holds a registry token"},
		{name: "bad auth field", registry: "https://reg", configs: map[string]authn.AuthConfig{"reg": {Auth: "!!!"}}, wantErr: "not base64 of user:password"},
		{name: "keychain error", registry: "https://reg", err: errors.New("helper exploded"), wantErr: "docker config for reg: helper exploded"},
		{name: "not a URL", registry: "reg", wantErr: "not a URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kc := &fakeKeychain{configs: tc.configs, err: tc.err}
			got, found, err := KeychainCredentials(context.Background(), kc, tc.registry)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("KeychainCredentials = %v, %v, %v; want an error containing %q", got, found, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || found != tc.wantFound {
				t.Fatalf("KeychainCredentials = %+v, %v, %v; want %+v, %v", got, found, err, tc.want, tc.wantFound)
			}
			if tc.wantAsked != "" && (len(kc.asked) != 1 || kc.asked[0] != tc.wantAsked) {
				t.Fatalf("keychain asked for %q, want %q", kc.asked, tc.wantAsked)
			}
		})
	}
}

// TestKeychainCredentialsDockerConfig reads a real config.json through authn.DefaultKeychain:
// inline auths, and a credHelpers entry that runs a docker-credential-* program on PATH the
// way docker does. It changes the environment, so it does not run in parallel.
func TestKeychainCredentialsDockerConfig(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	cfgDir := filepath.Join(dir, "docker")
	for _, d := range []string{bin, cfgDir, filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The credential helper protocol: "get" as the argument, the server URL on stdin, JSON out.
	helper := `#!/bin/sh
[ "$1" = get ] || exit 1
read server
case "$server" in
helped.example.com) echo '{"ServerURL":"helped.example.com","Username":"bob","Secret":"from-helper"}' ;;
token.example.com) echo '{"ServerURL":"token.example.com","Username":"<token>","Secret":"pcr_helper"}' ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-fake"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	config := `{
  "auths": {"localhost:5000": {"auth": "YWxpY2U6YWxpY2U="}, "id.example.com": {"auth": "YWxpY2U6", "identitytoken": "pcr_login"}},
  "credHelpers": {"helped.example.com": "fake", "token.example.com": "fake", "missing.example.com": "fake"}
}`
	if err := os.WriteFile(filepath.Join(cfgDir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", filepath.Join(dir, "home"))
	t.Setenv("DOCKER_CONFIG", cfgDir)
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(dir, "no-auth.json"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "xdg"))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	cases := []struct {
		registry  string
		want      Credentials
		wantFound bool
	}{
		{"http://localhost:5000", Credentials{Username: "alice", Password: "alice"}, true},
		{"https://id.example.com", Credentials{Username: "alice", IdentityToken: "pcr_login"}, true},
		{"https://helped.example.com", Credentials{Username: "bob", Password: "from-helper"}, true},
		{"https://token.example.com", Credentials{IdentityToken: "pcr_helper"}, true},
		{"https://missing.example.com", Credentials{}, false},
		{"https://unknown.example.com", Credentials{}, false},
	}
	for _, tc := range cases {
		got, found, err := KeychainCredentials(context.Background(), authn.DefaultKeychain, tc.registry)
		if err != nil || got != tc.want || found != tc.wantFound {
			t.Errorf("%s: KeychainCredentials = %+v, %v, %v; want %+v, %v", tc.registry, got, found, err, tc.want, tc.wantFound)
		}
	}
}
