package authz

import (
	"path"
	"slices"

	"github.com/portcullis-dev/portcullis/pkg/scope"
)

// Narrow is granted cut down to what narrowing allows (a personal access token's scopes,
// identity.PATScopes): each granted action is kept only when some narrowing scope of the same
// type and class has a name pattern matching the scope's name (path.Match: "*" stays within
// one path component) and lists the action (or "*"). It only ever removes: what the policy did
// not grant, no narrowing adds. No narrowing returns granted itself; otherwise the result
// shares no slices with it.
func Narrow(granted, narrowing []scope.Scope) []scope.Scope {
	if len(narrowing) == 0 {
		return granted
	}
	var out []scope.Scope
	for _, g := range granted {
		var actions []string
		for _, a := range g.Actions {
			if narrowAllows(narrowing, g, a) {
				actions = append(actions, a)
			}
		}
		if len(actions) > 0 {
			out = append(out, scope.Scope{Type: g.Type, Class: g.Class, Name: g.Name, Actions: actions})
		}
	}
	return out
}

func narrowAllows(narrowing []scope.Scope, g scope.Scope, action string) bool {
	for _, n := range narrowing {
		if n.Type != g.Type || n.Class != g.Class {
			continue
		}
		if ok, err := path.Match(n.Name, g.Name); err != nil || !ok {
			continue
		}
		if slices.Contains(n.Actions, "*") || slices.Contains(n.Actions, action) {
			return true
		}
	}
	return false
}
