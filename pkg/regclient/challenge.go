// Package regclient follows a registry's authentication challenge the way docker, containerd
// and crane do: ping /v2/, read WWW-Authenticate, and fetch a token from the Bearer realm (GET
// with Basic credentials, or the OAuth2 POST form for the refresh grant), or recognise a Basic
// challenge (Amazon ECR style) where there is no token to fetch.
package regclient

import (
	"fmt"
	"strings"
)

// Challenge is one challenge of a WWW-Authenticate header.
type Challenge struct {
	Scheme string            // lower case: "bearer", "basic"
	Params map[string]string // keys lower case
}

// ParseChallenges parses a WWW-Authenticate header value: one or more challenges, each a
// scheme followed by comma-separated key=value parameters (values a token or a quoted string
// with backslash escapes).
func ParseChallenges(h string) ([]Challenge, error) {
	var out []Challenge
	s := strings.TrimSpace(h)
	for s != "" {
		i := strings.IndexAny(s, " \t,")
		scheme := s
		if i >= 0 {
			scheme = s[:i]
			s = strings.TrimLeft(s[i:], " \t")
		} else {
			s = ""
		}
		if scheme == "" {
			s = strings.TrimLeft(s, ", \t")
			continue
		}
		c := Challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
		for {
			s = strings.TrimLeft(s, ", \t")
			eq := strings.IndexByte(s, '=')
			if eq <= 0 || strings.ContainsAny(s[:eq], " \t,\"") {
				break // the next challenge's scheme, or the end
			}
			key := strings.ToLower(strings.TrimSpace(s[:eq]))
			s = s[eq+1:]
			var val string
			if strings.HasPrefix(s, `"`) {
				var b strings.Builder
				j := 1
				for ; j < len(s) && s[j] != '"'; j++ {
					if s[j] == '\\' && j+1 < len(s) {
						j++
					}
					b.WriteByte(s[j])
				}
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated quoted value for %q", key)
				}
				val, s = b.String(), s[j+1:]
			} else {
				end := strings.IndexAny(s, ", \t")
				if end < 0 {
					end = len(s)
				}
				val, s = s[:end], s[end:]
			}
			c.Params[key] = val
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no challenge in %q", h)
	}
	return out, nil
}
