package regclient

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/credhelpertest"
)

const sampleConfig = `{
	"auths": {
		"localhost:5000": {"identitytoken": "pcr_local"},
		"http://localhost:5000/v2/": {"auth": "YWxpY2U6czNjcmV0"},
		"registry.example.com": {"auth": "Ym9iOnB3"},
		"https://index.docker.io/v1/": {"auth": "aHViOmh1Yg=="}
	},
	"credHelpers": {"gcr.io": "gcloud"},
	"credsStore": "desktop",
	"HttpHeaders": {"User-Agent": "x"},
	"currentContext": "colima"
}`

func TestDockerConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(sampleConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := LoadDockerConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Auths("localhost:5000")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b AuthEntry) int { return strings.Compare(a.Key, b.Key) })
	want := []AuthEntry{
		{Key: "http://localhost:5000/v2/", Username: "alice", Password: "s3cret"},
		{Key: "localhost:5000", IdentityToken: "pcr_local"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Auths(localhost:5000) = %+v, want %+v", got, want)
	}
	if hub, _ := f.Auths("docker.io"); len(hub) != 1 || hub[0].Username != "hub" {
		t.Fatalf("Auths(docker.io) = %+v, want the index.docker.io entry", hub)
	}
	for host, helper := range map[string]string{"gcr.io": "gcloud", "localhost:5000": "desktop"} {
		if h := f.CredentialHelper(host); h != helper {
			t.Errorf("CredentialHelper(%s) = %q, want %q", host, h, helper)
		}
	}
	removed := f.Remove("localhost:5000")
	slices.Sort(removed)
	if !slices.Equal(removed, []string{"http://localhost:5000/v2/", "localhost:5000"}) {
		t.Fatalf("Remove = %v", removed)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("after Save: %v, mode %v, want 0600", err, fi.Mode())
	}
	// Every other key and entry is kept as it was.
	var before, after map[string]any
	data, _ := os.ReadFile(f.Path)
	if err := json.Unmarshal([]byte(sampleConfig), &before); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &after); err != nil {
		t.Fatalf("saved config is not JSON: %v\n%s", err, data)
	}
	auths := before["auths"].(map[string]any)
	delete(auths, "localhost:5000")
	delete(auths, "http://localhost:5000/v2/")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("saved config:\n%s\nwant everything but localhost:5000's entries kept", data)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Fatalf("the directory holds %d files after Save, want config.json alone (no temporary file left)", len(left))
	}
}

func TestDockerConfigFileEdges(t *testing.T) {
	t.Parallel()
	t.Run("missing file reads empty and Save creates it", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "new")
		f, err := LoadDockerConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if a, _ := f.Auths("localhost:5000"); len(a) != 0 || f.CredentialHelper("x") != "" {
			t.Fatalf("empty config has %v", a)
		}
		if err := f.Save(); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "config.json")); strings.TrimSpace(string(data)) != "{\n\t\"auths\": {}\n}" {
			t.Fatalf("saved %q", data)
		}
	})
	t.Run("a symlink is followed", func(t *testing.T) {
		t.Parallel()
		if runtime.GOOS == "windows" {
			t.Skip("symlinks")
		}
		dir := t.TempDir()
		real := filepath.Join(dir, "real.json")
		if err := os.WriteFile(real, []byte(`{"auths":{"a.example":{"auth":"eDp5"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, filepath.Join(dir, "config.json")); err != nil {
			t.Fatal(err)
		}
		f, err := LoadDockerConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		f.Remove("a.example")
		if err := f.Save(); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, "config.json")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("config.json is no longer a symlink: %v", err)
		}
		if data, _ := os.ReadFile(real); strings.Contains(string(data), "a.example") {
			t.Fatalf("the link's target still holds the entry: %s", data)
		}
	})
	for name, body := range map[string]string{
		"not JSON":        `{"auths":`,
		"auths not a map": `{"auths":[1]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadDockerConfig(dir); err == nil || !strings.Contains(err.Error(), "config.json") {
				t.Fatalf("LoadDockerConfig: %v, want an error naming the file", err)
			}
		})
	}
	t.Run("bad auth field", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{"h":{"auth":"bm9jb2xvbg=="}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := LoadDockerConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Auths("h"); err == nil || strings.Contains(err.Error(), "nocolon") {
			t.Fatalf("Auths: %v, want an error without the secret", err)
		}
	})
}

// TestCredentialHelper runs a helper the test builds: a program keeping the
// docker-credential-helpers protocol on a JSON file.
func TestCredentialHelper(t *testing.T) {
	bin := t.TempDir()
	store := credhelpertest.Build(t, bin, "pctest", map[string][2]string{
		"localhost:5000":       {"<token>", "pcr_fromhelper"},
		"registry.example.com": {"bob", "pw"},
	})
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx := context.Background()
	e, err := HelperGet(ctx, "pctest", "localhost:5000")
	if err != nil || e != (AuthEntry{Key: "localhost:5000", IdentityToken: "pcr_fromhelper"}) {
		t.Fatalf("get localhost:5000 = %+v, %v", e, err)
	}
	e, err = HelperGet(ctx, "pctest", "registry.example.com")
	if err != nil || e != (AuthEntry{Key: "registry.example.com", Username: "bob", Password: "pw"}) {
		t.Fatalf("get registry.example.com = %+v, %v", e, err)
	}
	if _, err := HelperGet(ctx, "pctest", "nowhere.example"); !errors.Is(err, ErrHelperNotFound) {
		t.Fatalf("get nowhere: %v, want ErrHelperNotFound", err)
	}
	if err := HelperErase(ctx, "pctest", "localhost:5000"); err != nil {
		t.Fatal(err)
	}
	if _, err := HelperGet(ctx, "pctest", "localhost:5000"); !errors.Is(err, ErrHelperNotFound) {
		t.Fatalf("get after erase: %v, want ErrHelperNotFound", err)
	}
	if err := HelperErase(ctx, "pctest", "localhost:5000"); err != nil {
		t.Fatalf("erase again: %v, want nil", err)
	}
	data, _ := os.ReadFile(store)
	if !strings.Contains(string(data), "registry.example.com") || strings.Contains(string(data), "pcr_fromhelper") {
		t.Fatalf("store after erase: %s", data)
	}
	if _, err := HelperGet(ctx, "no-such-helper-here", "localhost:5000"); err == nil || errors.Is(err, ErrHelperNotFound) {
		t.Fatalf("a missing helper program: %v, want an error other than not found", err)
	}
}
