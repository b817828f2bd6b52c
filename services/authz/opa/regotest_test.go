package opa_test

import (
	"context"
	"flag"
	"io/fs"
	"os"
	"path"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/portcullis-dev/portcullis/deploy"
)

var policyDir = flag.String("policy.dir", "",
	"run the Rego tests (test_* rules in *.rego) of this policy directory instead of the shipped default")

// TestRegoPolicyTests runs the policy's own Rego unit tests, as `opa test`
// would. It fails if any test fails or errors, or if there are none.
//
//	go test ./services/authz/opa -run TestRegoPolicyTests -v
//	go test ./services/authz/opa -run TestRegoPolicyTests -v -args -policy.dir=/etc/portcullis/policy
func TestRegoPolicyTests(t *testing.T) {
	fsys, err := fs.Sub(deploy.Policies, "policies/default")
	if err != nil {
		t.Fatal(err)
	}
	if *policyDir != "" {
		fsys = os.DirFS(*policyDir)
	}

	modules := map[string]*ast.Module{}
	store := inmem.New()
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		bs, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(name, ".rego"):
			m, err := ast.ParseModuleWithOpts(name, string(bs), ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			modules[name] = m
		case name == "data.json" || name == "data.yaml" || name == "data.yml":
			var data map[string]any
			if path.Ext(name) == ".json" {
				err = util.UnmarshalJSON(bs, &data)
			} else {
				err = util.Unmarshal(bs, &data)
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := storage.WriteOne(context.Background(), store, storage.AddOp, storage.RootPath, data); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}

	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		RunTests(context.Background(), nil)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	var ran int
	for r := range ch {
		if r.Skip {
			t.Logf("SKIP %s.%s", r.Package, r.Name)
			continue
		}
		ran++
		switch {
		case r.Error != nil:
			t.Errorf("ERROR %s.%s (%s): %v", r.Package, r.Name, r.Location, r.Error)
		case r.Fail:
			t.Errorf("FAIL %s.%s (%s)%s", r.Package, r.Name, r.Location, output(r.Output))
		default:
			t.Logf("PASS %s.%s", r.Package, r.Name)
		}
	}
	if ran == 0 {
		t.Fatal("no Rego tests ran (test_* rules)")
	}
	t.Logf("%d Rego tests ran", ran)
}

func output(bs []byte) string {
	if len(bs) == 0 {
		return ""
	}
	return "\n" + string(bs)
}
