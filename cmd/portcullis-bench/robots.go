package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// adminTokenFile holds the admin API's secret, which robots are created with.
func adminTokenFile(dir string) string { return filepath.Join(dir, "admin-token") }

// benchRobots measures robot-key logins all-in-one: GET /token with Basic <robot>:<pcp_ key>
// for robots created through the admin API (portcullis robots create). A robot key is routed to
// the robot backend by its prefix (no bcrypt); the backend hashes it and reads the robot from
// the state store (SQLite here), and the login cache keeps a robot at most a second, so that a
// revoke is seen within one. With the cache off, every request reads the store.
func benchRobots(bin, dir string, o options) error {
	if err := os.WriteFile(adminTokenFile(dir), []byte("bench-admin-secret-0123456789abcdef\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("\nRobot keys (pcp_ API keys; robot backend after htpasswd in the chain, SQLite state store), all-in-one, %d robots shared out, 1 scope; target >= 3,000 tokens/s\n", o.ldapUsers)
	for _, cold := range []bool{false, true} {
		sc := scenario{scopes: 1, robots: true, cold: cold}
		name := "all-in-one robot key, login cache (<= 1 s)"
		if cold {
			name = "all-in-one robot key, no cache: store read each"
		}
		var adminAddr string
		res, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
			adminAddr = strings.TrimPrefix(s.adminAddr, "http://")
			creds, err := createRobots(bin, dir, adminAddr, o.ldapUsers)
			if err != nil {
				return result{}, err
			}
			return s.measure(func() (result, error) { return closedLoop(robotGrant(s.url, creds), o.conc, o.dur) })
		})
		if err != nil {
			return err
		}
		res.print(name)
	}
	return nil
}

// createRobots creates n robots in group admins (what the bench user's scopes need) through
// the admin API and returns their Basic credentials.
func createRobots(bin, dir, adminAddr string, n int) ([]string, error) {
	var creds []string
	for i := range n {
		name := fmt.Sprintf("bench-robot%d", i)
		out, err := exec.Command(bin, "robots", "create", "-addr", adminAddr, "-admin-token-file", adminTokenFile(dir),
			"-name", name, "-group", "admins", "-o", "json").Output()
		if err != nil {
			return nil, fmt.Errorf("robots create %s: %w", name, err)
		}
		var resp struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || !strings.HasPrefix(resp.Key, "pcp_") {
			return nil, fmt.Errorf("robots create %s: no key in %q (%v)", name, out, err)
		}
		creds = append(creds, name+":"+resp.Key)
	}
	return creds, nil
}

func robotGrant(base string, creds []string) grant {
	url := tokenURL(base, 1)
	headers := make([]string, len(creds))
	for i, c := range creds {
		headers[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(c))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", headers[i%len(headers)])
		return timed(c, req, []byte(`"token"`))
	}
}
