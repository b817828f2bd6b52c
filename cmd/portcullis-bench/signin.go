package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"
)

// benchSignIn measures what people signed in through the identity provider hold, all-in-one:
// personal access token logins (GET /token with Basic bench:<pat_ secret>, cache on and off;
// target within 80 % of warm Basic) and the cost of one device-flow poll (POST /token with the
// RFC 8628 device_code grant while the flow waits for approval: a store read and write, then
// authorization_pending or slow_down). Token exchange has its row with the workload runs.
func benchSignIn(bin, dir string, o options, warmBasic float64) error {
	if err := os.WriteFile(adminTokenFile(dir), []byte("bench-admin-secret-0123456789abcdef\n"), 0o600); err != nil {
		return err
	}
	fmt.Printf("\nPersonal access tokens (pat backend, SQLite state store) and device-flow polls, all-in-one, 1 scope; PAT target >= x0.80 warm Basic\n")
	for _, cold := range []bool{false, true} {
		sc := scenario{scopes: 1, pats: true, cold: cold}
		name := "all-in-one PAT login, login cache"
		if cold {
			name = "all-in-one PAT login, no cache: store read each"
		}
		res, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
			creds, err := createPATs(bin, dir, strings.TrimPrefix(s.adminAddr, "http://"), o.ldapUsers)
			if err != nil {
				return result{}, err
			}
			return s.measure(func() (result, error) { return closedLoop(robotGrant(s.url, creds), o.conc, o.dur) })
		})
		if err != nil {
			return err
		}
		res.print(name, ratio(res.rate(), warmBasic, "warm Basic"))
	}
	res, err := withServerAt(bin, dir, scenario{scopes: 1}, "", func(s server) (result, error) {
		codes, err := startDeviceFlows(s.url, o.conc)
		if err != nil {
			return result{}, err
		}
		return s.measure(func() (result, error) { return closedLoop(devicePoll(s.url, codes), o.conc, o.dur) })
	})
	if err != nil {
		return fmt.Errorf("device flow: %w", err)
	}
	res.print("all-in-one device-flow poll (pending; per poll)")
	return nil
}

// createPATs creates n personal access tokens of the bench user through the admin API and
// returns their Basic credentials (the owner's subject as the user name).
func createPATs(bin, dir, adminAddr string, n int) ([]string, error) {
	var creds []string
	for i := range n {
		name := fmt.Sprintf("bench-pat%d", i)
		out, err := exec.Command(bin, "pats", "create", "-addr", adminAddr, "-admin-token-file", adminTokenFile(dir),
			"-owner", "bench", "-name", name, "-expires", "24h", "-o", "json").Output()
		if err != nil {
			return nil, fmt.Errorf("pats create %s: %w", name, err)
		}
		var resp struct {
			Secret string `json:"secret"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || !strings.HasPrefix(resp.Secret, "pat_") {
			return nil, fmt.Errorf("pats create %s: no secret in the answer (%v)", name, err)
		}
		creds = append(creds, "bench:"+resp.Secret)
	}
	return creds, nil
}

// startDeviceFlows starts n RFC 8628 flows (POST /device_authorization) and returns their
// device codes; nobody approves them.
func startDeviceFlows(base string, n int) ([]string, error) {
	var codes []string
	for range n {
		resp, err := http.PostForm(base+"/device_authorization", url.Values{
			"client_id": {"portcullis-bench"}, "service": {"registry.local"}, "scope": {"repository:bench/app0:pull"}})
		if err != nil {
			return nil, err
		}
		var out struct {
			DeviceCode string `json:"device_code"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || out.DeviceCode == "" {
			return nil, fmt.Errorf("POST /device_authorization: status %d (%v)", resp.StatusCode, err)
		}
		codes = append(codes, out.DeviceCode)
	}
	return codes, nil
}

// devicePoll is a CLI polling its pending flow: POST /token with the device_code grant. The
// answer must be RFC 8628's 400 authorization_pending or slow_down (the bench polls faster
// than the interval; both cost the same store read and write).
func devicePoll(base string, codes []string) grant {
	bodies := make([]string, len(codes))
	for i, c := range codes {
		bodies[i] = url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"device_code": {c}, "client_id": {"portcullis-bench"}}.Encode()
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(bodies[i%len(bodies)]))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		d := time.Since(start)
		if resp.StatusCode != http.StatusBadRequest ||
			!(bytes.Contains(body, []byte(`"authorization_pending"`)) || bytes.Contains(body, []byte(`"slow_down"`))) {
			return 0, fmt.Errorf("device poll: status %d", resp.StatusCode)
		}
		return d, nil
	}
}
