// Package ci_test checks the CI examples: the policy's Rego tests pass, the example config is
// a valid oidc configuration, and a token from each platform, verified by the backends the
// example configures, is granted by the example policy what its README promises.
package ci_test

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

// TestPolicyRegoTests runs policy/*_test.rego, as `opa test policy` would.
func TestPolicyRegoTests(t *testing.T) {
	t.Parallel()
	fsys := os.DirFS("policy")
	modules := map[string]*ast.Module{}
	names, err := fs.Glob(fsys, "*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(name, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		modules[name] = m
	}
	ch, err := tester.NewRunner().SetDefaultRegoVersion(ast.RegoV1).SetModules(modules).RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for r := range ch {
		ran++
		if r.Error != nil || r.Fail {
			t.Errorf("%s.%s (%s): fail=%v error=%v", r.Package, r.Name, r.Location, r.Fail, r.Error)
		}
	}
	if ran < 10 {
		t.Fatalf("%d Rego tests ran, want the policy's tests", ran)
	}
}

type exampleConfig struct {
	Authn struct {
		Backends []struct {
			Name          string    `yaml:"name"`
			Type          string    `yaml:"type"`
			SubjectPrefix string    `yaml:"subject_prefix"`
			Config        yaml.Node `yaml:"config"`
		} `yaml:"backends"`
	} `yaml:"authn"`
	Authz struct {
		OPA struct {
			Dir string `yaml:"dir"`
		} `yaml:"opa"`
	} `yaml:"authz"`
}

// workloads opens the example's oidc backends, each trusting a test issuer in place of the
// platform's, and returns the chain of them with the issuers by backend name.
func workloads(t *testing.T, now func() time.Time) (*authn.Chain, map[string]*oidctest.Issuer) {
	t.Helper()
	data, err := os.ReadFile("portcullis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ex exampleConfig
	if err := yaml.Unmarshal(data, &ex); err != nil {
		t.Fatal(err)
	}
	if ex.Authz.OPA.Dir == "" {
		t.Fatal("the example names no policy directory")
	}
	issuers := map[string]*oidctest.Issuer{}
	var chain []authn.Member
	for _, b := range ex.Authn.Backends {
		if b.Type != "oidc" {
			continue
		}
		var c oidc.Config
		if err := config.StrictNode(&b.Config, &c); err != nil {
			t.Fatalf("backend %s: %v", b.Name, err)
		}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatalf("backend %s: %v", b.Name, errs)
		}
		iss := oidctest.Start(t)
		c.Issuers[0].Issuer = iss.URL
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second} // the test issuer, not ca_file
		a, err := c.Open(context.Background(), authn.Deps{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = a.Close(context.Background()) })
		issuers[b.Name] = iss
		chain = append(chain, authn.Member{Name: b.Name, SubjectPrefix: b.SubjectPrefix, Backend: a})
	}
	if len(issuers) != 3 {
		t.Fatalf("the example has %d oidc backends, want github-actions, gitlab-ci and kubernetes", len(issuers))
	}
	return authn.NewChain(chain, nil), issuers
}

// A token from each platform, through the example's backends and policy, to granted scopes.
func TestTokensGetWhatThePolicyPromises(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Second)
	clock := func() time.Time { return now }
	chain, issuers := workloads(t, clock)
	az, err := opa.Config{Dir: "policy"}.Open(context.Background(), authz.Deps{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(backend string, extra map[string]any) map[string]any {
		c := issuers[backend].Claims("registry.example.com", now, 10*time.Minute)
		maps.Copy(c, extra)
		return c
	}
	github := func(ref string) map[string]any {
		return claims("github-actions", map[string]any{
			"sub": "repo:myorg/app:ref:" + ref, "repository": "myorg/app", "repository_owner": "myorg",
			"ref": ref, "workflow": "image",
		})
	}
	gitlab := func(protected string) map[string]any {
		return claims("gitlab-ci", map[string]any{
			"sub": "project_path:mygroup/app:ref_type:branch:ref:main", "namespace_path": "mygroup",
			"project_path": "mygroup/app", "ref": "main", "ref_protected": protected,
		})
	}
	k8s := func(ns, sa string) map[string]any {
		return claims("kubernetes", map[string]any{
			"sub":           "system:serviceaccount:" + ns + ":" + sa,
			"kubernetes.io": map[string]any{"namespace": ns, "serviceaccount": map[string]any{"name": sa}},
		})
	}
	cases := []struct {
		name    string
		backend string
		claims  map[string]any
		repo    string
		want    []string // granted actions of repo:<repo>:pull,push
	}{
		{"GitHub main", "github-actions", github("refs/heads/main"), "myorg/app", []string{"pull", "push"}},
		{"GitHub tag", "github-actions", github("refs/tags/v1.0.0"), "myorg/app/cache", []string{"pull", "push"}},
		{"GitHub pull request", "github-actions", github("refs/pull/7/merge"), "myorg/app", []string{"pull"}},
		{"GitHub, another project", "github-actions", github("refs/heads/main"), "myorg/other", nil},
		{"GitHub, base image", "github-actions", github("refs/heads/main"), "library/alpine", []string{"pull"}},
		{"GitLab protected", "gitlab-ci", gitlab("true"), "mygroup/app", []string{"pull", "push"}},
		{"GitLab unprotected", "gitlab-ci", gitlab("false"), "mygroup/app", []string{"pull"}},
		{"Kubernetes builder", "kubernetes", k8s("build-web", "builder"), "build-web/app", []string{"pull", "push"}},
		{"Kubernetes, other account", "kubernetes", k8s("build-web", "default"), "build-web/app", []string{"pull"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := issuers[tc.backend].MustSign(t, tc.claims)
			id, err := chain.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: authn.Password(tok)})
			if err != nil {
				t.Fatal(err)
			}
			if id.Backend != tc.backend {
				t.Fatalf("vouched for by %q, want %q", id.Backend, tc.backend)
			}
			d, err := az.Authorize(context.Background(), authz.Request{
				Identity: id, Service: "registry.example.com",
				Requested: []scope.Scope{{Type: "repository", Name: tc.repo, Actions: []string{"pull", "push"}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			if len(d.Granted) == 1 {
				got = d.Granted[0].Actions
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("granted %v on %s, want %v (identity %+v)", got, tc.repo, tc.want, id)
			}
		})
	}
	// The claim rules of the example refuse what the policy never sees.
	for _, tc := range []struct {
		name, backend string
		claims        map[string]any
	}{
		{"GitHub, another org", "github-actions", with(github("refs/heads/main"), "repository_owner", "evil", "repository", "evil/app")},
		{"GitLab, another group", "gitlab-ci", with(gitlab("true"), "namespace_path", "othergroup")},
		{"Kubernetes, another namespace", "kubernetes", k8s("default", "builder")},
	} {
		tok := issuers[tc.backend].MustSign(t, tc.claims)
		if _, err := chain.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: authn.Password(tok)}); !errors.Is(err, authn.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials", tc.name, err)
		}
	}
}

func with(c map[string]any, kv ...string) map[string]any {
	out := maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// The CI files ask for tokens for the audience the example config accepts.
func TestCIFilesRequestTheRegistryAudience(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"github-actions.yml", ".gitlab-ci.yml", "kubernetes-build-pod.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text := string(data)
		if !strings.Contains(text, "registry.example.com") {
			t.Errorf("%s does not ask for audience registry.example.com", name)
		}
	}
	data, err := os.ReadFile("github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "id-token: write") || !strings.Contains(string(data), "audience=$REGISTRY") {
		t.Error("the workflow cannot get an OIDC token for the registry")
	}
}
