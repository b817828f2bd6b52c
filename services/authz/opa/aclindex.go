package opa

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A data document with a top-level "acl" list is a docker_auth ACL for the shipped acl
// policy (deploy/policies/acl). When it loads, every rule is checked — a bad regexp, IP
// pattern or a missing actions list rejects the load, naming the rule, as docker_auth refuses
// to start — and the rules are indexed by the two parts that are most often literal: the
// account and the first segment of the name. The policy then tests only the rules filed
// under the request's account and segment and those filed under "*" (not literal), so the
// cost of a decision follows the rules that can match, not the length of the list.

const (
	aclKey      = "acl"
	aclIndexKey = "acl_index"
)

var (
	aclRuleKeys  = []string{"match", "actions", "comment"}
	aclMatchKeys = []string{"account", "type", "name", "service", "ip", "labels"}
)

// withACLIndex returns data with data.acl_index computed from data.acl, or data unchanged
// when it has no acl.
func withACLIndex(data map[string]any) (map[string]any, error) {
	raw, ok := data[aclKey]
	if !ok {
		return data, nil
	}
	if _, taken := data[aclIndexKey]; taken {
		return nil, fmt.Errorf("data: %q is computed from %q when the data loads; remove it", aclIndexKey, aclKey)
	}
	rules, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("data: %q must be a list of rules, got %T", aclKey, raw)
	}
	index := map[string]map[string][]any{}
	compiled := make([]any, 0, len(rules))
	var errs []error
	for j, r := range rules {
		account, name, err := checkACLRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("data: acl[%d]: %w", j, err))
			continue
		}
		k1, k2 := literalOrAny(account), literalSegmentOrAny(name)
		if index[k1] == nil {
			index[k1] = map[string][]any{}
		}
		index[k1][k2] = append(index[k1][k2], j)
		compiled = append(compiled, compileACLRule(r.(map[string]any)))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	out := maps.Clone(data)
	idx := make(map[string]any, len(index)+1)
	for k1, m := range index {
		inner := make(map[string]any, len(m))
		for k2, js := range m {
			inner[k2] = js
		}
		idx[k1] = inner
	}
	// The compiled rules sit beside the account buckets under a key no literal account can
	// be: "*" is a glob character.
	idx["*rules"] = compiled
	out[aclIndexKey] = idx
	return out, nil
}

// compileACLRule is the rule as the policy's fast path reads it: each present field's
// pattern already in the form the matcher takes (a glob in OPA's syntax, or a regexp's
// body), or "template" when it holds placeholders and must be filled in per request; the IP
// pattern as a CIDR.
func compileACLRule(rule map[string]any) map[string]any {
	match := rule["match"].(map[string]any)
	fields := map[string]any{}
	for _, f := range []string{"account", "type", "name", "service"} {
		p, ok := match[f].(string)
		if !ok {
			continue
		}
		switch {
		case strings.Contains(p, "${"):
			fields[f] = compileTemplate(p, match)
		case isRegexpPattern(p):
			fields[f] = map[string]any{"kind": "regex", "pattern": p[1 : len(p)-1]}
		default:
			fields[f] = map[string]any{"kind": "glob", "pattern": opaGlob(p)}
		}
	}
	c := map[string]any{"fields": fields}
	if ip, ok := match["ip"].(string); ok {
		if !strings.Contains(ip, "/") {
			if strings.Contains(ip, ":") {
				ip += "/128"
			} else {
				ip += "/32"
			}
		}
		c["cidr"] = ip
	}
	if _, ok := match["labels"]; ok {
		c["labels"] = true
	}
	return c
}

var (
	stdPlaceholders = []string{"account", "type", "name", "service"}
	captureRef      = regexp.MustCompile(`\$\{(.+?):(\d+)\}`)
	labelRef        = regexp.MustCompile(`\$\{labels:[^}]+\}`)
)

// compileTemplate lists what a pattern with placeholders needs filled in: the request
// fields (regex-quoted), the capture groups (with the regexp they come from) and the label
// placeholders. pattern is the pattern in matcher form (a glob in OPA's syntax; the
// placeholders pass through opaGlob unchanged) and regexp says which matcher applies.
func compileTemplate(p string, match map[string]any) map[string]any {
	var std []any
	for _, f := range stdPlaceholders {
		if v := "${" + f + "}"; strings.Contains(p, v) {
			std = append(std, []any{v, f})
		}
	}
	var captures []any
	for _, ref := range captureRef.FindAllStringSubmatch(p, -1) {
		src, _ := match[ref[1]].(string)
		n, err := strconv.Atoi(ref[2])
		if !isRegexpPattern(src) || err != nil || n < 1 {
			continue // docker_auth leaves such a placeholder as it is
		}
		captures = append(captures, map[string]any{"ref": ref[0], "field": ref[1], "re": src[1 : len(src)-1], "n": n})
	}
	var labels []any
	for _, l := range labelRef.FindAllString(p, -1) {
		if !slices.Contains(labels, any(l)) {
			labels = append(labels, l)
		}
	}
	t := map[string]any{"kind": "template", "std": nonNil(std), "captures": nonNil(captures), "labels": nonNil(labels)}
	if isRegexpPattern(p) {
		t["regexp"], t["pattern"] = true, p[1:len(p)-1]
	} else {
		t["regexp"], t["pattern"] = false, opaGlobKeepingPlaceholders(p)
	}
	return t
}

var anyPlaceholder = regexp.MustCompile(`\$\{[^}]*\}`)

// opaGlobKeepingPlaceholders is opaGlob on the text between placeholders, which stay as
// they are so the policy can fill them in.
func opaGlobKeepingPlaceholders(p string) string {
	var b strings.Builder
	last := 0
	for _, loc := range anyPlaceholder.FindAllStringIndex(p, -1) {
		b.WriteString(opaGlob(p[last:loc[0]]))
		b.WriteString(p[loc[0]:loc[1]])
		last = loc[1]
	}
	b.WriteString(opaGlob(p[last:]))
	return b.String()
}

func nonNil(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

var starRun = regexp.MustCompile(`\*+`)

// opaGlob maps docker_auth's glob (Go's path.Match) onto OPA's glob.match, as the policy's
// as_glob does: braces are literal in path.Match, and a run of stars is one star.
func opaGlob(p string) string {
	return starRun.ReplaceAllString(strings.NewReplacer("{", `\{`, "}", `\}`).Replace(p), "*")
}

// checkACLRule validates one rule as docker_auth does (and a little more: unknown keys are
// typos here, not ignored); it returns the account and name patterns ("" when absent, with
// present false folded into "*" by the callers).
func checkACLRule(r any) (account, name *string, err error) {
	rule, ok := r.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("a rule is an object with match and actions, got %T", r)
	}
	for k := range rule {
		if !slices.Contains(aclRuleKeys, k) {
			return nil, nil, fmt.Errorf("unknown key %q (want match, actions, comment)", k)
		}
	}
	acts, ok := rule["actions"].([]any)
	if !ok {
		return nil, nil, errors.New(`"actions" must be a list (["*"] for all, [] to deny)`)
	}
	for _, a := range acts {
		if _, ok := a.(string); !ok {
			return nil, nil, fmt.Errorf("actions: %v is not a string", a)
		}
	}
	if c, ok := rule["comment"]; ok {
		if _, ok := c.(string); !ok {
			return nil, nil, errors.New(`"comment" must be a string`)
		}
	}
	match, ok := rule["match"].(map[string]any)
	if !ok {
		return nil, nil, errors.New(`"match" must be an object ({} matches everything)`)
	}
	var errs []error
	for k, v := range match {
		switch {
		case !slices.Contains(aclMatchKeys, k):
			errs = append(errs, fmt.Errorf("match: unknown field %q (want %s)", k, strings.Join(aclMatchKeys, ", ")))
		case k == "labels":
			labels, ok := v.(map[string]any)
			if !ok {
				errs = append(errs, errors.New("match.labels must map label names to patterns"))
				continue
			}
			for lk, lv := range labels {
				p, ok := lv.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("match.labels.%s must be a string pattern", lk))
				} else if err := checkPattern(p); err != nil {
					errs = append(errs, fmt.Errorf("match.labels.%s: %w", lk, err))
				}
			}
		case k == "ip":
			p, ok := v.(string)
			if !ok {
				errs = append(errs, errors.New("match.ip must be a string"))
			} else if _, err := netip.ParsePrefix(p); err != nil {
				if _, err := netip.ParseAddr(p); err != nil {
					errs = append(errs, fmt.Errorf("match.ip %q is neither an IP address nor a CIDR", p))
				}
			}
		default:
			p, ok := v.(string)
			if !ok {
				errs = append(errs, fmt.Errorf("match.%s must be a string pattern", k))
				continue
			}
			if err := checkPattern(p); err != nil {
				errs = append(errs, fmt.Errorf("match.%s: %w", k, err))
			}
			switch k {
			case "account":
				account = &p
			case "name":
				name = &p
			}
		}
	}
	return account, name, errors.Join(errs...)
}

func isRegexpPattern(p string) bool { return len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/' }

func checkPattern(p string) error {
	if isRegexpPattern(p) {
		if _, err := regexp.Compile(p[1 : len(p)-1]); err != nil {
			return fmt.Errorf("invalid regexp %q: %v", p, err)
		}
	}
	return nil
}

// literal says whether a pattern matches exactly one string, itself: not a regexp, no glob
// metacharacter, no placeholder.
func literal(p string) bool {
	return !isRegexpPattern(p) && !strings.ContainsAny(p, `*?[\`) && !strings.Contains(p, "${")
}

func literalOrAny(p *string) string {
	if p != nil && literal(*p) {
		return *p
	}
	return "*"
}

// literalSegmentOrAny is the first "/"-separated segment every name matching p starts with
// ("*" when that is not fixed): a glob's * and ? never cross "/".
func literalSegmentOrAny(p *string) string {
	if p == nil || isRegexpPattern(*p) {
		return "*"
	}
	seg, _, _ := strings.Cut(*p, "/")
	if !literal(seg) {
		return "*"
	}
	return seg
}
