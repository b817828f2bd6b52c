// Package scope models the resource scopes of the distribution token protocol
// (type[(class)]:name:actions) and parses them with the spec's grammar.
//
// Public API: other programs import this package, so its exported names change only in a
// way that keeps their code compiling (Portcullis's own internals live under internal/).
package scope

import "strings"

// Scope is one resource scope. Actions keep the order the client sent them in.
type Scope struct {
	Type    string
	Class   string
	Name    string
	Actions []string
}

// resource is the scope without its actions; merging uses it as a key.
func (s Scope) resource() string {
	if s.Class == "" {
		return s.Type + ":" + s.Name
	}
	return s.Type + "(" + s.Class + "):" + s.Name
}

// String renders the canonical form that Parse accepts.
func (s Scope) String() string {
	return s.resource() + ":" + strings.Join(s.Actions, ",")
}
