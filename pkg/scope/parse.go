package scope

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Limits bound the work and memory a single request can cost us; real clients
// stay far below them.
const (
	maxScopeLen = 1024
	maxNameLen  = 255
	maxActions  = 16
	maxScopes   = 64
)

// maxQuoted keeps error messages readable when a client sends a huge value.
const maxQuoted = 100

var (
	typeValueRE = regexp.MustCompile(`^[a-z0-9]+$`)
	actionRE    = regexp.MustCompile(`^[a-z]+$`)

	// nameRE follows the token spec's resourcename production. The separator
	// [-]* may be empty, so "ab" is also "a" + "" + "b": that is the spec's
	// doing and harmless.
	nameRE = regexp.MustCompile(`^` +
		`(?:` + hostname + `/)?` +
		component + `(?:/` + component + `)*$`)
)

const (
	hostComponent = `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
	hostname      = hostComponent + `(?:\.` + hostComponent + `)*(?::[0-9]+)?`
	component     = `[a-z0-9]+(?:(?:[_.]|__|-*)[a-z0-9]+)*`
)

// ParseError says why a client's scope was refused. Its message is sent back
// to the client, so it carries only the client's own input and a fixed reason.
type ParseError struct {
	Input  string
	Reason string
}

func (e *ParseError) Error() string {
	return "invalid scope " + quote(e.Input) + ": " + e.Reason
}

// quote escapes everything but printable ASCII so that client input cannot
// smuggle newlines or invisible characters into logs and responses.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.QuoteToASCII(s)
	}
	return strconv.QuoteToASCII(s[:maxQuoted]) + "..."
}

func parseErr(input, format string, args ...any) *ParseError {
	return &ParseError{Input: input, Reason: fmt.Sprintf(format, args...)}
}

// Parse parses one resource scope such as "repository:alice/app:pull,push".
// Duplicate actions are dropped, keeping the first-seen order.
func Parse(s string) (Scope, error) {
	if s == "" {
		return Scope{}, parseErr(s, "empty scope")
	}
	if len(s) > maxScopeLen {
		return Scope{}, parseErr(s, "longer than %d bytes", maxScopeLen)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ':
			return Scope{}, parseErr(s, "contains a space (send several scopes as separate scope parameters or space-separated in one)")
		case c < 0x20 || c == 0x7f:
			return Scope{}, parseErr(s, "contains control characters")
		case c >= 0x80:
			return Scope{}, parseErr(s, "contains non-ASCII characters")
		}
	}

	// The name may itself hold a ':' (registry host port), but neither the
	// type nor the actions can, so the first and last ':' are unambiguous.
	first := strings.IndexByte(s, ':')
	last := strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return Scope{}, parseErr(s, "want type:name:actions")
	}
	rawType, name, rawActions := s[:first], s[first+1:last], s[last+1:]

	typ, class, err := parseType(s, rawType)
	if err != nil {
		return Scope{}, err
	}
	if err := checkName(s, name); err != nil {
		return Scope{}, err
	}
	actions, err := parseActions(s, rawActions)
	if err != nil {
		return Scope{}, err
	}
	return Scope{Type: typ, Class: class, Name: name, Actions: actions}, nil
}

func parseType(input, raw string) (typ, class string, err error) {
	if raw == "" {
		return "", "", parseErr(input, "missing resource type")
	}
	typ = raw
	if open := strings.IndexByte(raw, '('); open >= 0 {
		if !strings.HasSuffix(raw, ")") {
			return "", "", parseErr(input, "resource class must be closed by ')' before the ':'")
		}
		typ, class = raw[:open], raw[open+1:len(raw)-1]
		if !typeValueRE.MatchString(class) {
			return "", "", parseErr(input, "resource class must be lowercase letters and digits")
		}
	}
	if !typeValueRE.MatchString(typ) {
		return "", "", parseErr(input, "resource type must be lowercase letters and digits, optionally followed by a (class)")
	}
	return typ, class, nil
}

func checkName(input, name string) error {
	switch {
	case name == "":
		return parseErr(input, "missing resource name")
	case len(name) > maxNameLen:
		return parseErr(input, "resource name longer than %d bytes", maxNameLen)
	case nameRE.MatchString(name):
		return nil
	case nameRE.MatchString(strings.ToLower(name)):
		return parseErr(input, "resource name must be lowercase (only the registry host may contain capitals)")
	default:
		return parseErr(input, "invalid resource name: want [host[:port]/]path, path components lowercase alphanumeric joined by '.', '_', '__' or '-', separated by '/'")
	}
}

func parseActions(input, raw string) ([]string, error) {
	if raw == "" {
		return nil, parseErr(input, "missing actions")
	}
	if strings.Count(raw, ",") >= maxActions {
		return nil, parseErr(input, "more than %d actions", maxActions)
	}
	var actions []string
	for a := range strings.SplitSeq(raw, ",") {
		if a == "" {
			return nil, parseErr(input, "empty action in list")
		}
		if a != "*" && !actionRE.MatchString(a) {
			return nil, parseErr(input, "action %s must be lowercase letters or \"*\"", quote(a))
		}
		actions = appendNew(actions, a)
	}
	return actions, nil
}

func appendNew(list []string, v string) []string {
	for _, x := range list {
		if x == v {
			return list
		}
	}
	return append(list, v)
}

// ParseList parses the values of the repeatable scope query parameter; each
// value may hold several scopes separated by single spaces. Scopes naming the
// same resource are merged, in first-seen order. Empty values are skipped
// because some clients send "scope=" when they want no access at all.
func ParseList(values []string) ([]Scope, error) {
	var (
		out   []Scope
		index = map[string]int{}
		n     int
	)
	for _, v := range values {
		if v == "" {
			continue
		}
		for tok := range strings.SplitSeq(v, " ") {
			if tok == "" {
				return nil, parseErr(v, "scopes must be separated by single spaces")
			}
			if n++; n > maxScopes {
				return nil, parseErr(tok, "more than %d scopes in one request", maxScopes)
			}
			s, err := Parse(tok)
			if err != nil {
				return nil, err
			}
			key := s.resource()
			i, seen := index[key]
			if !seen {
				index[key] = len(out)
				out = append(out, s)
				continue
			}
			for _, a := range s.Actions {
				out[i].Actions = appendNew(out[i].Actions, a)
			}
			// Keeps every returned scope within what Parse accepts, so String
			// output of a merged scope can be parsed again.
			if len(out[i].Actions) > maxActions {
				return nil, parseErr(tok, "more than %d distinct actions requested for %s", maxActions, quote(key))
			}
		}
	}
	return out, nil
}
