// Package credhelpertest builds a docker credential helper for tests: a real program speaking
// the docker-credential-helpers protocol (get, store, erase, list) on a JSON file, so the code
// under test runs it exactly as docker would.
package credhelpertest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Build compiles the helper as dir/docker-credential-<name>, seeded with entries (server URL →
// {Username, Secret}; an identity token has the Username "<token>"), and returns the path of
// its store, store.json beside it. Put dir first on $PATH to use it.
func Build(t testing.TB, dir, name string, entries map[string][2]string) (store string) {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("credhelpertest: cannot find its own source")
	}
	out := filepath.Join(dir, "docker-credential-"+name)
	cmd := exec.Command("go", "build", "-o", out, "./helper")
	cmd.Dir = filepath.Dir(self)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the credential helper: %v\n%s", err, b)
	}
	type creds struct{ ServerURL, Username, Secret string }
	m := map[string]creds{}
	for url, c := range entries {
		m[url] = creds{ServerURL: url, Username: c[0], Secret: c[1]}
	}
	data, _ := json.Marshal(m)
	store = filepath.Join(dir, "store.json")
	if err := os.WriteFile(store, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return store
}
