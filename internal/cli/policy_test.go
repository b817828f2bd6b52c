package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyTestCommand(t *testing.T) {
	var out bytes.Buffer
	if err := runPolicy(context.Background(), []string{"test", "../../deploy/policies/acl"}, &out, &out); err != nil {
		t.Fatalf("shipped acl tests: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "0 failed, 0 errors") {
		t.Errorf("summary: %s", out.String())
	}

	dir := t.TempDir()
	policy := "package portcullis.authz\n\nallowed contains [\"repository\", \"\", \"x\", \"pull\"] if true\n"
	tests := "package portcullis.authz_test\n\nimport data.portcullis.authz\n\ntest_ok if [\"repository\", \"\", \"x\", \"pull\"] in authz.allowed\n\ntest_wrong if {\n\tprint(\"looking for push\")\n\t[\"repository\", \"\", \"x\", \"push\"] in authz.allowed\n}\n"
	for name, content := range map[string]string{"policy.rego": policy, "policy_test.rego": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	err := runPolicy(context.Background(), []string{"test", "-v", dir}, &out, &out)
	if exitCode(err) != 1 {
		t.Fatalf("a failing test: err %v, want exit 1", err)
	}
	for _, want := range []string{"PASS  data.portcullis.authz_test.test_ok", "FAIL  data.portcullis.authz_test.test_wrong", "looking for push", "1 passed, 1 failed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte("package portcullis.authz\n\nallowed contains x if {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runPolicy(context.Background(), []string{"test", dir}, &out, &out); err == nil || !strings.Contains(err.Error(), "policy.rego:") {
		t.Errorf("a broken policy: %v", err)
	}
}

func TestPolicyEvalCommand(t *testing.T) {
	var out bytes.Buffer
	err := runPolicy(context.Background(), []string{"eval", "-dir", "../../deploy/policies/teams", "-user", "ann", "-group", "payments-devs",
		"-scope", "repository:payments/api:pull,delete", "-scope", "repository:dockerhub/x:push", "-time", "2026-09-01T00:00:00Z"}, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"policy: dir ../../deploy/policies/teams", "pull     granted", "delete   denied: your roles in payments (writer) do not include delete",
		"push     denied: dockerhub is a pull-only mirror namespace"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	// The default policy gives no reasons: denied, said plainly.
	if err := runPolicy(context.Background(), []string{"eval", "-anonymous", "-scope", "repository:library/x:pull"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "embedded default") || !strings.Contains(out.String(), "pull     denied (the policy gives no reason)") {
		t.Errorf("default policy eval:\n%s", out.String())
	}
	// A repeated -label gives the label several values, as an LDAP attribute would: the acl
	// policy's permutations see both.
	out.Reset()
	acl := t.TempDir()
	for _, f := range []string{"policy.rego"} {
		b, err := os.ReadFile(filepath.Join("../../deploy/policies/acl", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(acl, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(acl, "data.yaml"), []byte("acl:\n  - match: {name: \"${labels:team}-${labels:env}/*\"}\n    actions: [pull]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runPolicy(context.Background(), []string{"eval", "-dir", acl, "-user", "ann", "-label", "team=web", "-label", "team=pay", "-label", "env=prod",
		"-scope", "repository:pay-prod/api:pull", "-scope", "repository:web-prod/api:pull"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "pull     granted"); n != 2 {
		t.Errorf("repeated -label: %d grants, want 2:\n%s", n, out.String())
	}
	err = runPolicy(context.Background(), []string{"eval", "-dir", "x", "-bundle", "y", "-scope", "repository:A:pull", "-time", "yesterday"}, &out, &out)
	for _, want := range []string{"-user NAME or -anonymous", "exclude each other", "repository:A:pull", "-time"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad flags: error %v lacks %q", err, want)
		}
	}
}
