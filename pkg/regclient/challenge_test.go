package regclient

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	type p = map[string]string
	bearer := func(params p) Challenge { return Challenge{Scheme: "bearer", Params: params} }
	cases := []struct {
		name    string
		in      string
		want    []Challenge
		wantErr string
	}{
		{name: "distribution", in: `Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"`,
			want: []Challenge{bearer(p{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull,push"})}},
		{name: "ECR Basic", in: `Basic realm="https://123.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"`,
			want: []Challenge{{Scheme: "basic", Params: p{"realm": "https://123.dkr.ecr.us-east-1.amazonaws.com/", "service": "ecr.amazonaws.com"}}}},
		{name: "case-insensitive scheme and names, values kept", in: `BEARER Realm="R",SERVICE="Svc"`,
			want: []Challenge{bearer(p{"realm": "R", "service": "Svc"})}},
		{name: "unquoted token values, spaces around = and commas", in: `Bearer realm = https://a/token , service=reg`,
			want: []Challenge{bearer(p{"realm": "https://a/token", "service": "reg"})}},
		{name: "escaped quote and backslash", in: `Bearer realm="a\"b\\c", error="invalid_token"`,
			want: []Challenge{bearer(p{"realm": `a"b\c`, "error": "invalid_token"})}},
		{name: "escaped ordinary character", in: `Bearer realm="\a\,b"`, want: []Challenge{bearer(p{"realm": "a,b"})}},
		{name: "comma and scheme-like text inside a quoted value", in: `Bearer scope="repository:a:pull,push, Basic realm=x"`,
			want: []Challenge{bearer(p{"scope": "repository:a:pull,push, Basic realm=x"})}},
		{name: "empty quoted value", in: `Bearer realm="", service="s"`, want: []Challenge{bearer(p{"realm": "", "service": "s"})}},
		{name: "two challenges", in: `Basic realm="x", Bearer realm="y",service="z"`,
			want: []Challenge{{Scheme: "basic", Params: p{"realm": "x"}}, bearer(p{"realm": "y", "service": "z"})}},
		{name: "three challenges, one bare, empty list elements", in: `Negotiate, ,Basic realm="x",, Bearer realm="y"`,
			want: []Challenge{{Scheme: "negotiate", Params: p{}}, {Scheme: "basic", Params: p{"realm": "x"}}, bearer(p{"realm": "y"})}},
		{name: "token68", in: `Negotiate abc+/def==, Basic realm="x"`,
			want: []Challenge{{Scheme: "negotiate", Params: p{}, Token68: "abc+/def=="}, {Scheme: "basic", Params: p{"realm": "x"}}}},
		{name: "bare scheme", in: `Bearer`, want: []Challenge{bearer(p{})}},
		{name: "a lone name= is a token68", in: `Bearer realm=`, want: []Challenge{{Scheme: "bearer", Params: p{}, Token68: "realm="}}},
		{name: "tabs as whitespace", in: "Bearer\trealm=\"r\",\tservice=\"s\"", want: []Challenge{bearer(p{"realm": "r", "service": "s"})}},
		{name: "tab inside a quoted value", in: "Bearer realm=\"a\tb\"", want: []Challenge{bearer(p{"realm": "a\tb"})}},

		{name: "empty", in: ``, wantErr: "no challenge"},
		{name: "only commas", in: ` , ,`, wantErr: "no challenge"},
		{name: "unterminated quote", in: `Bearer realm="unterminated`, wantErr: "no closing quote"},
		{name: "lone backslash at the end", in: `Bearer realm="a\`, wantErr: "lone backslash"},
		{name: "control character in a quoted value", in: "Bearer realm=\"a\x01b\"", wantErr: "control character"},
		{name: "duplicate parameter", in: `Bearer realm="a", REALM="b"`, wantErr: "given twice"},
		{name: "missing first value: RFC 7235 reads a token68", in: `Bearer realm=, service="s"`, wantErr: "a parameter without a value?"},
		{name: "missing later value", in: `Bearer realm="r", service=`, wantErr: "no value"},
		{name: "missing later value before a comma", in: `Bearer realm="r", service= , scope="x"`, wantErr: "no value"},
		{name: "garbage after a quoted value", in: `Bearer realm="a"b`, wantErr: "after the value"},
		{name: "two challenges without a comma", in: `Basic realm="x" Bearer realm="y"`, wantErr: "after the value"},
		{name: "scheme is not a token", in: `"Bearer" realm="x"`, wantErr: "expected an auth scheme"},
		{name: "quote right after the scheme", in: `Bearer"x"`, wantErr: "after auth scheme"},
		{name: "parameters after a token68", in: `Negotiate abc==, realm="x"`, wantErr: "reads as the token68"},
		{name: "parameter without a name", in: `Bearer ="x"`, wantErr: "expected a parameter name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseChallenges(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseChallenges(%q) = %+v, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseChallenges(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestPreferredChallenge(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string
	}{
		{`Basic realm="x", Bearer realm="y"`, "bearer"},
		{`Negotiate, Basic realm="x"`, "basic"},
		{`Negotiate abc, NTLM`, "negotiate"},
	}
	for _, tc := range cases {
		chs, err := ParseChallenges(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := PreferredChallenge(chs).Scheme; got != tc.want {
			t.Errorf("PreferredChallenge(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestChallengeStringRoundTrip: what String writes parses back to the same challenge, so
// messages quote a challenge faithfully.
func TestChallengeStringRoundTrip(t *testing.T) {
	t.Parallel()
	in := Challenge{Scheme: "bearer", Params: map[string]string{"realm": `https://a/"t"`, "service": "s", "scope": "repository:a:pull,push", "zz": `\`}}
	got, err := ParseChallenges(in.String())
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], in) {
		t.Fatalf("ParseChallenges(%q) = %+v, %v; want %+v", in.String(), got, err, in)
	}
}

// FuzzParseChallenges: a registry's header never panics the parser, and what parses has a
// scheme for every challenge and writes back to something that parses the same.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"`,
		`Basic realm="x", Bearer realm="y"`, `Negotiate abc==`, `Bearer realm="a\"b"`, `Bearer realm=x,,`, ``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		chs, err := ParseChallenges(s)
		if err != nil {
			return
		}
		for _, c := range chs {
			if c.Scheme == "" {
				t.Fatalf("ParseChallenges(%q): a challenge without a scheme: %+v", s, chs)
			}
			if c.Token68 != "" {
				continue // String does not promise a round trip for token68 challenges
			}
			back, err := ParseChallenges(c.String())
			if err != nil || len(back) != 1 || !reflect.DeepEqual(back[0], c) {
				t.Fatalf("ParseChallenges(%q) gave %+v, whose String %q parses to %+v, %v", s, c, c.String(), back, err)
			}
		}
	})
}
