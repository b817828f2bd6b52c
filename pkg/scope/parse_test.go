package scope

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Scope
	}{
		{"repository:alice/app:pull", Scope{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}},
		{"repository:alice/app:pull,push", Scope{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}},
		{"repository:app:push,pull,push,pull", Scope{Type: "repository", Name: "app", Actions: []string{"push", "pull"}}},
		{"repository:localhost:5000/alice/app:pull,push", Scope{Type: "repository", Name: "localhost:5000/alice/app", Actions: []string{"pull", "push"}}},
		{"repository:Registry-1.Example.COM/a/b:pull", Scope{Type: "repository", Name: "Registry-1.Example.COM/a/b", Actions: []string{"pull"}}},
		{"repository:a.b_c__d-e--f/g:delete", Scope{Type: "repository", Name: "a.b_c__d-e--f/g", Actions: []string{"delete"}}},
		{"repository(plugin):vieux/sshfs:pull", Scope{Type: "repository", Class: "plugin", Name: "vieux/sshfs", Actions: []string{"pull"}}},
		{"registry:catalog:*", Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}},
		{"repository:app:*,pull,*", Scope{Type: "repository", Name: "app", Actions: []string{"*", "pull"}}},
		// The grammar cannot tell a host from a first path component, and hosts
		// may have capitals.
		{"repository:Alice/app:pull", Scope{Type: "repository", Name: "Alice/app", Actions: []string{"pull"}}},
		{"r2d2:x0:a", Scope{Type: "r2d2", Name: "x0", Actions: []string{"a"}}},
		{"repository:" + strings.Repeat("a", 255) + ":pull", Scope{Type: "repository", Name: strings.Repeat("a", 255), Actions: []string{"pull"}}},
		{"repository:app:" + strings.TrimSuffix(strings.Repeat("a,", 16), ","), Scope{Type: "repository", Name: "app", Actions: []string{"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		reason string // substring of the reason
	}{
		{"", "empty scope"},
		{"repository", "want type:name:actions"},
		{"repository:app", "want type:name:actions"},
		{"repository:app:", "missing actions"},
		{"repository::pull", "missing resource name"},
		{":app:pull", "missing resource type"},
		{"Repository:app:pull", "resource type"},
		{"repo-sitory:app:pull", "resource type"},
		{"repository(:app:pull", "closed by ')'"},
		{"repository(plugin:app:pull", "closed by ')'"},
		{"repository():app:pull", "resource class"},
		{"repository(Plugin):app:pull", "resource class"},
		{"repository(a)(b):app:pull", "resource class"},
		{"(plugin):app:pull", "resource type"},
		{"repository:App:pull", "must be lowercase"},
		{"repository:a/b/C:pull", "must be lowercase"},
		{"repository:alice/App:pull", "must be lowercase"},
		{"repository:/app:pull", "invalid resource name"},
		{"repository:app/:pull", "invalid resource name"},
		{"repository:a//b:pull", "invalid resource name"},
		{"repository:-app:pull", "invalid resource name"},
		{"repository:app-:pull", "invalid resource name"},
		{"repository:a___b:pull", "invalid resource name"},
		{"repository:a..b:pull", "invalid resource name"},
		{"repository:localhost:5000:pull", "invalid resource name"},
		{"repository:app:latest:pull", "invalid resource name"},
		{"repository:localhost:/app:pull", "invalid resource name"},
		{"repository:localhost:50a0/app:pull", "invalid resource name"},
		{"repository:-host/app:pull", "invalid resource name"},
		{"repository:host-/app:pull", "invalid resource name"},
		{"repository:app@sha256:pull", "invalid resource name"},
		{"repository:" + strings.Repeat("a", 256) + ":pull", "longer than 255"},
		{"repository:app:" + strings.Repeat("a", 1024), "longer than 1024"},
		{"repository:app:" + strings.TrimSuffix(strings.Repeat("a,", 17), ","), "more than 16 actions"},
		{"repository:app:pull,", "empty action"},
		{"repository:app:,pull", "empty action"},
		{"repository:app:pull,,push", "empty action"},
		{"repository:app:PULL", `action "PULL"`},
		{"repository:app:pull-push", "action"},
		{"repository:app:**", "action"},
		{"repository:app:pull push", "contains a space"},
		{"repository:app:pull\n", "control characters"},
		{"repository:a\x00pp:pull", "control characters"},
		{"repository:app:pull\x7f", "control characters"},
		{"repository:äpp:pull", "non-ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %#v, want error", tt.in, got)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) error %T, want *ParseError", tt.in, err)
			}
			if pe.Input != tt.in {
				t.Errorf("Input = %q, want %q", pe.Input, tt.in)
			}
			if !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", pe.Reason, tt.reason)
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  ParseError
		want string
	}{
		{ParseError{Input: "x", Reason: "missing actions"}, `invalid scope "x": missing actions`},
		{ParseError{Input: "a\nb", Reason: "r"}, `invalid scope "a\nb": r`},
		{ParseError{Input: strings.Repeat("a", 100), Reason: "r"}, `invalid scope "` + strings.Repeat("a", 100) + `": r`},
		{ParseError{Input: strings.Repeat("a", 101), Reason: "r"}, `invalid scope "` + strings.Repeat("a", 100) + `"...: r`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestParseList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want []Scope
	}{
		{"nil", nil, nil},
		{"empty values skipped", []string{"", ""}, nil},
		{"one", []string{"repository:a:pull"}, []Scope{
			{Type: "repository", Name: "a", Actions: []string{"pull"}},
		}},
		{"repeated and space separated", []string{"repository:a:pull registry:catalog:*", "repository:b:push"}, []Scope{
			{Type: "repository", Name: "a", Actions: []string{"pull"}},
			{Type: "registry", Name: "catalog", Actions: []string{"*"}},
			{Type: "repository", Name: "b", Actions: []string{"push"}},
		}},
		{"merged in first-seen order", []string{"repository:a:pull", "repository:b:pull repository:a:push,pull", "repository:a:delete"}, []Scope{
			{Type: "repository", Name: "a", Actions: []string{"pull", "push", "delete"}},
			{Type: "repository", Name: "b", Actions: []string{"pull"}},
		}},
		{"class keeps scopes apart", []string{"repository:a:pull repository(plugin):a:push"}, []Scope{
			{Type: "repository", Name: "a", Actions: []string{"pull"}},
			{Type: "repository", Class: "plugin", Name: "a", Actions: []string{"push"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseList(tt.in)
			if err != nil {
				t.Fatalf("ParseList: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseList(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseListMaxScopes(t *testing.T) {
	t.Parallel()
	got, err := ParseList(repeatScopes(maxScopes))
	if err != nil {
		t.Fatalf("ParseList: %v", err)
	}
	if len(got) != maxScopes {
		t.Fatalf("got %d scopes, want %d", len(got), maxScopes)
	}
}

func repeatScopes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "repository:app" + strings.Repeat("x", i) + ":pull"
	}
	return out
}

func TestParseListInvalid(t *testing.T) {
	t.Parallel()
	manyActions := []string{
		"repository:a:a,b,c,d,e,f,g,h",
		"repository:a:i,j,k,l,m,n,o,p",
		"repository:a:q",
	}
	tests := []struct {
		name   string
		in     []string
		input  string
		reason string
	}{
		{"bad scope", []string{"repository:a:pull", "repository:a:"}, "repository:a:", "missing actions"},
		{"double space", []string{"repository:a:pull  repository:b:pull"}, "repository:a:pull  repository:b:pull", "single spaces"},
		{"leading space", []string{" repository:a:pull"}, " repository:a:pull", "single spaces"},
		{"trailing space", []string{"repository:a:pull "}, "repository:a:pull ", "single spaces"},
		{"65 scopes", repeatScopes(65), "repository:app" + strings.Repeat("x", 64) + ":pull", "more than 64 scopes"},
		{"65 duplicate scopes", []string{strings.TrimSpace(strings.Repeat("repository:a:pull ", 65))}, "repository:a:pull", "more than 64 scopes"},
		{"too many merged actions", manyActions, "repository:a:q", "more than 16 distinct actions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseList(tt.in)
			if err == nil {
				t.Fatalf("ParseList = %#v, want error", got)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T, want *ParseError", err)
			}
			if pe.Input != tt.input {
				t.Errorf("Input = %q, want %q", pe.Input, tt.input)
			}
			if !strings.Contains(pe.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", pe.Reason, tt.reason)
			}
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Scope
		want string
	}{
		{Scope{Type: "repository", Name: "a/b", Actions: []string{"pull", "push"}}, "repository:a/b:pull,push"},
		{Scope{Type: "repository", Class: "plugin", Name: "a", Actions: []string{"pull"}}, "repository(plugin):a:pull"},
		{Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}}, "registry:catalog:*"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

var fuzzSeeds = []string{
	"repository:alice/app:pull,push",
	"repository:localhost:5000/alice/app:pull,push",
	"repository(plugin):vieux/sshfs:pull",
	"registry:catalog:*",
	"repository:a.b_c__d-e--f/g:delete,pull,delete",
	"repository:app:",
	"repository:Alice/app:pull",
	"repository:app:pull repository:b:push",
	"repository(:a:b",
	"a:b:c:d",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			checkParseError(t, err)
			return
		}
		checkScope(t, s)
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("Parse(%q) ok but Parse(String() = %q): %v", in, s.String(), err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip of %q: got %#v, want %#v", in, again, s)
		}
	})
}

func FuzzParseList(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "repository:alice/app:delete")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		list, err := ParseList([]string{a, b})
		if err != nil {
			checkParseError(t, err)
			return
		}
		if len(list) > maxScopes {
			t.Fatalf("%d scopes, limit is %d", len(list), maxScopes)
		}
		seen := map[string]bool{}
		for _, s := range list {
			checkScope(t, s)
			if seen[s.resource()] {
				t.Fatalf("resource %q not merged", s.resource())
			}
			seen[s.resource()] = true
			again, err := Parse(s.String())
			if err != nil || !reflect.DeepEqual(again, s) {
				t.Fatalf("merged scope %q does not round-trip: %#v, %v", s.String(), again, err)
			}
		}
	})
}

func checkScope(t *testing.T, s Scope) {
	t.Helper()
	if len(s.Actions) == 0 || len(s.Actions) > maxActions {
		t.Fatalf("%d actions in %#v", len(s.Actions), s)
	}
	seen := map[string]bool{}
	for _, a := range s.Actions {
		if seen[a] {
			t.Fatalf("duplicate action %q in %#v", a, s)
		}
		seen[a] = true
	}
}

// checkParseError guards what reaches HTTP clients: a typed error whose text
// is bounded and printable whatever the input was.
func checkParseError(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %T, want *ParseError", err)
	}
	msg := err.Error()
	if len(msg) > 1000 {
		t.Fatalf("error message is %d bytes", len(msg))
	}
	for _, r := range msg {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			t.Fatalf("error message has non-printable %q: %q", r, msg)
		}
	}
}
