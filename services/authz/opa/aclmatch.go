package opa

import (
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// aclMatcher is the acl policy's rule matching compiled in Go when the data loads: the
// policy (deploy/policies/acl) calls it as portcullis.acl_first_match, and keeps the same
// semantics in plain Rego for when it runs without the engine (its tests, `opa eval`).
// Compiled, a decision costs what the rules filed under the request's account and name
// segment cost, each test a string comparison, a glob or a precompiled regexp.
type aclMatcher struct {
	rules []aclRule
	index map[string]map[string][]int // account (or "*") → first name segment (or "*") → rule indexes, ascending
}

var aclFields = [4]string{"account", "type", "name", "service"}

type aclRule struct {
	fields [4]*aclPattern // nil: the rule does not look at the field
	ip     *netip.Prefix
	labels map[string]*aclPattern
}

type aclPattern struct {
	raw      string
	literal  bool           // matches exactly raw
	re       *regexp.Regexp // a "/…/" pattern without placeholders
	template bool           // holds placeholders: filled in per request
	labelled bool           // holds ${labels:…}
}

func newACLPattern(p string) *aclPattern {
	ap := &aclPattern{raw: p, template: strings.Contains(p, "${")}
	ap.labelled = ap.template && strings.Contains(p, "${labels:")
	switch {
	case ap.template:
	case isRegexpPattern(p):
		ap.re = regexp.MustCompile(p[1 : len(p)-1]) // checked when the data loaded
	default:
		ap.literal = literal(p)
	}
	return ap
}

// newACLMatcher compiles rules that checkACLRule has accepted.
func newACLMatcher(rules []any) *aclMatcher {
	m := &aclMatcher{index: map[string]map[string][]int{}}
	for j, r := range rules {
		match := r.(map[string]any)["match"].(map[string]any)
		var rule aclRule
		var account, name *string
		for i, f := range aclFields {
			if p, ok := match[f].(string); ok {
				rule.fields[i] = newACLPattern(p)
				switch f {
				case "account":
					account = &p
				case "name":
					name = &p
				}
			}
		}
		if ip, ok := match["ip"].(string); ok {
			pfx, err := netip.ParsePrefix(ip)
			if err != nil {
				addr, _ := netip.ParseAddr(ip)
				pfx = netip.PrefixFrom(addr, addr.BitLen())
			}
			rule.ip = &pfx
		}
		if ls, ok := match["labels"].(map[string]any); ok {
			rule.labels = map[string]*aclPattern{}
			for k, v := range ls {
				rule.labels[k] = newACLPattern(v.(string))
			}
		}
		m.rules = append(m.rules, rule)
		k1, k2 := literalOrAny(account), literalSegmentOrAny(name)
		if m.index[k1] == nil {
			m.index[k1] = map[string][]int{}
		}
		m.index[k1][k2] = append(m.index[k1][k2], j)
	}
	return m
}

// aclRequest is one scope as docker_auth matches it.
type aclRequest struct {
	fields [4]string // account, type, name, service
	ip     netip.Addr
	labels map[string][]string
}

// firstMatch is the index of the first rule matching req, or -1.
func (m *aclMatcher) firstMatch(req *aclRequest) int {
	seg, _, _ := strings.Cut(req.fields[2], "/")
	best := -1
	for _, k1 := range [2]string{req.fields[0], "*"} {
		for _, k2 := range [2]string{seg, "*"} {
			for _, j := range m.index[k1][k2] {
				if best >= 0 && j >= best {
					break // ascending: nothing earlier left in this bucket
				}
				if m.rules[j].matches(req) {
					best = j
					break
				}
			}
		}
	}
	return best
}

func (r *aclRule) matches(req *aclRequest) bool {
	var vars *strings.Replacer
	needVars := false
	for _, p := range r.fields {
		needVars = needVars || (p != nil && p.template)
	}
	for _, p := range r.labels {
		needVars = needVars || p.template
	}
	if needVars {
		vars = r.vars(req)
	}
	for i, p := range r.fields {
		if p != nil && !p.matches(req.fields[i], vars, req.labels) {
			return false
		}
	}
	if r.ip != nil && (!req.ip.IsValid() || !r.ip.Contains(req.ip)) {
		return false
	}
	for k, p := range r.labels {
		ok := false
		for _, v := range req.labels[k] {
			if p.matchesPlain(v, vars) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

var aclCaptureRef = regexp.MustCompile(`\$\{(.+?):(\d+)\}`)

// vars are docker_auth's placeholder values: the request's fields and the capture groups of
// the rule's regexps (named ${field:N}), every one regex-quoted. QuoteMeta's output is also
// a literal for path.Match, whose backslash escapes any character, so one quoting serves
// globs and regexps: a value "*" matches "*" only. (docker_auth leaves capture groups and
// label values unquoted; labels may come from claims a CI user controls.)
func (r *aclRule) vars(req *aclRequest) *strings.Replacer {
	pairs := make([]string, 0, 8)
	for i, f := range aclFields {
		pairs = append(pairs, "${"+f+"}", regexp.QuoteMeta(req.fields[i]))
	}
	for _, p := range r.fields {
		if p == nil || !p.template {
			continue
		}
		for _, ref := range aclCaptureRef.FindAllStringSubmatch(p.raw, -1) {
			i := fieldIndex(ref[1])
			if i < 0 || r.fields[i] == nil || !isRegexpPattern(r.fields[i].raw) {
				continue
			}
			re, err := cachedRegexp(r.fields[i].raw[1 : len(r.fields[i].raw)-1])
			if err != nil {
				continue
			}
			groups := re.FindStringSubmatch(req.fields[i])
			n, _ := strconv.Atoi(ref[2])
			if n >= 1 && n < len(groups) {
				pairs = append(pairs, ref[0], regexp.QuoteMeta(groups[n]))
			}
		}
	}
	return strings.NewReplacer(pairs...)
}

func fieldIndex(f string) int {
	for i, g := range aclFields {
		if g == f {
			return i
		}
	}
	return -1
}

// matches tries the pattern with the placeholders filled in and, as docker_auth does when
// that fails, with each choice of the user's values for its ${labels:…} placeholders, each
// value regex-quoted like every substituted value.
func (p *aclPattern) matches(value string, vars *strings.Replacer, labels map[string][]string) bool {
	if p.matchesPlain(value, vars) {
		return true
	}
	if !p.labelled {
		return false
	}
	keys := labelRef.FindAllString(p.raw, -1)
	seen := map[string]bool{}
	var uniq []string
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	var try func(i int, pairs []string) bool
	try = func(i int, pairs []string) bool {
		if i == len(uniq) {
			filled := strings.NewReplacer(pairs...).Replace(p.raw)
			return matchPattern(vars.Replace(filled), value)
		}
		for _, v := range labels[uniq[i][len("${labels:"):len(uniq[i])-1]] {
			if try(i+1, append(pairs, uniq[i], regexp.QuoteMeta(v))) {
				return true
			}
		}
		return false
	}
	return try(0, nil)
}

func (p *aclPattern) matchesPlain(value string, vars *strings.Replacer) bool {
	switch {
	case p.literal:
		return value == p.raw
	case p.re != nil:
		return p.re.MatchString(value)
	case p.template:
		return matchPattern(vars.Replace(p.raw), value)
	}
	return matchPattern(p.raw, value)
}

// matchPattern is docker_auth's matchString after replacement: an unanchored regexp for
// "/…/", else path.Match; a malformed pattern matches nothing.
func matchPattern(p, value string) bool {
	if isRegexpPattern(p) {
		re, err := cachedRegexp(p[1 : len(p)-1])
		return err == nil && re.MatchString(value)
	}
	ok, err := path.Match(p, value)
	return err == nil && ok
}

// regexpCache holds the regexps placeholders produce (one per user for "/^${account}-ci$/"):
// bounded, cleared when full.
var regexpCache struct {
	sync.Mutex
	m map[string]*regexp.Regexp
}

func cachedRegexp(expr string) (*regexp.Regexp, error) {
	regexpCache.Lock()
	re, ok := regexpCache.m[expr]
	regexpCache.Unlock()
	if ok {
		return re, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	regexpCache.Lock()
	if regexpCache.m == nil || len(regexpCache.m) > 4096 {
		regexpCache.m = map[string]*regexp.Regexp{}
	}
	regexpCache.m[expr] = re
	regexpCache.Unlock()
	return re, nil
}

// aclBuiltinName is the function the acl policy calls.
const aclBuiltinName = "portcullis.acl_first_match"

var aclBuiltinDecl = types.NewFunction(types.Args(types.A), types.N)

// aclHolder is the compiled ACL of the data an engine's policy runs with. It is set before
// the policy it belongs to is published and never changed after: a data-only update makes a
// new holder with its new store (compiled.withData), so data and index go live together.
type aclHolder struct{ m atomic.Pointer[aclMatcher] }

// builtin is portcullis.acl_first_match(request): the index of the first matching rule,
// undefined when none matches (or no ACL is compiled).
func (h *aclHolder) builtin() func(*rego.Rego) {
	return rego.Function1(&rego.Function{Name: aclBuiltinName, Decl: aclBuiltinDecl},
		func(_ rego.BuiltinContext, a *ast.Term) (*ast.Term, error) { return h.firstMatch(a), nil })
}

// firstMatch is the builtin's answer for request a: the rule's index, or nil (undefined).
func (h *aclHolder) firstMatch(a *ast.Term) *ast.Term {
	m := h.m.Load()
	if m == nil {
		return nil
	}
	req, ok := aclRequestOf(a.Value)
	if !ok {
		return nil
	}
	if j := m.firstMatch(req); j >= 0 {
		return ast.IntNumberTerm(j)
	}
	return nil
}

// aclRequestOf reads {account, type, name, service, ip, labels} as the policy passes it.
func aclRequestOf(v ast.Value) (*aclRequest, bool) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, false
	}
	req := &aclRequest{labels: map[string][]string{}}
	str := func(k string) string {
		if t := obj.Get(ast.StringTerm(k)); t != nil {
			if s, ok := t.Value.(ast.String); ok {
				return string(s)
			}
		}
		return ""
	}
	for i, f := range aclFields {
		req.fields[i] = str(f)
	}
	if addr, err := netip.ParseAddr(str("ip")); err == nil {
		req.ip = addr.Unmap()
	}
	if t := obj.Get(ast.StringTerm("labels")); t != nil {
		if lo, ok := t.Value.(ast.Object); ok {
			lo.Foreach(func(k, v *ast.Term) {
				key, ok := k.Value.(ast.String)
				if !ok {
					return
				}
				switch vv := v.Value.(type) {
				case ast.String:
					req.labels[string(key)] = []string{string(vv)}
				case *ast.Array:
					vv.Foreach(func(e *ast.Term) {
						if s, ok := e.Value.(ast.String); ok {
							req.labels[string(key)] = append(req.labels[string(key)], string(s))
						}
					})
				}
			})
		}
	}
	return req, true
}
