package opa_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
)

var (
	alice = identity.Identity{Subject: "alice", Groups: []string{"devs"}, Backend: "htpasswd"}
	root  = identity.Identity{Subject: "root", Groups: []string{"devs", "admins"}, Backend: "htpasswd"}
)

func repo(name string, actions ...string) scope.Scope {
	return scope.Scope{Type: "repository", Name: name, Actions: actions}
}

func catalog() scope.Scope {
	return scope.Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}
}

func open(t testing.TB, cfg opa.Config) authz.Authorizer {
	t.Helper()
	a, err := cfg.Open(context.Background(), authz.Deps{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if c, ok := a.(interface{ Close(context.Context) error }); ok {
		t.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	return a
}

// writePolicy writes files into a fresh directory and returns it.
func writePolicy(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestDefaultPolicy(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{})

	tests := []struct {
		name      string
		identity  identity.Identity
		requested []scope.Scope
		want      []scope.Scope
	}{
		{
			name:      "admin gets catalog",
			identity:  root,
			requested: []scope.Scope{catalog()},
			want:      []scope.Scope{catalog()},
		},
		{
			name:      "admin gets every requested action",
			identity:  root,
			requested: []scope.Scope{repo("bob/app", "pull", "push", "delete", "*")},
			want:      []scope.Scope{repo("bob/app", "pull", "push", "delete", "*")},
		},
		{
			name:      "user pulls and pushes own repo",
			identity:  alice,
			requested: []scope.Scope{repo("alice/app", "pull", "push")},
			want:      []scope.Scope{repo("alice/app", "pull", "push")},
		},
		{
			name:      "user deletes in own repo but gets no *",
			identity:  alice,
			requested: []scope.Scope{repo("alice/app", "delete", "push", "*")},
			want:      []scope.Scope{repo("alice/app", "delete", "push")},
		},
		{
			name:      "user gets nothing on other user's repo",
			identity:  alice,
			requested: []scope.Scope{repo("bob/app", "pull", "push")},
		},
		{
			name:     "user name prefix is not a namespace",
			identity: alice,
			requested: []scope.Scope{
				repo("alice2/x", "pull", "push"),
				repo("alicex/y", "pull", "push"),
				repo("alice", "pull", "push"),
			},
		},
		{
			name:      "user gets no catalog",
			identity:  alice,
			requested: []scope.Scope{catalog()},
		},
		{
			name:      "user pulls library only",
			identity:  alice,
			requested: []scope.Scope{repo("library/alpine", "push", "pull", "delete")},
			want:      []scope.Scope{repo("library/alpine", "pull")},
		},
		{
			name:      "anonymous gets nothing",
			identity:  identity.Anon(),
			requested: []scope.Scope{repo("library/alpine", "pull"), repo("alice/app", "pull"), catalog()},
		},
		{
			name:     "order kept, empty scopes omitted",
			identity: alice,
			requested: []scope.Scope{
				repo("library/b", "pull"),
				repo("bob/app", "pull"),
				repo("alice/z", "push", "pull"),
				repo("library/a", "push", "pull"),
				repo("alice/a", "pull"),
			},
			want: []scope.Scope{
				repo("library/b", "pull"),
				repo("alice/z", "push", "pull"),
				repo("library/a", "pull"),
				repo("alice/a", "pull"),
			},
		},
		{
			name:      "repeated action granted once",
			identity:  alice,
			requested: []scope.Scope{repo("alice/app", "pull", "pull", "push")},
			want:      []scope.Scope{repo("alice/app", "pull", "push")},
		},
		{
			name:      "class is kept",
			identity:  alice,
			requested: []scope.Scope{{Type: "repository", Class: "plugin", Name: "alice/p", Actions: []string{"pull"}}},
			want:      []scope.Scope{{Type: "repository", Class: "plugin", Name: "alice/p", Actions: []string{"pull"}}},
		},
		{
			name:     "no scopes",
			identity: alice,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := a.Authorize(context.Background(), authz.Request{
				Identity:  tt.identity,
				Service:   "registry.example.com",
				Requested: tt.requested,
			})
			if err != nil {
				t.Fatalf("Authorize: %v", err)
			}
			if !reflect.DeepEqual(got.Granted, tt.want) {
				t.Errorf("Granted = %v, want %v", got.Granted, tt.want)
			}
			if len(got.DecisionID) != 32 {
				t.Errorf("DecisionID = %q, want 32 hex digits", got.DecisionID)
			}
			if _, err := hex.DecodeString(got.DecisionID); err != nil {
				t.Errorf("DecisionID = %q: %v", got.DecisionID, err)
			}
		})
	}
}

func TestDecisionIDsDiffer(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{})
	seen := map[string]bool{}
	for range 100 {
		d, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: []scope.Scope{repo("alice/a", "pull")}})
		if err != nil {
			t.Fatal(err)
		}
		if seen[d.DecisionID] {
			t.Fatalf("DecisionID %s repeated", d.DecisionID)
		}
		seen[d.DecisionID] = true
	}
}

// A policy may allow anything; only requested actions are ever granted.
func TestGrantedSubsetOfRequested(t *testing.T) {
	t.Parallel()
	dir := writePolicy(t, map[string]string{"greedy.rego": `package portcullis.authz

allowed contains ["repository", "", "alice/app", a] if some a in ["pull", "push", "delete", "*"]
allowed contains ["registry", "", "catalog", "*"]
allowed contains [s.type, s.class, s.name, "push"] if some s in input.scopes
`})
	a := open(t, opa.Config{Dir: dir})

	requested := []scope.Scope{repo("alice/app", "pull"), repo("bob/app", "pull", "push")}
	orig := []scope.Scope{repo("alice/app", "pull"), repo("bob/app", "pull", "push")}
	got, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: requested})
	if err != nil {
		t.Fatal(err)
	}
	want := []scope.Scope{repo("alice/app", "pull"), repo("bob/app", "push")}
	if !reflect.DeepEqual(got.Granted, want) {
		t.Errorf("Granted = %v, want %v", got.Granted, want)
	}
	if !reflect.DeepEqual(requested, orig) {
		t.Errorf("request modified: %v", requested)
	}
}

// The input document has the documented shape (deploy/policies/README.md).
func TestInputContract(t *testing.T) {
	t.Parallel()
	dir := writePolicy(t, map[string]string{"echo.rego": `package portcullis.authz

want := {
	"identity": {
		"subject": "alice",
		"anonymous": false,
		"groups": ["devs", "ops"],
		"labels": {"team": ["blue"], "project": ["p1", "p2"]},
		"backend": "ldap",
	},
	"service": "registry.example.com",
	"client_id": "docker",
	"remote_addr": "192.0.2.1:1234",
	"scopes": [
		{"type": "repository", "class": "plugin", "name": "alice/app", "actions": ["pull", "push"]},
		{"type": "registry", "class": "", "name": "catalog", "actions": ["*"]},
	],
}

allowed contains [s.type, s.class, s.name, a] if {
	input == want
	some s in input.scopes
	some a in s.actions
}
`})
	a := open(t, opa.Config{Dir: dir})
	requested := []scope.Scope{
		{Type: "repository", Class: "plugin", Name: "alice/app", Actions: []string{"pull", "push"}},
		catalog(),
	}
	got, err := a.Authorize(context.Background(), authz.Request{
		Identity: identity.Identity{
			Subject: "alice",
			Groups:  []string{"devs", "ops"},
			Labels:  map[string][]string{"team": {"blue"}, "project": {"p1", "p2"}},
			Backend: "ldap",
		},
		Service:    "registry.example.com",
		Requested:  requested,
		RemoteAddr: "192.0.2.1:1234",
		ClientID:   "docker",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Granted, requested) {
		t.Errorf("input differs from the contract: Granted = %v", got.Granted)
	}
}

// A personal access token's login shows the policy the owner and the token's name; the
// narrowing is not in the input (the authz server applies it after the policy).
func TestInputPAT(t *testing.T) {
	t.Parallel()
	dir := writePolicy(t, map[string]string{"echo.rego": `package portcullis.authz

want := {"subject": "alice", "anonymous": false, "groups": ["devs"], "labels": {}, "backend": "pat", "pat_name": "ci"}

allowed contains [s.type, s.class, s.name, a] if {
	input.identity == want
	some s in input.scopes
	some a in s.actions
}
`})
	a := open(t, opa.Config{Dir: dir})
	requested := []scope.Scope{catalog()}
	got, err := a.Authorize(context.Background(), authz.Request{
		Identity: identity.Identity{Subject: "alice", Groups: []string{"devs"}, Backend: "pat", PATName: "ci",
			PATScopes: []scope.Scope{{Type: "repository", Name: "alice/*", Actions: []string{"pull"}}}},
		Service: "registry.example.com", Requested: requested,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Granted, requested) {
		t.Errorf("input differs: Granted = %v", got.Granted)
	}
}

func TestDataDocument(t *testing.T) {
	t.Parallel()
	policy := `package portcullis.authz

allowed contains ["repository", "", s.name, "pull"] if {
	some s in input.scopes
	s.name in data.public
}
`
	for _, tt := range []struct{ file, content string }{
		{"data.json", `{"public": ["pub/a"]}`},
		{"data.yaml", "public:\n  - pub/a\n"},
		{"data.yml", "public: [pub/a]\n"},
	} {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			a := open(t, opa.Config{Dir: writePolicy(t, map[string]string{"p.rego": policy, tt.file: tt.content})})
			got, err := a.Authorize(context.Background(), authz.Request{
				Identity:  identity.Anon(),
				Requested: []scope.Scope{repo("pub/b", "pull"), repo("pub/a", "pull")},
			})
			if err != nil {
				t.Fatal(err)
			}
			if want := []scope.Scope{repo("pub/a", "pull")}; !reflect.DeepEqual(got.Granted, want) {
				t.Errorf("Granted = %v, want %v", got.Granted, want)
			}
		})
	}
}

// *_test.rego files are not part of the policy.
func TestTestFilesNotLoaded(t *testing.T) {
	t.Parallel()
	dir := writePolicy(t, map[string]string{
		"p.rego":      "package portcullis.authz\n\nallowed := set()\n",
		"p_test.rego": "package portcullis.authz\n\nallowed contains [\"repository\", \"\", \"x/y\", \"pull\"]\n",
	})
	a := open(t, opa.Config{Dir: dir})
	got, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: []scope.Scope{repo("x/y", "pull")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Granted) != 0 {
		t.Errorf("Granted = %v, want nothing", got.Granted)
	}
}

func TestClockInjected(t *testing.T) {
	t.Parallel()
	dir := writePolicy(t, map[string]string{"p.rego": `package portcullis.authz

allowed contains ["repository", "", "a/b", "pull"] if time.now_ns() == 1000000000000000000
`})
	fixed := time.Unix(0, 1e18)
	a, err := opa.Config{Dir: dir}.Open(context.Background(), authz.Deps{Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	got, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: []scope.Scope{repo("a/b", "pull")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Granted) != 1 {
		t.Errorf("Granted = %v, want a/b pull: clock not used", got.Granted)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	const ok = "package portcullis.authz\n\nallowed := set()\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{
			name:  "syntax error",
			files: map[string]string{"good.rego": ok, "broken.rego": "package portcullis.authz\n\nallowed contains x if {\n"},
			want:  []string{"broken.rego"},
		},
		{
			name:  "compile error",
			files: map[string]string{"unsafe.rego": "package portcullis.authz\n\nallowed contains x if y == 1\n"},
			want:  []string{"unsafe.rego:3", "unsafe"},
		},
		{
			name:  "v0 syntax",
			files: map[string]string{"old.rego": "package portcullis.authz\n\nallowed[x] { x := 1 }\n"},
			want:  []string{"old.rego"},
		},
		{
			name: "every bad file reported",
			files: map[string]string{
				"a.rego": "package portcullis.authz\n\nallowed contains x if {\n",
				"b.rego": "package\n",
			},
			want: []string{"a.rego", "b.rego"},
		},
		{
			name:  "no rule allowed",
			files: map[string]string{"p.rego": "package portcullis.authz\n\nallow := true\n"},
			want:  []string{"data.portcullis.authz.allowed"},
		},
		{
			name:  "no policy files",
			files: map[string]string{"README.md": "hi", "only_test.rego": ok},
			want:  []string{"no policy files"},
		},
		{
			name:  "two data files",
			files: map[string]string{"p.rego": ok, "data.json": "{}", "data.yaml": "{}"},
			want:  []string{"data.json", "data.yaml"},
		},
		{
			name:  "bad data",
			files: map[string]string{"p.rego": ok, "data.json": "{"},
			want:  []string{"data.json"},
		},
		{
			name:  "data not an object",
			files: map[string]string{"p.rego": ok, "data.json": "[1]"},
			want:  []string{"data.json", "object"},
		},
		{
			name:  "data conflicts with policy",
			files: map[string]string{"p.rego": ok, "data.json": `{"portcullis": {"authz": {"allowed": []}}}`},
			want:  []string{"allowed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := opa.Config{Dir: writePolicy(t, tt.files)}
			_, err := cfg.Open(context.Background(), authz.Deps{})
			if err == nil {
				t.Fatal("Open succeeded, want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error %q does not mention %q", err, w)
				}
			}
			if errs := cfg.Validate(); len(errs) == 0 {
				t.Error("Validate found no problem")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     opa.Config
		wantErr int
	}{
		{"default policy", opa.Config{}, 0},
		{"missing dir", opa.Config{Dir: filepath.Join(t.TempDir(), "nope")}, 1},
		{"not a dir", opa.Config{Dir: file}, 1},
		{"two bad files", opa.Config{Dir: writePolicy(t, map[string]string{"a.rego": "package\n", "b.rego": "x"})}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if errs := tt.cfg.Validate(); len(errs) != tt.wantErr {
				t.Errorf("Validate() = %v, want %d errors", errs, tt.wantErr)
			}
		})
	}
}

// Evaluation problems are errors, never grants.
func TestEvalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		policy string
	}{
		{"allowed is not a set", "package portcullis.authz\n\nallowed := [[\"repository\", \"a/b\", \"pull\"]]\n"},

		{"element too short", "package portcullis.authz\n\nallowed contains [\"repository\", \"a/b\"]\n"},
		{"element too long", "package portcullis.authz\n\nallowed contains [\"repository\", \"\", \"a/b\", \"pull\", \"x\"]\n"},
		{"element not strings", "package portcullis.authz\n\nallowed contains [\"repository\", \"a/b\", 1]\n"},
		{"quadruple not strings", "package portcullis.authz\n\nallowed contains [\"repository\", null, \"a/b\", \"pull\"]\n"},
		{"element not an array", "package portcullis.authz\n\nallowed contains \"repository:a/b:pull\"\n"},
		{"conflicting values", "package portcullis.authz\n\nallowed := {[\"repository\", \"a/b\", \"pull\"]} if true\nallowed := set() if true\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := open(t, opa.Config{Dir: writePolicy(t, map[string]string{"p.rego": tt.policy})})
			d, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: []scope.Scope{repo("a/b", "pull")}})
			if err == nil {
				t.Fatalf("Authorize = %v, want error", d)
			}
			if len(d.Granted) != 0 {
				t.Errorf("error with grants %v", d.Granted)
			}
		})
	}
}

// A triple, the format before the class was part of the key, is refused with a message that
// says what changed, rather than read as some class.
func TestTripleRefused(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{Dir: writePolicy(t, map[string]string{"p.rego": `package portcullis.authz

allowed contains ["repository", s.name, "pull"] if {
	some s in input.scopes
	s.class == "plugin"
}
`})})
	plugin := scope.Scope{Type: "repository", Class: "plugin", Name: "x/y", Actions: []string{"pull"}}
	d, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: []scope.Scope{plugin, repo("x/y", "pull")}})
	if err == nil || !strings.Contains(err.Error(), "[type, class, name, action]") {
		t.Fatalf("Authorize = %v, %v; want an error naming [type, class, name, action]", d, err)
	}
	if len(d.Granted) != 0 {
		t.Errorf("error with grants %v", d.Granted)
	}
}

// The class is part of the decision's key: a grant for repository(plugin):x/y does not
// grant repository:x/y, nor the reverse, even when both are asked for in one request.
func TestClassIsPartOfTheKey(t *testing.T) {
	t.Parallel()
	plugin := scope.Scope{Type: "repository", Class: "plugin", Name: "x/y", Actions: []string{"pull"}}
	plain := repo("x/y", "pull")
	tests := []struct {
		name   string
		policy string
		want   []scope.Scope
	}{
		{
			name: "plugins only",
			policy: `allowed contains ["repository", s.class, s.name, "pull"] if {
	some s in input.scopes
	s.class == "plugin"
}`,
			want: []scope.Scope{plugin},
		},
		{
			name: "plugins only, class written out",
			policy: `allowed contains ["repository", "plugin", s.name, "pull"] if {
	some s in input.scopes
	s.class == "plugin"
}`,
			want: []scope.Scope{plugin},
		},
		{
			name: "without class only",
			policy: `allowed contains ["repository", "", s.name, "pull"] if {
	some s in input.scopes
	s.class == ""
}`,
			want: []scope.Scope{plain},
		},
		{
			name:   "both",
			policy: `allowed contains [s.type, s.class, s.name, "pull"] if some s in input.scopes`,
			want:   []scope.Scope{plugin, plain},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := open(t, opa.Config{Dir: writePolicy(t, map[string]string{"p.rego": "package portcullis.authz\n\n" + tt.policy + "\n"})})
			for _, requested := range [][]scope.Scope{{plugin, plain}, {plugin}, {plain}} {
				d, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: requested})
				if err != nil {
					t.Fatal(err)
				}
				var want []scope.Scope
				for _, s := range requested {
					for _, w := range tt.want {
						if reflect.DeepEqual(s, w) {
							want = append(want, s)
						}
					}
				}
				if !reflect.DeepEqual(d.Granted, want) {
					t.Errorf("requested %v: Granted = %v, want %v", requested, d.Granted, want)
				}
			}
		})
	}
}

func TestUndefinedAllowsNothing(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{Dir: writePolicy(t, map[string]string{"p.rego": "package portcullis.authz\n\nallowed := {[\"repository\", \"\", \"a/b\", \"pull\"]} if false\n"})})
	d, err := a.Authorize(context.Background(), authz.Request{Identity: alice, Requested: []scope.Scope{repo("a/b", "pull")}})
	if err != nil || len(d.Granted) != 0 {
		t.Errorf("Authorize = %v, %v; want nothing granted", d, err)
	}
}

func TestCanceled(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d, err := a.Authorize(ctx, authz.Request{Identity: root, Requested: []scope.Scope{catalog()}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Authorize = %v, %v; want context.Canceled", d, err)
	}
}

func TestDeadline(t *testing.T) {
	t.Parallel()
	// A policy that takes far longer than the deadline.
	a := open(t, opa.Config{Dir: writePolicy(t, map[string]string{"slow.rego": `package portcullis.authz

allowed contains [s.type, s.class, s.name, a] if {
	some s in input.scopes
	some a in s.actions
	count([x | some x in numbers.range(1, 100000000)]) > 0
}
`})})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d, err := a.Authorize(ctx, authz.Request{Identity: root, Requested: []scope.Scope{catalog()}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Authorize = %v, %v; want context.DeadlineExceeded", d, err)
	}
}

func TestInvalidRequest(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{})
	for _, req := range []authz.Request{
		{Identity: identity.Identity{}, Requested: []scope.Scope{repo("library/a", "pull")}},
		{Identity: alice, Requested: []scope.Scope{{Name: "a/b", Actions: []string{"pull"}}}},
		{Identity: alice, Requested: []scope.Scope{repo("", "pull")}},
		{Identity: alice, Requested: []scope.Scope{repo("alice/a", "")}},
	} {
		if _, err := a.Authorize(context.Background(), req); !errors.Is(err, authz.ErrInvalidRequest) {
			t.Errorf("Authorize(%+v) error = %v, want ErrInvalidRequest", req, err)
		}
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	a := open(t, opa.Config{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				d, err := a.Authorize(context.Background(), authz.Request{
					Identity:  alice,
					Requested: []scope.Scope{repo("alice/a", "pull", "push"), repo("bob/b", "pull")},
				})
				if err != nil || len(d.Granted) != 1 {
					t.Errorf("Authorize = %v, %v", d, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkAuthorize(b *testing.B) {
	a := open(b, opa.Config{})
	ctx := context.Background()
	for _, bc := range []struct {
		name   string
		scopes []scope.Scope
	}{
		{"1scope", []scope.Scope{repo("alice/app", "pull", "push")}},
		{"5scopes", []scope.Scope{
			repo("alice/app", "pull", "push"),
			repo("library/alpine", "pull"),
			repo("bob/app", "pull"),
			repo("alice/team/svc", "pull", "push", "delete"),
			{Type: "registry", Name: "catalog", Actions: []string{"*"}},
		}},
	} {
		req := authz.Request{Identity: alice, Service: "registry.example.com", Requested: bc.scopes}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authorize(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
