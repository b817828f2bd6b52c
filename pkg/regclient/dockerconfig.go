package regclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// KeychainCredentials looks registry (a URL) up in kc the way crane does.
// authn.DefaultKeychain reads docker's config.json ($DOCKER_CONFIG, else ~/.docker, else
// podman's auth.json) and runs the credential helpers it names (credsStore, credHelpers).
// found is false when the keychain holds nothing for the registry's host.
func KeychainCredentials(ctx context.Context, kc authn.Keychain, registry string) (cr Credentials, found bool, err error) {
	u, err := url.Parse(registry)
	if err != nil || u.Host == "" {
		return Credentials{}, false, fmt.Errorf("registry %q is not a URL", registry)
	}
	host := configKey(u.Host)
	auth, err := authn.Resolve(ctx, kc, hostResource(host))
	if err != nil {
		return Credentials{}, false, fmt.Errorf("docker config for %s: %w", host, err)
	}
	if auth == authn.Anonymous {
		return Credentials{}, false, nil
	}
	cfg, err := authn.Authorization(ctx, auth)
	if err != nil {
		return Credentials{}, false, fmt.Errorf("docker config for %s: %w", host, err)
	}
	if cfg.Username == "" && cfg.Password == "" && cfg.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(cfg.Auth)
		user, pass, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok {
			return Credentials{}, false, fmt.Errorf("docker config for %s: the auth field is not base64 of user:password", host)
		}
		cfg.Username, cfg.Password = user, pass
	}
	switch {
	case cfg.IdentityToken != "":
		user := cfg.Username
		if user == "<token>" { // the credential helpers' marker for an identity token
			user = ""
		}
		return Credentials{Username: user, IdentityToken: cfg.IdentityToken}, true, nil
	case cfg.Username != "" || cfg.Password != "":
		return Credentials{Username: cfg.Username, Password: cfg.Password}, true, nil
	case cfg.RegistryToken != "":
		return Credentials{}, false, fmt.Errorf("docker config for %s holds a registry token, not credentials: there is nothing to exchange", host)
	}
	return Credentials{}, false, nil
}

// configKey is the host docker's config knows the registry by: Docker Hub's API host and
// alias are stored under index.docker.io (which the keychain maps to its historical key).
func configKey(host string) string {
	switch host {
	case "registry-1.docker.io", "docker.io":
		return "index.docker.io"
	}
	return host
}

// hostResource is a registry host as the keychain wants it.
type hostResource string

func (h hostResource) String() string      { return string(h) }
func (h hostResource) RegistryStr() string { return string(h) }
