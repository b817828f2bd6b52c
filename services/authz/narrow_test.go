package authz_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authz"
)

func scopes(t *testing.T, ss ...string) []scope.Scope {
	t.Helper()
	out, err := pats.ParseScopes(ss)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNarrow(t *testing.T) {
	granted := func(t *testing.T) []scope.Scope {
		return scopes(t, "repository:alice/app:pull,push", "repository:alice/a/b:pull", "repository:bob/app:pull,push,delete",
			"repository(plugin):alice/p:pull", "registry:catalog:*")
	}
	for _, c := range []struct {
		name      string
		narrowing []string
		want      []string
	}{
		{"none", nil, []string{"repository:alice/app:pull,push", "repository:alice/a/b:pull", "repository:bob/app:pull,push,delete",
			"repository(plugin):alice/p:pull", "registry:catalog:*"}},
		{"star within one component", []string{"repository:alice/*:pull"}, []string{"repository:alice/app:pull"}},
		{"any action", []string{"repository:bob/app:*"}, []string{"repository:bob/app:pull,push,delete"}},
		{"class must match", []string{"repository:alice/*:pull,push"}, []string{"repository:alice/app:pull,push"}},
		{"several", []string{"repository:alice/*/*:pull", "repository(plugin):alice/*:pull", "repository:bob/app:delete"},
			[]string{"repository:alice/a/b:pull", "repository:bob/app:delete", "repository(plugin):alice/p:pull"}},
		{"nothing matches", []string{"repository:carol/*:*"}, nil},
		// A narrowing never widens: an action the policy did not grant stays out.
		{"no widening", []string{"repository:alice/*:pull,push,delete"}, []string{"repository:alice/app:pull,push"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := authz.Narrow(granted(t), scopes(t, c.narrowing...))
			var gs []string
			for _, s := range got {
				gs = append(gs, s.String())
			}
			if strings.Join(gs, " ") != strings.Join(c.want, " ") {
				t.Errorf("Narrow = %v, want %v", gs, c.want)
			}
		})
	}
}
