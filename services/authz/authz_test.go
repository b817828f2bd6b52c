package authz_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

func repo(name string, actions ...string) scope.Scope {
	return scope.Scope{Type: "repository", Name: name, Actions: actions}
}

func TestGrant(t *testing.T) {
	t.Parallel()
	allowAll := func(scope.Scope, string) bool { return true }
	tests := []struct {
		name      string
		requested []scope.Scope
		allow     func(scope.Scope, string) bool
		want      []scope.Scope
	}{
		{"nothing requested", nil, allowAll, nil},
		{"deny all", []scope.Scope{repo("a/b", "pull")}, func(scope.Scope, string) bool { return false }, nil},
		{
			name:      "allow all keeps order",
			requested: []scope.Scope{repo("z/z", "push", "pull"), repo("a/a", "pull")},
			allow:     allowAll,
			want:      []scope.Scope{repo("z/z", "push", "pull"), repo("a/a", "pull")},
		},
		{
			name:      "denied actions dropped, empty scopes omitted",
			requested: []scope.Scope{repo("a/b", "push", "pull"), repo("c/d", "push"), repo("e/f", "delete", "pull")},
			allow:     func(_ scope.Scope, a string) bool { return a == "pull" },
			want:      []scope.Scope{repo("a/b", "pull"), repo("e/f", "pull")},
		},
		{
			name:      "repeated action once",
			requested: []scope.Scope{repo("a/b", "pull", "push", "pull")},
			allow:     allowAll,
			want:      []scope.Scope{repo("a/b", "pull", "push")},
		},
		{
			name:      "class kept",
			requested: []scope.Scope{{Type: "repository", Class: "plugin", Name: "a/b", Actions: []string{"pull"}}},
			allow:     allowAll,
			want:      []scope.Scope{{Type: "repository", Class: "plugin", Name: "a/b", Actions: []string{"pull"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := authz.Grant(tt.requested, tt.allow)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Grant = %v, want %v", got, tt.want)
			}
		})
	}
}

// allow is only asked about requested actions, and the result does not share
// memory with the request.
func TestGrantSubsetAndCopy(t *testing.T) {
	t.Parallel()
	requested := []scope.Scope{repo("a/b", "pull", "push")}
	var asked []string
	got := authz.Grant(requested, func(s scope.Scope, a string) bool {
		asked = append(asked, s.Name+":"+a)
		return true
	})
	if want := []string{"a/b:pull", "a/b:push"}; !reflect.DeepEqual(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
	got[0].Actions[0] = "delete"
	if requested[0].Actions[0] != "pull" {
		t.Error("Grant result aliases the request")
	}
}

func TestRequestValidate(t *testing.T) {
	t.Parallel()
	alice := identity.Identity{Subject: "alice"}
	tests := []struct {
		name    string
		req     authz.Request
		wantErr bool
	}{
		{"anonymous, no scopes", authz.Request{Identity: identity.Anon()}, false},
		{"user with scopes", authz.Request{Identity: alice, Requested: []scope.Scope{repo("a/b", "pull")}}, false},
		{"scope without actions", authz.Request{Identity: alice, Requested: []scope.Scope{repo("a/b")}}, false},
		{"zero identity", authz.Request{}, true},
		{"empty type", authz.Request{Identity: alice, Requested: []scope.Scope{{Name: "a/b", Actions: []string{"pull"}}}}, true},
		{"empty name", authz.Request{Identity: alice, Requested: []scope.Scope{repo("", "pull")}}, true},
		{"empty action", authz.Request{Identity: alice, Requested: []scope.Scope{repo("a/b", "pull", "")}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.req.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, authz.ErrInvalidRequest) {
				t.Errorf("Validate() = %v, not ErrInvalidRequest", err)
			}
		})
	}
}
