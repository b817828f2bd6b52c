package regclient

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DockerConfigDir is the directory of docker's config.json as docker finds it:
// $DOCKER_CONFIG, else ~/.docker.
func DockerConfigDir() (string, error) {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no $DOCKER_CONFIG and no home directory: %w", err)
	}
	return filepath.Join(home, ".docker"), nil
}

// DockerConfigFile is docker's config.json read to be changed and written back. Only the
// auths entries it is asked to remove change: every other key and entry is written back as
// it was read (the top-level keys in sorted order, as a JSON object has none).
type DockerConfigFile struct {
	// Path is the file; it need not exist (then it reads as empty).
	Path  string
	top   map[string]json.RawMessage
	auths map[string]json.RawMessage
}

// AuthEntry is one auths entry of docker's config, or what a credential helper holds.
type AuthEntry struct {
	// Key is the entry's key in auths ("localhost:5000", "https://index.docker.io/v1/") or
	// the server URL a credential helper knows it by.
	Key      string
	Username string
	Password string
	// IdentityToken is a refresh token (docker login with a token server that gives one).
	IdentityToken string
}

// LoadDockerConfig reads dir/config.json; a missing file is an empty config.
func LoadDockerConfig(dir string) (*DockerConfigFile, error) {
	f := &DockerConfigFile{Path: filepath.Join(dir, "config.json"), top: map[string]json.RawMessage{}, auths: map[string]json.RawMessage{}}
	data, err := os.ReadFile(f.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(data, &f.top); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %v", f.Path, err)
	}
	if f.top == nil {
		f.top = map[string]json.RawMessage{}
	}
	if raw, ok := f.top["auths"]; ok && !isJSONNull(raw) {
		if err := json.Unmarshal(raw, &f.auths); err != nil {
			return nil, fmt.Errorf("%s: auths is not an object: %v", f.Path, err)
		}
		if f.auths == nil {
			f.auths = map[string]json.RawMessage{}
		}
	}
	return f, nil
}

func isJSONNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// CredentialHelper names the helper that holds host's credentials, as docker chooses it:
// credHelpers[host], else credsStore; "" when the file itself holds them.
func (f *DockerConfigFile) CredentialHelper(host string) string {
	host = configKey(host)
	var helpers map[string]string
	if raw, ok := f.top["credHelpers"]; ok {
		_ = json.Unmarshal(raw, &helpers)
	}
	if h := helpers[host]; h != "" {
		return h
	}
	var store string
	if raw, ok := f.top["credsStore"]; ok {
		_ = json.Unmarshal(raw, &store)
	}
	return store
}

// Auths are the auths entries for host (a registry host, "localhost:5000"): every key that
// names it, with or without a scheme or path, as docker matches them. An entry that only marks
// a credential helper's login ({}) is listed too, with nothing in it.
func (f *DockerConfigFile) Auths(host string) ([]AuthEntry, error) {
	host = configKey(host)
	var out []AuthEntry
	for key, raw := range f.auths {
		if configKey(hostOfKey(key)) != host {
			continue
		}
		var e struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("%s: auths[%q] is not an auth entry: %v", f.Path, key, err)
		}
		ae := AuthEntry{Key: key, Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(e.Auth)
			user, pass, ok := strings.Cut(string(dec), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("%s: auths[%q].auth is not base64 of user:password", f.Path, key)
			}
			ae.Username, ae.Password = user, pass
		}
		out = append(out, ae)
	}
	return out, nil
}

// Remove deletes host's auths entries (Auths's) and returns their keys.
func (f *DockerConfigFile) Remove(host string) []string {
	host = configKey(host)
	var removed []string
	for key := range f.auths {
		if configKey(hostOfKey(key)) == host {
			delete(f.auths, key)
			removed = append(removed, key)
		}
	}
	return removed
}

// SetIdentityToken makes key's auths entry {"auth": base64(username + ":"), "identitytoken":
// token}, as docker login does with a token server that gives a refresh token; with token ""
// the empty entry {} that marks a credential helper's login. The user name with an empty
// password is what docker writes beside the token, and what containers/image (skopeo,
// podman, buildah) needs to use the entry at all: it skips one whose auth does not decode to
// "user:password". An empty username leaves auth out. Other entries are kept (Remove first to
// replace another spelling of the same host).
func (f *DockerConfigFile) SetIdentityToken(key, username, token string) {
	e := map[string]string{}
	if token != "" {
		e["identitytoken"] = token
		if username != "" {
			e["auth"] = base64.StdEncoding.EncodeToString([]byte(username + ":"))
		}
	}
	raw, _ := json.Marshal(e) // a map of strings always marshals
	f.auths[key] = raw
}

// Save writes the file atomically (a temporary file in its directory, renamed over it) with
// mode 0600: it holds secrets. A symbolic link is followed, so the file it points at changes,
// as docker does.
func (f *DockerConfigFile) Save() error {
	auths, err := json.Marshal(f.auths)
	if err != nil {
		return err
	}
	f.top["auths"] = auths
	data, err := json.MarshalIndent(f.top, "", "\t")
	if err != nil {
		return err
	}
	path := f.Path
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config.json-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// hostOfKey is the host an auths key names, as docker's ConvertToHostname reads it: without
// the scheme and anything after the host.
func hostOfKey(key string) string {
	h := key
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	h, _, _ = strings.Cut(h, "/")
	return h
}
