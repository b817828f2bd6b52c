//go:build e2e

package e2e

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

// TestPolicyBundlePlainHTTPUnsigned: the real binary refuses an unsigned bundle from a
// plain-http bundle server, at -verify-config and at start, and runs with insecure: true on
// that bundle, saying so in a WARN.
func TestPolicyBundlePlainHTTPUnsigned(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no bundle yet", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	unsigned := &opa.BundleConfig{URL: srv.URL + "/bundles/registry.tar.gz"}

	pc, cfg, _ := newPortcullisConfig(t, portcullisConfig{OPA: opa.Config{Bundle: unsigned}})
	pc.Config = writeInvalidConfig(t, pc.Dir, cfg, "plain http without verification")
	out, err := runPortcullis(t, "-config", pc.Config, "-verify-config")
	if err == nil || !strings.Contains(out, "plain http without verification") || !strings.Contains(out, "insecure: true") {
		t.Errorf("-verify-config of an unsigned plain-http bundle: %v, want refused naming insecure: true", err)
	}
	out, err = runPortcullis(t, "-config", pc.Config, "-target=all")
	if err == nil || !strings.Contains(out, "plain http without verification") {
		t.Errorf("start with an unsigned plain-http bundle: %v, want refused", err)
	}

	unsigned.Insecure = true
	pc, _ = writePortcullisConfig(t, portcullisConfig{OPA: opa.Config{Bundle: unsigned}})
	if out, err := runPortcullis(t, "-config", pc.Config, "-verify-config"); err != nil {
		t.Fatalf("-verify-config with insecure: true: %v\n%s", err, out)
	}
	pc.Procs["all"] = startProc(t, "portcullis-all", portcullisBin(t), "-config", pc.Config, "-target=all")
	waitUntil(t, "gateway listening", pc.allProcs(), httpStatus(pc.URL+"/healthz", http.StatusOK))
	log, err := os.ReadFile(pc.Procs["all"].log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "WARN") || !strings.Contains(string(log), "plain http unsigned") {
		t.Errorf("no WARN about the insecure bundle in the log:\n%s", log)
	}
}
