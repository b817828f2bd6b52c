package opa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa/opatest"
)

// grantsFromData grants alice the actions data.actions lists on repository "app": a policy
// whose decisions change with its data alone.
const grantsFromData = `package portcullis.authz

allowed contains [s.type, s.class, s.name, a] if {
	input.identity.subject == "alice"
	some s in input.scopes
	s.name == "app"
	some a in s.actions
	a in data.actions
}
`

// grantsFixed grants alice push (and nothing else) on repository "app".
const grantsFixed = `package portcullis.authz

allowed contains [s.type, s.class, s.name, "push"] if {
	input.identity.subject == "alice"
	some s in input.scopes
	s.name == "app"
	"push" in s.actions
}
`

var aliceReq = authz.Request{Identity: identity.Identity{Subject: "alice"}, Service: "r",
	Requested: []scope.Scope{{Type: "repository", Name: "app", Actions: []string{"pull", "push", "delete"}}}}

func granted(t *testing.T, a authz.Authorizer) string {
	t.Helper()
	d, err := a.Authorize(context.Background(), aliceReq)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	if len(d.Granted) == 0 {
		return ""
	}
	return strings.Join(d.Granted[0].Actions, ",")
}

// reloadWait bounds every wait for a reload: the reload itself is due within a second, the
// rest is slack for a loaded CI machine (times are measured by make bench, not asserted here).
const reloadWait = 10 * time.Second

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as config management does; the watcher must see it either way.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func openEngine(t *testing.T, c Config, reg prometheus.Registerer) *engine {
	t.Helper()
	a, err := c.Open(context.Background(), authz.Deps{Metrics: reg})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	e := a.(*engine)
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// load runs authorizations from several goroutines until stopped and counts failures:
// a reload must never make a request fail.
func load(t *testing.T, a authz.Authorizer) (stop func() (ok, failed int64)) {
	t.Helper()
	var okN, failN atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := a.Authorize(context.Background(), aliceReq); err != nil {
					failN.Add(1)
				} else {
					okN.Add(1)
				}
			}
		}()
	}
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return okN.Load(), failN.Load()
	}
}

func TestDirReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "policy.rego"), grantsFromData)
	writeFile(t, filepath.Join(dir, "data.yaml"), "actions: [pull]\n")
	reg := prometheus.NewRegistry()
	e := openEngine(t, Config{Dir: dir}, reg)
	if got := granted(t, e); got != "pull" {
		t.Fatalf("granted %q, want pull", got)
	}
	first := e.PolicyStatus(context.Background())
	if !first.Ready || first.Source != "dir "+dir || first.LastError != "" {
		t.Fatalf("status %+v", first)
	}
	stop := load(t, e)

	// Data alone changes: the policy is not compiled again.
	compiler := e.cur.Load().compiler
	writeFile(t, filepath.Join(dir, "data.yaml"), "actions: [pull, push]\n")
	took := testutil.Eventually(t, reloadWait, "new data in decisions", func() bool { return granted(t, e) == "pull,push" })
	t.Logf("data change in decisions after %s", took)
	if e.cur.Load().compiler != compiler {
		t.Error("a data-only change compiled the policy again (new compiler)")
	}

	// The policy changes.
	writeFile(t, filepath.Join(dir, "policy.rego"), grantsFixed)
	took = testutil.Eventually(t, reloadWait, "new policy in decisions", func() bool { return granted(t, e) == "push" })
	t.Logf("policy change in decisions after %s", took)
	good := e.PolicyStatus(context.Background())

	// A broken file: rejected, the last good policy keeps serving, the reason is shown.
	writeFile(t, filepath.Join(dir, "policy.rego"), "package portcullis.authz\n\nallowed contains x if {\n")
	testutil.Eventually(t, reloadWait, "the broken policy reported", func() bool { return e.PolicyStatus(context.Background()).LastError != "" })
	st := e.PolicyStatus(context.Background())
	if st.Revision != good.Revision || !strings.Contains(st.LastError, filepath.Join(dir, "policy.rego")) {
		t.Errorf("after a broken file: status %+v, want revision %s kept and the file named in the error", st, good.Revision)
	}
	if got := granted(t, e); got != "push" {
		t.Errorf("after a broken file: granted %q, want the last good policy's push", got)
	}
	// Broken data likewise.
	writeFile(t, filepath.Join(dir, "policy.rego"), grantsFromData)
	writeFile(t, filepath.Join(dir, "data.yaml"), "actions: [pull\n")
	testutil.Eventually(t, reloadWait, "broken data reported", func() bool {
		return strings.Contains(e.PolicyStatus(context.Background()).LastError, "data.yaml")
	})
	if got := granted(t, e); got != "push" {
		t.Errorf("after broken data: granted %q, want the last good policy's push", got)
	}
	// Fixed: active again, the error cleared.
	writeFile(t, filepath.Join(dir, "data.yaml"), "actions: [delete]\n")
	testutil.Eventually(t, reloadWait, "the fixed policy active", func() bool { return granted(t, e) == "delete" })
	if st := e.PolicyStatus(context.Background()); st.LastError != "" || st.Revision == good.Revision {
		t.Errorf("after the fix: status %+v", st)
	}

	ok, failed := stop()
	t.Logf("%d decisions during the edits, %d failed", ok, failed)
	if failed != 0 || ok == 0 {
		t.Errorf("%d decisions failed during reloads (of %d)", failed, ok+failed)
	}
	if n := promtestutil.ToFloat64(e.loads.WithLabelValues("error")); n < 2 {
		t.Errorf("portcullis_authz_policy_loads_total{result=error} = %v, want ≥ 2", n)
	}
	if n, err := promtestutil.GatherAndCount(reg, "portcullis_authz_policy_loads_total"); err != nil || n != 3 {
		t.Errorf("registered load series: %d, %v", n, err)
	}
}

func TestBundleFile(t *testing.T) {
	key := opatest.Key(t)
	path := filepath.Join(t.TempDir(), "policy.tar.gz")
	if err := os.WriteFile(path, opatest.Bundle(t, "v1", grantsFromData, map[string]any{"actions": []any{"pull"}}, key), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Bundle: &BundleConfig{Path: path, Verification: &VerificationConfig{PublicKeyFile: opatest.PublicKeyFile(t, key)}}}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("Validate: %v", errs)
	}
	e := openEngine(t, cfg, nil)
	if got, st := granted(t, e), e.PolicyStatus(context.Background()); got != "pull" || st.Revision != "v1" {
		t.Fatalf("granted %q, status %+v", got, st)
	}
	writeFile(t, path, string(opatest.Bundle(t, "v2", grantsFixed, nil, key)))
	testutil.Eventually(t, reloadWait, "bundle v2 active", func() bool { return e.PolicyStatus(context.Background()).Revision == "v2" })
	if got := granted(t, e); got != "push" {
		t.Errorf("v2 granted %q, want push", got)
	}
	// Signed by another key: refused, v2 keeps serving.
	writeFile(t, path, string(opatest.Bundle(t, "v3", grantsFromData, map[string]any{"actions": []any{"delete"}}, opatest.Key(t))))
	testutil.Eventually(t, reloadWait, "the forged bundle refused", func() bool { return e.PolicyStatus(context.Background()).LastError != "" })
	if st := e.PolicyStatus(context.Background()); st.Revision != "v2" || !strings.Contains(st.LastError, "verif") {
		t.Errorf("after a bundle signed by another key: %+v", st)
	}
	// Unsigned: refused too when verification is on.
	writeFile(t, path, string(opatest.Bundle(t, "v4", grantsFromData, nil, nil)))
	testutil.Eventually(t, reloadWait, "the unsigned bundle refused", func() bool {
		return e.PolicyStatus(context.Background()).LastErrorAt.After(time.Time{}) && e.PolicyStatus(context.Background()).Revision == "v2" &&
			granted(t, e) == "push"
	})
	// A broken bundle at startup is a startup error naming the file.
	if err := os.WriteFile(path, []byte("not a tarball"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.Open(context.Background(), authz.Deps{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Open with a broken bundle: %v", err)
	}
}

// bundleServer serves one bundle at a time with an ETag and counts 304s.
type bundleServer struct {
	srv        *httptest.Server
	mu         sync.Mutex
	body       []byte
	etag       string
	failFirst  atomic.Int32
	requests   atomic.Int32
	notModfied atomic.Int32
}

func newBundleServer(t *testing.T) *bundleServer {
	t.Helper()
	bs := &bundleServer{}
	bs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bs.requests.Add(1)
		if r.URL.Path != "/bundles/registry.tar.gz" {
			http.NotFound(w, r)
			return
		}
		if bs.failFirst.Add(-1) >= 0 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		bs.mu.Lock()
		body, etag := bs.body, bs.etag
		bs.mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			bs.notModfied.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		_, _ = w.Write(body)
	}))
	t.Cleanup(bs.srv.Close)
	return bs
}

func (bs *bundleServer) set(body []byte) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.body, bs.etag = body, fmt.Sprintf(`"%d"`, time.Now().UnixNano())
}

func TestBundleServer(t *testing.T) {
	key := opatest.Key(t)
	bs := newBundleServer(t)
	bs.set(opatest.Bundle(t, "r1", grantsFromData, map[string]any{"actions": []any{"pull"}}, key))
	bs.failFirst.Store(2)
	cfg := Config{Bundle: &BundleConfig{URL: bs.srv.URL + "/bundles/registry.tar.gz",
		Verification: &VerificationConfig{PublicKeyFile: opatest.PublicKeyFile(t, key)}}}
	cfg.Bundle.Polling.MinDelay, cfg.Bundle.Polling.MaxDelay = config.Duration(time.Second), config.Duration(time.Second)
	e := openEngine(t, cfg, nil)
	// Not ready until the first bundle: a decision is unavailable, not a deny.
	if _, err := e.Authorize(context.Background(), aliceReq); !errors.Is(err, authz.ErrUnavailable) {
		t.Fatalf("before the first bundle: %v, want ErrUnavailable", err)
	}
	select {
	case <-e.Loaded():
	case <-time.After(20 * time.Second):
		t.Fatalf("no bundle loaded; status %+v", e.PolicyStatus(context.Background()))
	}
	if got := granted(t, e); got != "pull" {
		t.Fatalf("r1 granted %q", got)
	}
	testutil.Eventually(t, reloadWait, "an unchanged bundle answered 304", func() bool { return bs.notModfied.Load() > 0 })
	if st := e.PolicyStatus(context.Background()); st.Revision != "r1" || st.LastError != "" || st.LastCheck.IsZero() {
		t.Errorf("after a 304: %+v", st)
	}

	bs.set(opatest.Bundle(t, "r2", grantsFixed, nil, key))
	testutil.Eventually(t, reloadWait, "r2 active", func() bool { return e.PolicyStatus(context.Background()).Revision == "r2" })
	if got := granted(t, e); got != "push" {
		t.Errorf("r2 granted %q", got)
	}

	bs.set(opatest.Bundle(t, "r3", grantsFromData, map[string]any{"actions": []any{"delete"}}, opatest.Key(t)))
	testutil.Eventually(t, reloadWait, "the bundle signed by another key refused", func() bool { return e.PolicyStatus(context.Background()).LastError != "" })
	if st := e.PolicyStatus(context.Background()); st.Revision != "r2" {
		t.Errorf("a bundle signed by another key became active: %+v", st)
	}
	if got := granted(t, e); got != "push" {
		t.Errorf("after the forged bundle: granted %q, want r2's push", got)
	}
}

func TestBundleSettings(t *testing.T) {
	keyFile := opatest.PublicKeyFile(t, opatest.Key(t))
	cases := []struct {
		name string
		c    Config
		want []string
	}{
		{"dir and bundle", Config{Dir: "/x", Bundle: &BundleConfig{Path: "/y"}}, []string{"exclude each other"}},
		{"neither path nor url", Config{Bundle: &BundleConfig{}}, []string{"give path"}},
		{"both", Config{Bundle: &BundleConfig{Path: "/y", URL: "http://h/b"}}, []string{"path and url exclude"}},
		{"bad url and polling and key", Config{Bundle: &BundleConfig{URL: "ftp://h/b", Verification: &VerificationConfig{Algorithm: "none"}}},
			[]string{"not an http(s) URL", "public_key_file is required", `algorithm "none"`}},
		{"missing key file", Config{Bundle: &BundleConfig{URL: "http://h/b", Verification: &VerificationConfig{PublicKeyFile: "/nonexistent"}}},
			[]string{"public_key_file: open /nonexistent"}},
		{"good url", Config{Bundle: &BundleConfig{URL: "https://h/b", Verification: &VerificationConfig{PublicKeyFile: keyFile}}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.c.Validate()
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			all := strings.Join(msgs, "\n")
			if len(tc.want) == 0 && len(errs) > 0 {
				t.Errorf("unexpected: %s", all)
			}
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("errors %q lack %q", all, w)
				}
			}
		})
	}
	slow := Config{Bundle: &BundleConfig{URL: "http://h/b"}}
	slow.Bundle.Polling.MinDelay = config.Duration(100 * time.Millisecond)
	if errs := slow.Validate(); len(errs) == 0 || !slices.ContainsFunc(errs, func(e error) bool { return strings.Contains(e.Error(), "at least 1s") }) {
		t.Errorf("sub-second polling: %v", errs)
	}
}

// TestRevertToActiveClearsError: a broken edit followed by a revert to exactly the active
// policy loads nothing new (same revision), but the directory is no longer broken, so the
// status must not keep reporting the broken edit.
func TestRevertToActiveClearsError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "policy.rego"), grantsFixed)
	e := openEngine(t, Config{Dir: dir}, nil)
	// Reload by hand: the watcher would race the edits below.
	e.stop(context.Background())
	e.stop = nil
	good := e.PolicyStatus(context.Background())

	writeFile(t, filepath.Join(dir, "policy.rego"), "package portcullis.authz\n\nallowed contains x if {\n")
	e.reload(context.Background())
	if st := e.PolicyStatus(context.Background()); st.LastError == "" || st.Revision != good.Revision {
		t.Fatalf("after a broken edit: status %+v, want the error and revision %s kept", st, good.Revision)
	}

	writeFile(t, filepath.Join(dir, "policy.rego"), grantsFixed) // the exact previous content
	e.reload(context.Background())
	st := e.PolicyStatus(context.Background())
	if st.LastError != "" || !st.LastErrorAt.IsZero() {
		t.Errorf("after reverting to the active policy: lastError %q (at %s), want none", st.LastError, st.LastErrorAt)
	}
	if st.Revision != good.Revision {
		t.Errorf("after reverting: revision %s, want %s", st.Revision, good.Revision)
	}
}
