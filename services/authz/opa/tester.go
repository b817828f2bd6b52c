package opa

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test rule (test_*).
type TestResult struct {
	// Name is package.rule; Location is file:line.
	Name, Location string
	Fail, Skip     bool
	// Err is set when the test could not be evaluated (an error is not a failure).
	Err      error
	Output   string // what print() wrote
	Duration time.Duration
}

// RunTests runs the Rego tests of the policy directory dir (every *.rego file, tests
// included, and its data file), as `opa test DIR` would, with OPA's tester. An error means
// the policy or its tests did not load; failed tests are in the results.
func RunTests(ctx context.Context, dir string) ([]TestResult, error) {
	return RunTestsFS(ctx, os.DirFS(dir), func(name string) string { return filepath.Join(dir, name) })
}

// RunTestsFS is RunTests on a file system (the embedded shipped policies); display names
// its files in errors and locations.
func RunTestsFS(ctx context.Context, fsys fs.FS, display func(string) string) ([]TestResult, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	modules := map[string]*ast.Module{}
	store := inmem.New()
	var errs []string
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
		case strings.HasSuffix(name, ".rego"):
			m, _, perrs := parseModule(fsys, name, display(name))
			for _, err := range perrs {
				errs = append(errs, err.Error())
			}
			if m != nil {
				modules[display(name)] = m
			}
		case slices.Contains(dataFiles, name):
			data, err := readData(fsys, name, display(name))
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if err := storage.WriteOne(ctx, store, storage.AddOp, storage.RootPath, data); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", display(name), err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	ch, err := tester.NewRunner().
		SetDefaultRegoVersion(ast.RegoV1).
		SetStore(store).
		SetModules(modules).
		// Declared for the acl policy, which calls it only on data the engine compiled: in
		// tests (data.acl alone) its plain Rego path runs.
		AddCustomBuiltins([]*tester.Builtin{{Decl: &ast.Builtin{Name: aclBuiltinName, Decl: aclBuiltinDecl}, Func: (&aclHolder{}).builtin()}}).
		CapturePrintOutput(true).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	var out []TestResult
	for r := range ch {
		res := TestResult{Name: r.Package + "." + r.Name, Fail: r.Fail, Skip: r.Skip, Err: r.Error,
			Output: string(r.Output), Duration: r.Duration}
		if r.Location != nil {
			res.Location = r.Location.String()
		}
		out = append(out, res)
	}
	return out, nil
}
