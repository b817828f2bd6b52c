package opa

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// A data document with a top-level "acl" list is a docker_auth ACL for the shipped acl
// policy (deploy/policies/acl). When it loads, every rule is checked — a bad regexp, IP
// pattern or a missing actions list rejects the load, naming the rule, as docker_auth refuses
// to start — and compiled (aclmatch.go): rules are indexed by the two parts that are most
// often literal, the account and the first segment of the name, so a decision tests only
// the rules filed under the request's account and segment and those filed under "*" (not
// literal): its cost follows the rules that can match, not the length of the list.

const (
	aclKey      = "acl"
	aclIndexKey = "acl_index"
)

var (
	aclRuleKeys  = []string{"match", "actions", "comment"}
	aclMatchKeys = []string{"account", "type", "name", "service", "ip", "labels"}
)

var labelRef = regexp.MustCompile(`\$\{labels:[^}]+\}`)

// prepareACL checks data.acl when there is one, compiles it (aclMatcher), and marks the
// data as compiled (data.acl_index), which makes the policy match through the compiled
// rules. Without an acl it returns data unchanged and no matcher.
func prepareACL(data map[string]any) (map[string]any, *aclMatcher, error) {
	raw, ok := data[aclKey]
	if !ok {
		return data, nil, nil
	}
	if _, taken := data[aclIndexKey]; taken {
		return nil, nil, fmt.Errorf("data: %q is set when the data loads, from %q; remove it", aclIndexKey, aclKey)
	}
	rules, ok := raw.([]any)
	if !ok {
		return nil, nil, fmt.Errorf("data: %q must be a list of rules, got %T", aclKey, raw)
	}
	var errs []error
	for j, r := range rules {
		if _, _, err := checkACLRule(r); err != nil {
			errs = append(errs, fmt.Errorf("data: acl[%d]: %w", j, err))
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	out := maps.Clone(data)
	out[aclIndexKey] = map[string]any{"rules": len(rules)}
	return out, newACLMatcher(rules), nil
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
