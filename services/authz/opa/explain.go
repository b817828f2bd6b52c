package opa

import (
	"context"
	"fmt"
	"slices"

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
	var allowedRS rego.ResultSet
	var reasons []authz.Reason
	if len(rs) > 0 {
		if v, ok := rs[0].Bindings["allowed"]; ok {
			allowedRS = rego.ResultSet{{Expressions: []*rego.ExpressionValue{{Value: v}}}}
		}
		if v, ok := rs[0].Bindings["reasons"].([]any); ok {
			for _, r := range v {
				m, _ := r.(map[string]any)
				str := func(k string) string { s, _ := m[k].(string); return s }
				reasons = append(reasons, authz.Reason{Type: str("type"), Class: str("class"), Name: str("name"), Action: str("action"), Reason: str("reason")})
			}
		}
	}
	allowed, err := allowedJSON(allowedRS)
	if err != nil {
		return authz.Decision{}, nil, fmt.Errorf("opa: %w", err)
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

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// allowedJSON reads allowed from a binding, which comes as JSON values (sets as arrays).
func allowedJSON(rs rego.ResultSet) (map[grant]struct{}, error) {
	out := map[grant]struct{}{}
	if len(rs) == 0 {
		return out, nil
	}
	elems, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a set, got %T", query, rs[0].Expressions[0].Value)
	}
	for _, el := range elems {
		arr, ok := el.([]any)
		if !ok || len(arr) != 4 {
			return nil, fmt.Errorf("%s: element %v is not [type, class, name, action]", query, el)
		}
		var g grant
		for i := range g {
			if g[i], ok = arr[i].(string); !ok {
				return nil, fmt.Errorf("%s: element %v is not [type, class, name, action] of strings", query, el)
			}
		}
		out[g] = struct{}{}
	}
	return out, nil
}
