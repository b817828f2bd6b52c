//go:build e2e

package e2e

// Policy as code against the real binary: a watched policy directory edited under token
// load, a broken edit that must not replace the serving policy, and an HTTP bundle server
// (signed bundles, ETag) that the authz service waits for before it is ready.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/pkg/regclient"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
	"github.com/portcullis-dev/portcullis/services/authz/opa/opatest"
)

// pullFromData grants authenticated callers each action on the repositories data.grants
// lists under it.
const pullFromData = `package portcullis.authz

allowed contains [s.type, s.class, s.name, a] if {
	not input.identity.anonymous
	some s in input.scopes
	s.type == "repository"
	some a in s.actions
	s.name in object.get(data.grants, a, [])
}
`

const policyAdminSecret = "e2e-policy-admin-secret-0123456789abcdef"

// policyPortcullis is an all-in-one Portcullis with the admin REST API.
type policyPortcullis struct {
	*portcullis
	adminHTTP string
}

func writePolicyAdmin(t *testing.T) (admin app.AdminConfig, httpBase string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(policyAdminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	return app.AdminConfig{TokenFile: tokenFile, HTTPListen: addr}, "http://" + addr
}

type policyStatus struct {
	Source      string `json:"source"`
	Revision    string `json:"revision"`
	Ready       bool   `json:"ready"`
	LoadedAt    string `json:"loadedAt"`
	LastError   string `json:"lastError"`
	LastErrorAt string `json:"lastErrorAt"`
	LastCheck   string `json:"lastCheck"`
}

func (p *policyPortcullis) status(t *testing.T) policyStatus {
	t.Helper()
	req := mustRequest(t, http.MethodGet, p.adminHTTP+"/v1/policy/status")
	req.Header.Set("Authorization", "Bearer "+policyAdminSecret)
	a := do(t, req)
	if a.status != http.StatusOK {
		t.Fatalf("GET /v1/policy/status: %d %s", a.status, a.body)
	}
	var st policyStatus
	if err := json.Unmarshal(a.body, &st); err != nil {
		t.Fatalf("policy status: %v\n%s", err, a.body)
	}
	return st
}

// grantedActions gets a token as alice for scope and returns the actions it grants there.
func grantedActions(ctx context.Context, pc *portcullis, scope string) (string, error) {
	raw, err := fetchTokenQuiet(ctx, pc.URL+"/token?"+url.Values{"service": {service}, "scope": {scope}}.Encode())
	if err != nil {
		return "", err
	}
	info, err := regclient.Decode(raw)
	if err != nil {
		return "", err
	}
	var got []string
	for _, a := range info.Access {
		got = append(got, a.Actions...)
	}
	return strings.Join(got, ","), nil
}

func waitGranted(t *testing.T, pc *portcullis, scope, want string) time.Duration {
	t.Helper()
	return testutil.WaitFor(t, 15*time.Second, 20*time.Millisecond, fmt.Sprintf("%s to grant %q", scope, want), func() error {
		if got, err := grantedActions(context.Background(), pc, scope); err != nil || got != want {
			return fmt.Errorf("grants %q (err %v)", got, err)
		}
		return nil
	})
}

func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyDirReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	writeAtomically(t, filepath.Join(dir, "policy.rego"), pullFromData)
	writeAtomically(t, filepath.Join(dir, "data.yaml"), "grants:\n  pull: [team/a]\n")
	admin, adminHTTP := writePolicyAdmin(t)
	pc := startAllInOneConfig(t, portcullisConfig{OPA: opa.Config{Dir: dir}, Admin: admin})
	waitUntil(t, "admin REST API", pc.allProcs(), tcpListening(strings.TrimPrefix(adminHTTP, "http://")))
	p := &policyPortcullis{portcullis: pc, adminHTTP: adminHTTP}
	first := p.status(t)
	if !first.Ready || first.Source != "dir "+dir || first.Revision == "" || first.LastError != "" {
		t.Fatalf("policy status at start: %+v", first)
	}
	waitGranted(t, pc, "repository:team/a:pull", "pull")

	// The token's jti is the decision's id, and the decision log (on standard output by
	// default) has the entry: who asked for what, what was granted.
	raw, err := fetchTokenQuiet(context.Background(), pc.URL+"/token?"+url.Values{"service": {service}, "scope": {"repository:team/a:pull,push"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	info, err := regclient.Decode(raw)
	if err != nil || len(info.ID) != 32 {
		t.Fatalf("token jti %q, %v", info.ID, err)
	}
	logContains(t, pc.Procs["all"], `"decision_id":"`+info.ID+`"`)
	entry := grepLines(readLog(t, pc.Procs["all"]), `"decision_id":"`+info.ID+`"`)
	for _, want := range []string{`"msg":"Decision Log"`, `"subject":"alice"`, `"granted":["repository:team/a:pull"]`, `"path":"portcullis/authz/allowed"`} {
		if !strings.Contains(entry, want) {
			t.Errorf("decision log entry lacks %s:\n%s", want, entry)
		}
	}
	if strings.Contains(entry, `alice","password`) || strings.Contains(strings.ToLower(entry), "authorization") {
		t.Errorf("decision log entry carries a credential:\n%s", entry)
	}

	// Token requests from four clients all along: none may fail while the policy changes.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var okN, failN atomic.Int64
	var failMu sync.Mutex
	var failures []string
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_, err := grantedActions(ctx, pc, "repository:team/b:pull,push")
				switch {
				case ctx.Err() != nil:
				case err != nil:
					failN.Add(1)
					failMu.Lock()
					failures = append(failures, err.Error())
					failMu.Unlock()
				default:
					okN.Add(1)
				}
			}
		}()
	}

	writeAtomically(t, filepath.Join(dir, "data.yaml"), "grants:\n  pull: [team/a, team/b]\n")
	t.Logf("data edit in decisions after %s", waitGranted(t, pc, "repository:team/b:pull,push", "pull").Round(time.Millisecond))
	writeAtomically(t, filepath.Join(dir, "data.yaml"), "grants:\n  pull: [team/a, team/b]\n  push: [team/b]\n")
	t.Logf("second data edit in decisions after %s", waitGranted(t, pc, "repository:team/b:pull,push", "pull,push").Round(time.Millisecond))
	good := p.status(t)

	// A broken policy file: refused, the last good policy keeps serving, the status names it.
	writeAtomically(t, filepath.Join(dir, "policy.rego"), "package portcullis.authz\n\nallowed contains x if {\n")
	deadline := time.Now().Add(15 * time.Second)
	for p.status(t).LastError == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	st := p.status(t)
	if st.LastError == "" || !strings.Contains(st.LastError, filepath.Join(dir, "policy.rego")) || st.Revision != good.Revision {
		t.Fatalf("after a broken edit: status %+v, want the file named in last_error and revision %s kept", st, good.Revision)
	}
	if got, err := grantedActions(context.Background(), pc, "repository:team/b:pull,push"); err != nil || got != "pull,push" {
		t.Fatalf("after a broken edit: %q, %v; want the last good policy's pull,push", got, err)
	}
	metrics := scrape(t, pc.MetricsURL)
	if !strings.Contains(metrics, `portcullis_authz_policy_loads_total{result="error"} 1`) {
		t.Errorf("metrics lack the refused load:\n%s", grepLines(metrics, "portcullis_authz_policy"))
	}

	// A new policy: pull only, whatever data says.
	writeAtomically(t, filepath.Join(dir, "policy.rego"), strings.Replace(pullFromData, "some a in s.actions", "some a in s.actions\n\ta == \"pull\"", 1))
	t.Logf("policy edit in decisions after %s", waitGranted(t, pc, "repository:team/b:pull,push", "pull").Round(time.Millisecond))
	if st := p.status(t); st.LastError != "" || st.Revision == good.Revision {
		t.Errorf("after the fix: %+v", st)
	}

	cancel()
	wg.Wait()
	t.Logf("%d token requests during the edits, %d failed", okN.Load(), failN.Load())
	if failN.Load() != 0 || okN.Load() == 0 {
		t.Errorf("%d token requests failed during policy reloads: %v", failN.Load(), failures[:min(len(failures), 5)])
	}
}

func readLog(t *testing.T, p *proc) string {
	t.Helper()
	b, err := os.ReadFile(p.log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	a := do(t, mustRequest(t, http.MethodGet, url))
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: %d", url, a.status)
	}
	return string(a.body)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestPolicyBundleServer(t *testing.T) {
	key := opatest.Key(t)
	var (
		mu          sync.Mutex
		body        []byte
		etag        string
		notModified atomic.Int32
	)
	set := func(b []byte) {
		mu.Lock()
		defer mu.Unlock()
		body, etag = b, fmt.Sprintf(`"%d"`, time.Now().UnixNano())
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b, tag := body, etag
		mu.Unlock()
		switch {
		case b == nil:
			http.Error(w, "no bundle yet", http.StatusServiceUnavailable)
		case r.Header.Get("If-None-Match") == tag:
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
		default:
			w.Header().Set("ETag", tag)
			_, _ = w.Write(b)
		}
	}))
	defer srv.Close()

	admin, adminHTTP := writePolicyAdmin(t)
	bundle := &opa.BundleConfig{URL: srv.URL + "/bundles/registry.tar.gz",
		Verification: &opa.VerificationConfig{PublicKeyFile: opatest.PublicKeyFile(t, key)}}
	bundle.Polling.MinDelay, bundle.Polling.MaxDelay = config.Duration(time.Second), config.Duration(time.Second)
	pc, _ := writePortcullisConfig(t, portcullisConfig{OPA: opa.Config{Bundle: bundle}, Admin: admin})
	if out, err := runPortcullis(t, "-config", pc.Config, "-verify-config"); err != nil {
		t.Fatalf("-verify-config: %v\n%s", err, out)
	}
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	p := &policyPortcullis{portcullis: pc, adminHTTP: adminHTTP}
	waitUntil(t, "gateway listening", pc.allProcs(), httpStatus(pc.URL+"/healthz", http.StatusOK))
	waitUntil(t, "admin REST API", pc.allProcs(), tcpListening(strings.TrimPrefix(adminHTTP, "http://")))

	// No bundle yet: not ready, and a token request is refused as unavailable, not granted
	// nothing.
	time.Sleep(1500 * time.Millisecond) // at least one poll answered 503
	if a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/readyz")); a.status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before any bundle: %d %s, want 503", a.status, a.body)
	}
	if st := p.status(t); st.Ready || st.LastError == "" || st.LastCheck == "" {
		t.Errorf("policy status before any bundle: %+v, want not ready, the download error and a check time", st)
	}
	a := getToken(t, pc, "alice", "alice", url.Values{"service": {service}, "scope": {"repository:team/a:pull"}})
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("token before any bundle: %d %s, want 503", a.status, a.body)
	}

	set(opatest.Bundle(t, "r1", pullFromData, map[string]any{"grants": map[string]any{"pull": []any{"team/a"}}}, key))
	pc.waitReady(t)
	waitGranted(t, pc, "repository:team/a:pull", "pull")
	if st := p.status(t); st.Revision != "r1" || !st.Ready || st.LastError != "" {
		t.Errorf("after r1: %+v", st)
	}
	deadline := time.Now().Add(15 * time.Second)
	for notModified.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if notModified.Load() == 0 {
		t.Error("the unchanged bundle was never answered 304: no If-None-Match sent")
	}

	set(opatest.Bundle(t, "r2", pullFromData, map[string]any{"grants": map[string]any{"pull": []any{"team/a", "team/b"}}}, key))
	t.Logf("r2 in decisions after %s", waitGranted(t, pc, "repository:team/b:pull", "pull").Round(time.Millisecond))

	// Signed with another key: refused; r2 keeps serving.
	set(opatest.Bundle(t, "r3", pullFromData, map[string]any{"grants": map[string]any{"pull": []any{}}}, opatest.Key(t)))
	deadline = time.Now().Add(15 * time.Second)
	for p.status(t).LastError == "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if st := p.status(t); st.Revision != "r2" || st.LastError == "" {
		t.Fatalf("after a bundle signed by another key: %+v", st)
	}
	if got, err := grantedActions(context.Background(), pc, "repository:team/b:pull"); err != nil || got != "pull" {
		t.Errorf("after the forged bundle: %q, %v", got, err)
	}
	if !slices.Contains(strings.Split(scrape(t, pc.MetricsURL), "\n"), `portcullis_authz_policy_loads_total{result="ok"} 2`) {
		t.Errorf("metrics: %s", grepLines(scrape(t, pc.MetricsURL), "portcullis_authz_policy_loads_total"))
	}
}
