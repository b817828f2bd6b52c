// Package regclient follows a container registry's authentication challenge the way docker,
// containerd and crane do: ping /v2/, parse WWW-Authenticate, and either fetch a token from
// the Bearer realm (GET with Basic credentials, the OAuth2 POST form with a fallback to GET, or
// a workload JWT exchanged by the RFC 8693 token exchange grant),
// check credentials against a registry that answers Basic (Amazon ECR style), or find that
// the registry needs no authentication. Decode describes a token without verifying it.
//
// It is a client for people and diagnostics (portcullis token, portcullis doctor), not a
// transport: it fetches one token and says what happened. For logging out it finds a realm's
// RFC 7009 revocation endpoint and revokes a refresh token there, edits docker's config.json
// (DockerConfigFile) and speaks the docker credential helper protocol (HelperGet, HelperErase).
//
// Public API: other programs import this package, so its exported names change only in a
// way that keeps their code compiling (Portcullis's own internals live under internal/).
package regclient

import (
	"fmt"
	"slices"
	"strings"
)

// Challenge is one challenge of a WWW-Authenticate header (RFC 7235 §4.1).
type Challenge struct {
	// Scheme is lower case: "bearer", "basic".
	Scheme string
	// Params has lower-case keys and unquoted values.
	Params map[string]string
	// Token68 is the challenge's token68 form (e.g. Negotiate's blob) instead of Params.
	Token68 string
	// Registry is the base URL of the registry that answered with this challenge (Ping sets
	// it). FetchToken refuses a plain-http realm unless Registry is plain http too.
	Registry string
}

// Realm, Service and Scope are the Bearer parameters of the token protocol.
func (c Challenge) Realm() string   { return c.Params["realm"] }
func (c Challenge) Service() string { return c.Params["service"] }
func (c Challenge) Scope() string   { return c.Params["scope"] }

// String writes the challenge back in header form, for messages.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if c.Token68 != "" {
		b.WriteString(" " + c.Token68)
	}
	// A stable order: the protocol's parameters first, then the rest as they sort.
	sep := " "
	for _, k := range orderedKeys(c.Params) {
		fmt.Fprintf(&b, "%s%s=%s", sep, k, quote(c.Params[k]))
		sep = ","
	}
	return b.String()
}

// quote writes a quoted-string: only the quote and the backslash need escaping.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func orderedKeys(m map[string]string) []string {
	first := []string{"realm", "service", "scope", "error"}
	keys := make([]string, 0, len(m))
	for _, k := range first {
		if _, ok := m[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range m {
		if !slices.Contains(first, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// ParseChallenges parses the value of a WWW-Authenticate header (RFC 7235):
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// A header carries one or more challenges separated by commas, and a comma also separates
// a challenge's parameters: what follows a comma is a parameter when it reads "name=", and
// the next challenge otherwise. Quoted strings take backslash escapes. Parameter names are
// case-insensitive and may appear once. Unquoted values are read up to the next comma or
// space even when they hold characters RFC 7230's token does not allow (some registries
// send realm=https://… unquoted).
func ParseChallenges(header string) ([]Challenge, error) {
	p := &challengeParser{s: header}
	var out []Challenge
	for {
		p.skipListSeparators()
		if p.eof() {
			break
		}
		scheme := p.token()
		if scheme == "" {
			return nil, p.errorf("expected an auth scheme")
		}
		c := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		if p.skipSpaces() && !p.eof() && p.peek() != ',' {
			if t68, ok := p.token68(); ok {
				c.Token68 = t68
			} else if err := p.param(&c); err != nil {
				return nil, err
			}
		} else if !p.eof() && p.peek() != ',' {
			return nil, p.errorf("unexpected %q after auth scheme %q", p.peek(), scheme)
		}
		for {
			save := p.pos
			p.skipListSeparators()
			if p.eof() || !p.atParam() {
				p.pos = save // the next challenge, or the end
				break
			}
			if c.Token68 != "" {
				// RFC 7235 reads "realm=" as a token68: most likely a parameter lost its value.
				return nil, p.errorf("parameters after %q, which reads as the token68 of %q (a parameter without a value?)", c.Token68, scheme)
			}
			if err := p.param(&c); err != nil {
				return nil, err
			}
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("WWW-Authenticate %q holds no challenge", header)
	}
	return out, nil
}

// PreferredChallenge picks the challenge to follow: Bearer when offered (it is what the token
// protocol is about), else Basic, else the first one.
func PreferredChallenge(chs []Challenge) Challenge {
	for _, want := range []string{"bearer", "basic"} {
		for _, c := range chs {
			if c.Scheme == want {
				return c
			}
		}
	}
	return chs[0]
}

type challengeParser struct {
	s   string
	pos int
}

func (p *challengeParser) eof() bool  { return p.pos >= len(p.s) }
func (p *challengeParser) peek() byte { return p.s[p.pos] }

func (p *challengeParser) errorf(format string, args ...any) error {
	return fmt.Errorf("WWW-Authenticate %q: at byte %d: %s", p.s, p.pos, fmt.Sprintf(format, args...))
}

// skipSpaces skips OWS and says whether there was any.
func (p *challengeParser) skipSpaces() bool {
	start := p.pos
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
	return p.pos > start
}

// skipListSeparators skips OWS and commas: RFC 7230 §7 allows empty list elements.
func (p *challengeParser) skipListSeparators() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t' || p.peek() == ',') {
		p.pos++
	}
}

func isTChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *challengeParser) token() string {
	start := p.pos
	for !p.eof() && isTChar(p.peek()) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// token68 reads a token68 when that is what follows the scheme: 1*( ALPHA / DIGIT / "-" /
// "." / "_" / "~" / "+" / "/" ) *"=", then the end of the challenge. Otherwise it consumes
// nothing: "realm=x" starts like a token68 but goes on after its "=".
func (p *challengeParser) token68() (string, bool) {
	start := p.pos
	for !p.eof() {
		c := p.peek()
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte("-._~+/", c) >= 0 {
			p.pos++
			continue
		}
		break
	}
	if p.pos == start {
		return "", false
	}
	for !p.eof() && p.peek() == '=' {
		p.pos++
	}
	end := p.pos
	p.skipSpaces()
	if p.eof() || p.peek() == ',' {
		return p.s[start:end], true
	}
	p.pos = start
	return "", false
}

// atParam looks ahead for "name BWS =" without consuming anything.
func (p *challengeParser) atParam() bool {
	save := p.pos
	defer func() { p.pos = save }()
	if p.token() == "" {
		return false
	}
	p.skipSpaces()
	return !p.eof() && p.peek() == '='
}

func (p *challengeParser) param(c *Challenge) error {
	name := strings.ToLower(p.token())
	if name == "" {
		return p.errorf("expected a parameter name")
	}
	p.skipSpaces()
	if p.eof() || p.peek() != '=' {
		return p.errorf("expected \"=\" after parameter %q", name)
	}
	p.pos++
	p.skipSpaces()
	if p.eof() {
		return p.errorf("parameter %q has no value", name)
	}
	var val string
	if p.peek() == '"' {
		v, err := p.quoted(name)
		if err != nil {
			return err
		}
		val = v
	} else {
		start := p.pos
		for !p.eof() && p.peek() != ',' && p.peek() != ' ' && p.peek() != '\t' && p.peek() != '"' && p.peek() > 0x20 && p.peek() != 0x7f {
			p.pos++
		}
		if p.pos == start {
			return p.errorf("parameter %q has no value", name)
		}
		val = p.s[start:p.pos]
	}
	if _, dup := c.Params[name]; dup {
		return p.errorf("parameter %q given twice", name)
	}
	c.Params[name] = val
	// A value ends the parameter: only OWS and then a comma or the end may follow.
	p.skipSpaces()
	if !p.eof() && p.peek() != ',' {
		return p.errorf("unexpected %q after the value of %q", p.peek(), name)
	}
	return nil
}

// quoted reads a quoted-string: DQUOTE *( qdtext / quoted-pair ) DQUOTE.
func (p *challengeParser) quoted(name string) (string, error) {
	p.pos++ // the opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		switch {
		case c == '"':
			p.pos++
			return b.String(), nil
		case c == '\\':
			p.pos++
			if p.eof() {
				return "", p.errorf("the value of %q ends in a lone backslash", name)
			}
			c = p.peek()
			if c < 0x20 && c != '\t' || c == 0x7f {
				return "", p.errorf("the value of %q escapes a control character", name)
			}
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", p.errorf("the value of %q holds a control character", name)
		}
		b.WriteByte(c)
		p.pos++
	}
	return "", p.errorf("the value of %q has no closing quote", name)
}
