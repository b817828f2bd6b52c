// Package claims maps a verified token's claims to an identity, written once for every part
// of authn that reads OpenID Connect tokens: the oidc workload backend and SSO sign-in. The
// configuration keys subject, groups, labels and claims therefore mean the same in both.
//
// Claims are addressed by dotted paths; a claim whose name contains a dot is written as is,
// the longest literal key winning at each level ("kubernetes.io.namespace"). Values compare
// as strings, so GitLab's "false" and a JSON false are the same.
package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
)

// Path is a dotted claim path, split once when the configuration is compiled.
type Path struct {
	raw  string
	segs []string
}

// NewPath splits p; CheckPath says whether p is well formed.
func NewPath(p string) Path { return Path{raw: p, segs: strings.Split(p, ".")} }

// String is the path as configured.
func (p Path) String() string { return p.raw }

// Lookup finds the claim at p. A claim whose name contains dots (Kubernetes' "kubernetes.io")
// is addressed by writing the name as is: at each level the longest run of segments that
// names a key is tried first, then shorter ones, descending into objects. So
// "kubernetes.io.namespace" finds {"kubernetes.io": {"namespace": …}}, and where both
// {"a.b": 1} and {"a": {"b": 2}} exist, "a.b" is 1 (the literal key wins).
func (p Path) Lookup(claims map[string]any) (any, bool) {
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

// Scalar is a claim value as a string: strings as they are, booleans as "true"/"false",
// numbers as written in the token (Decode keeps them as json.Number). GitLab sends some
// booleans as strings ("ref_protected": "false"), so comparing strings makes either form
// match the same pattern.
func Scalar(v any) (string, bool) {
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

// Decode reads a token's payload with numbers kept as written, which Scalar relies on.
func Decode(payload []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("claims are not a JSON object")
	}
	return claims, nil
}

// Rule is one required claim: the value at Path must match one of Patterns.
type Rule struct {
	Path     Path
	Patterns []string
}

// Matches reports whether the claim is present and matches; an array claim matches when one
// of its scalar elements does.
func (r Rule) Matches(claims map[string]any) bool {
	v, ok := r.Path.Lookup(claims)
	if !ok {
		return false
	}
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if s, ok := Scalar(e); ok && r.matchString(s) {
				return true
			}
		}
		return false
	}
	s, ok := Scalar(v)
	return ok && r.matchString(s)
}

func (r Rule) matchString(s string) bool {
	for _, p := range r.Patterns {
		// Validate refused bad patterns, so an error here cannot happen; it would not match.
		if ok, err := path.Match(p, s); err == nil && ok {
			return true
		}
	}
	return false
}

// AppendValues appends the non-empty scalar values at v (one scalar or an array of them) to
// out, skipping ones already there.
func AppendValues(out []string, v any) []string {
	add := func(e any) {
		if s, ok := Scalar(e); ok && s != "" && !slices.Contains(out, s) {
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

// CheckPath refuses an empty claim path or one with an empty segment.
func CheckPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty claim path")
	}
	if slices.Contains(strings.Split(p, "."), "") {
		return fmt.Errorf("claim path %q has an empty segment", p)
	}
	return nil
}

// Strings is one string or a list of them in YAML.
type Strings []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (p *Strings) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*p = Strings{s}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
	}
	*p = l
	return nil
}

// Spec is a mapping as configured: the keys subject, groups, labels and claims.
type Spec struct {
	// Subject is the claim path of the identity's subject. Required.
	Subject string
	// Groups are claim paths whose values (a string or an array of them) become groups.
	Groups []string
	// Labels maps a label name to the claim path of its values: a string, number or boolean
	// gives one value, an array of them every non-empty element (once, in claim order); a
	// label whose claim is missing, an object or an empty array is not set.
	Labels map[string]string
	// Claims a token must carry: claim path → patterns (any matches). A pattern is a
	// path.Match glob (`*` does not cross `/`); without metacharacters it is an equality test.
	Claims map[string]Strings
	// SubjectHint ends the "is required" problem, e.g. "(the claim path of the subject, e.g. sub)".
	SubjectHint string
}

// Validate records the spec's problems under at (a key prefix, "" for none).
func (s Spec) Validate(at string, p *config.Problems) {
	key := func(k string) string {
		if at == "" {
			return k
		}
		return at + "." + k
	}
	for cp, pats := range s.Claims {
		if err := CheckPath(cp); err != nil {
			p.Addf(key("claims"), "%q: %v", cp, err)
		}
		if len(pats) == 0 {
			p.Addf(key("claims."+cp), "needs at least one pattern")
		}
		for _, pat := range pats {
			if _, err := path.Match(pat, ""); err != nil {
				p.Addf(key("claims."+cp), "bad pattern %q", pat)
			}
		}
	}
	if s.Subject == "" {
		p.Addf(key("subject"), "%s", strings.TrimSpace("is required "+s.SubjectHint))
	} else if err := CheckPath(s.Subject); err != nil {
		p.Addf(key("subject"), "%v", err)
	}
	for _, g := range s.Groups {
		if err := CheckPath(g); err != nil {
			p.Addf(key("groups"), "%q: %v", g, err)
		}
	}
	for name, cp := range s.Labels {
		if name == "" {
			p.Addf(key("labels"), "a label name must not be empty")
		}
		if err := CheckPath(cp); err != nil {
			p.Addf(key("labels."+name), "%v", err)
		}
	}
}

// Mapping is a compiled Spec.
type Mapping struct {
	subject Path
	groups  []Path
	labels  []label
	rules   []Rule
}

type label struct {
	name string
	path Path
}

// Compile prepares a validated spec.
func (s Spec) Compile() *Mapping {
	m := &Mapping{subject: NewPath(s.Subject)}
	for p, pats := range s.Claims {
		m.rules = append(m.rules, Rule{Path: NewPath(p), Patterns: slices.Clone(pats)})
	}
	// Map order is random; a fixed order makes the first failing rule the one reported.
	slices.SortFunc(m.rules, func(a, b Rule) int { return strings.Compare(a.Path.raw, b.Path.raw) })
	for _, g := range s.Groups {
		m.groups = append(m.groups, NewPath(g))
	}
	for name, p := range s.Labels {
		m.labels = append(m.labels, label{name: name, path: NewPath(p)})
	}
	slices.SortFunc(m.labels, func(a, b label) int { return strings.Compare(a.name, b.name) })
	return m
}

var (
	// ErrClaimMismatch: a required claim is missing or matches none of its patterns.
	ErrClaimMismatch = errors.New("required claim does not match")
	// ErrNoSubject: the subject claim is missing, empty or not a scalar.
	ErrNoSubject = errors.New("subject claim missing or not a string")
)

// RefusedError says which claim refused a token; it wraps ErrClaimMismatch or ErrNoSubject.
// Its text names the claim path, never a claim's value, so it may be logged.
type RefusedError struct {
	Claim string
	Err   error
}

func (e *RefusedError) Error() string {
	if e.Err == ErrNoSubject {
		return "subject claim " + e.Claim + " missing or not a string"
	}
	return "claim " + e.Claim + " does not match"
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Identity checks the required claims and maps subject, groups and labels. Its errors wrap
// ErrClaimMismatch or ErrNoSubject (a *RefusedError naming the claim path, never a value). Backend,
// ValidUntil and whether the subject may hold ':' are the caller's.
func (m *Mapping) Identity(claims map[string]any) (identity.Identity, error) {
	for _, r := range m.rules {
		if !r.Matches(claims) {
			return identity.Identity{}, &RefusedError{Claim: r.Path.raw, Err: ErrClaimMismatch}
		}
	}
	v, ok := m.subject.Lookup(claims)
	sub, isScalar := Scalar(v)
	if !ok || !isScalar || sub == "" {
		return identity.Identity{}, &RefusedError{Claim: m.subject.raw, Err: ErrNoSubject}
	}
	id := identity.Identity{Subject: sub}
	for _, g := range m.groups {
		if v, ok := g.Lookup(claims); ok {
			id.Groups = AppendValues(id.Groups, v)
		}
	}
	for _, l := range m.labels {
		v, ok := l.path.Lookup(claims)
		if !ok {
			continue
		}
		var vs []string
		if s, ok := Scalar(v); ok {
			vs = []string{s}
		} else if _, ok := v.([]any); ok {
			vs = AppendValues(nil, v) // an array claim: every non-empty scalar element, once
		}
		if len(vs) == 0 {
			continue
		}
		if id.Labels == nil {
			id.Labels = map[string][]string{}
		}
		id.Labels[l.name] = vs
	}
	return id, nil
}
