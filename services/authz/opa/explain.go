package opa

import (
	"context"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/portcullis-dev/portcullis/internal/randid"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// Explain decides req like Authorize and also returns, for each denied action, the reason
// the policy gives (policies without a reasons rule give none).
func (e *engine) Explain(ctx context.Context, req authz.Request) (authz.Decision, []authz.Reason, error) {
	p := e.cur.Load()
	if p == nil {
		return authz.Decision{}, nil, fmt.Errorf("%w: no policy loaded yet", authz.ErrUnavailable)
	}
	if !p.hasReasons {
		d, err := e.Authorize(ctx, req)
		return d, nil, err
	}
	if err := req.Validate(); err != nil {
		return authz.Decision{}, nil, err
	}
	return e.explainWith(ctx, p, req)
}

func (e *engine) explainWith(ctx context.Context, p *compiled, req authz.Request) (authz.Decision, []authz.Reason, error) {
	rs, err := p.explain.Eval(ctx, rego.EvalParsedInput(inputValue(req)), rego.EvalTime(e.now()))
	if err != nil {
		return authz.Decision{}, nil, fmt.Errorf("opa: evaluate policy: %w", err)
	}
	// The bindings stay AST terms (the query's GenerateJSON), read as Authorize reads its
	// result: converting them to Go values cost as much as the reasons themselves.
	var allowed map[grant]struct{}
	var reasons []authz.Reason
	if len(rs) > 0 {
		if v, ok := rs[0].Bindings["allowed"]; ok {
			if allowed, err = allowedOf(v); err != nil {
				return authz.Decision{}, nil, fmt.Errorf("opa: %w", err)
			}
		}
		if t, ok := rs[0].Bindings["reasons"].(*ast.Term); ok {
			reasons = reasonsOf(t.Value)
		}
	}
	granted := authz.Grant(req.Requested, func(s scope.Scope, action string) bool {
		_, ok := allowed[grant{s.Type, s.Class, s.Name, action}]
		return ok
	})
	slices.SortFunc(reasons, func(a, b authz.Reason) int {
		return compareStrings(a.Type+a.Class+a.Name+a.Action, b.Type+b.Class+b.Name+b.Action)
	})
	return authz.Decision{Granted: granted, DecisionID: randid.Hex(16)}, reasons, nil
}

// reasonsOf reads the policy's reasons, a set (or array) of {type, class, name, action,
// reason} objects; a field that is missing or not a string reads as "".
func reasonsOf(v ast.Value) []authz.Reason {
	var out []authz.Reason
	add := func(t *ast.Term) {
		obj, _ := t.Value.(ast.Object)
		str := func(k string) string {
			if obj == nil {
				return ""
			}
			if f := obj.Get(ast.InternedTerm(k)); f != nil {
				if s, ok := f.Value.(ast.String); ok {
					return string(s)
				}
			}
			return ""
		}
		out = append(out, authz.Reason{Type: str("type"), Class: str("class"), Name: str("name"), Action: str("action"), Reason: str("reason")})
	}
	switch c := v.(type) {
	case ast.Set:
		c.Foreach(add)
	case *ast.Array:
		c.Foreach(add)
	}
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
