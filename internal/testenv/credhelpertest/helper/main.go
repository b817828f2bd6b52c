// Command helper is a docker credential helper for tests (docker-credential-<name>): get,
// store, erase and list as docker-credential-helpers speak them, on store.json beside the
// executable.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

type creds struct {
	ServerURL, Username, Secret string
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: docker-credential-<name> get|store|erase|list")
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err != nil {
		fail(err)
	}
	path := filepath.Join(filepath.Dir(exe), "store.json")
	store := map[string]creds{}
	if data, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(data, &store); err != nil {
			fail(err)
		}
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "get":
		c, ok := store[strings.TrimSpace(string(in))]
		if !ok {
			fmt.Println("credentials not found in native keychain")
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(c)
		return
	case "list":
		out := map[string]string{}
		for k, c := range store {
			out[k] = c.Username
		}
		_ = json.NewEncoder(os.Stdout).Encode(out)
		return
	case "store":
		var c creds
		if err := json.Unmarshal(in, &c); err != nil {
			fail(err)
		}
		store[c.ServerURL] = c
	case "erase":
		key := strings.TrimSpace(string(in))
		if _, ok := store[key]; !ok {
			fmt.Println("credentials not found in native keychain")
			os.Exit(1)
		}
		delete(store, key)
	default:
		fail(fmt.Errorf("unknown verb %q", os.Args[1]))
	}
	data, _ := json.Marshal(store)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Println(err)
	os.Exit(1)
}
