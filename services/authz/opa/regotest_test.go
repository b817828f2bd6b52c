package opa_test

import (
	"context"
	"flag"
	"io/fs"
	"path"
	"testing"

	"github.com/portcullis-dev/portcullis/deploy"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

var policyDir = flag.String("policy.dir", "",
	"run the Rego tests (test_* rules in *.rego) of this policy directory instead of the shipped default")

// TestRegoPolicyTests runs the policy's own Rego unit tests, as `opa test` (and `portcullis
// policy test`) would. It fails if any test fails or errors, or if there are none.
//
//	go test ./services/authz/opa -run TestRegoPolicyTests -v
//	go test ./services/authz/opa -run TestRegoPolicyTests -v -args -policy.dir=/etc/portcullis/policy
func TestRegoPolicyTests(t *testing.T) {
	if *policyDir != "" {
		results, err := opa.RunTests(context.Background(), *policyDir)
		if err != nil {
			t.Fatal(err)
		}
		CheckRegoResults(t, results)
		return
	}
	// Every shipped policy (deploy/policies/*) with its own tests and example data.
	dirs, err := fs.ReadDir(deploy.Policies, "policies")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		ran++
		t.Run(d.Name(), func(t *testing.T) {
			dir := path.Join("policies", d.Name())
			fsys, err := fs.Sub(deploy.Policies, dir)
			if err != nil {
				t.Fatal(err)
			}
			results, err := opa.RunTestsFS(context.Background(), fsys, func(n string) string { return path.Join(dir, n) })
			if err != nil {
				t.Fatal(err)
			}
			CheckRegoResults(t, results)
		})
	}
	if ran < 2 {
		t.Fatalf("%d shipped policies found", ran)
	}
}

// CheckRegoResults fails t for every failed or erroring Rego test, and when none ran.
func CheckRegoResults(t *testing.T, results []opa.TestResult) {
	t.Helper()
	ran := 0
	for _, r := range results {
		if r.Skip {
			t.Logf("SKIP %s", r.Name)
			continue
		}
		ran++
		switch {
		case r.Err != nil:
			t.Errorf("ERROR %s (%s): %v", r.Name, r.Location, r.Err)
		case r.Fail:
			t.Errorf("FAIL %s (%s)\n%s", r.Name, r.Location, r.Output)
		default:
			t.Logf("PASS %s", r.Name)
		}
	}
	if ran == 0 {
		t.Fatal("no Rego tests ran (test_* rules)")
	}
	t.Logf("%d Rego tests ran", ran)
}
