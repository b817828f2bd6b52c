package oidc

import (
	"encoding/json"
	"path"
	"slices"
	"strconv"
	"strings"
)

// claimPath is a dotted claim path, split once at Open.
type claimPath struct {
	raw  string
	segs []string
}

func newPath(p string) claimPath { return claimPath{raw: p, segs: strings.Split(p, ".")} }

// lookup finds the claim at p. A claim whose name contains dots (Kubernetes' "kubernetes.io")
// is addressed by writing the name as is: at each level the longest run of segments that
// names a key is tried first, then shorter ones, descending into objects. So
// "kubernetes.io.namespace" finds {"kubernetes.io": {"namespace": …}}, and where both
// {"a.b": 1} and {"a": {"b": 2}} exist, "a.b" is 1 (the literal key wins).
func (p claimPath) lookup(claims map[string]any) (any, bool) {
	return lookupSegs(claims, p.segs)
}

func lookupSegs(obj map[string]any, segs []string) (any, bool) {
	for n := len(segs); n >= 1; n-- {
		v, ok := obj[strings.Join(segs[:n], ".")]
		if !ok {
			continue
		}
		if n == len(segs) {
			return v, true
		}
		if sub, ok := v.(map[string]any); ok {
			if r, ok := lookupSegs(sub, segs[n:]); ok {
				return r, true
			}
		}
	}
	return nil, false
}

// scalar is a claim value as a string: strings as they are, booleans as "true"/"false",
// numbers as written in the token. GitLab sends some booleans as strings ("ref_protected":
// "false"), so comparing strings makes either form match the same pattern.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case json.Number:
		return v.String(), true
	default:
		return "", false
	}
}

// claimRule is one required claim: the value at path must match one of the patterns.
type claimRule struct {
	path claimPath
	pats []string
}

// matches reports whether the claim is present and matches; an array claim matches when one
// of its scalar elements does.
func (r claimRule) matches(claims map[string]any) bool {
	v, ok := r.path.lookup(claims)
	if !ok {
		return false
	}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if s, ok := scalar(e); ok && r.matchString(s) {
				return true
			}
		}
		return false
	}
	s, ok := scalar(v)
	return ok && r.matchString(s)
}

func (r claimRule) matchString(s string) bool {
	for _, p := range r.pats {
		// Validate refused bad patterns, so an error here cannot happen; it would not match.
		if ok, err := path.Match(p, s); err == nil && ok {
			return true
		}
	}
	return false
}

// appendValues appends the non-empty scalar values at v (one scalar or an array of them) to
// out, skipping ones already there.
func appendValues(out []string, v any) []string {
	add := func(e any) {
		if s, ok := scalar(e); ok && s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			add(e)
		}
		return out
	}
	add(v)
	return out
}
