package opa

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/portcullis-dev/portcullis/deploy"
)

// defaultDir is the shipped policy inside deploy.Policies.
const defaultDir = "policies/default"

// dataFiles are the names a data document may have; at most one may exist.
var dataFiles = []string{"data.json", "data.yaml", "data.yml"}

// source is a parsed but not yet compiled policy.
type source struct {
	shown   string // the directory, as shown in errors
	modules []*ast.Module
	data    map[string]any // nil when the policy has no data file
	// raw holds each module's name and text, in load order: what modulesDigest hashes.
	raw []string
	// rev is the revision the source names itself (a bundle manifest's); empty for a
	// directory, whose revision is a digest of its content.
	rev string
}

// policyFS returns the file system holding the policy and how its file names
// are shown in errors.
func (c Config) policyFS() (fs.FS, func(string) string, error) {
	if c.Dir == "" {
		fsys, err := fs.Sub(deploy.Policies, defaultDir)
		if err != nil {
			return nil, nil, fmt.Errorf("embedded default policy: %w", err)
		}
		return fsys, func(name string) string { return "embedded:" + path.Join(defaultDir, name) }, nil
	}
	fi, err := os.Stat(c.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("policy dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("policy dir %s: not a directory", c.Dir)
	}
	return os.DirFS(c.Dir), func(name string) string { return filepath.Join(c.Dir, name) }, nil
}

// load reads and parses the policy files. It reports every problem it finds.
func (c Config) load() (source, []error) {
	fsys, display, err := c.policyFS()
	if err != nil {
		return source{}, []error{err}
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return source{}, []error{fmt.Errorf("read policy dir %s: %w", display("."), err)}
	}

	var (
		src      = source{shown: display(".")}
		errs     []error
		dataName string
	)
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir():
			continue
		case strings.HasSuffix(name, "_test.rego"):
			continue
		case strings.HasSuffix(name, ".rego"):
			m, raw, perrs := parseModule(fsys, name, display(name))
			if len(perrs) > 0 {
				errs = append(errs, perrs...)
				continue
			}
			src.modules = append(src.modules, m)
			src.raw = append(src.raw, name, raw)
		case slices.Contains(dataFiles, name):
			if dataName != "" {
				errs = append(errs, fmt.Errorf("%s and %s: only one data file is allowed", display(dataName), display(name)))
				continue
			}
			dataName = name
			data, err := readData(fsys, name, display(name))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			src.data = data
		}
	}
	if len(src.modules) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("policy dir %s: no policy files (*.rego, not *_test.rego)", src.shown))
	}
	return src, errs
}

func parseModule(fsys fs.FS, name, shown string) (*ast.Module, string, []error) {
	bs, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, "", []error{fmt.Errorf("read policy %s: %w", shown, err)}
	}
	// The parser puts shown into every error location, so errors name the file.
	m, err := ast.ParseModuleWithOpts(shown, string(bs), ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, "", astErrors("parse policy", shown, err)
	}
	if m == nil {
		return nil, "", []error{fmt.Errorf("parse policy %s: empty module", shown)}
	}
	return m, string(bs), nil
}

func readData(fsys fs.FS, name, shown string) (map[string]any, error) {
	bs, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("read data: %w", err)
	}
	var v any
	if path.Ext(name) == ".json" {
		err = util.UnmarshalJSON(bs, &v)
	} else {
		err = util.Unmarshal(bs, &v) // YAML, converted to JSON first
	}
	if err != nil {
		return nil, fmt.Errorf("parse data %s: %w", shown, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("data %s: top level must be an object", shown)
	}
	return obj, nil
}

// astErrors splits an OPA parse or compile error into one error per problem;
// each names its file and line. shown names the file(s) for other errors.
func astErrors(what, shown string, err error) []error {
	var astErrs ast.Errors
	if !errors.As(err, &astErrs) || len(astErrs) == 0 {
		return []error{fmt.Errorf("%s %s: %w", what, shown, err)}
	}
	errs := make([]error, 0, len(astErrs))
	for _, e := range astErrs {
		if e.Location == nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", what, shown, e))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", what, e))
	}
	return errs
}
