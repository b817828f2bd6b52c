package claims

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	m, err := Decode([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookup(t *testing.T) {
	t.Parallel()
	claims := decode(t, `{
		"sub": "x",
		"kubernetes.io": {"namespace": "ci", "serviceaccount": {"name": "builder"}},
		"a.b": "literal",
		"a": {"b": "nested", "c": "only-nested"},
		"x": {"y.z": {"w": "mixed"}},
		"p": {"q": 1},
		"p.q": {"r": "via-literal-prefix"},
		"n": 12.50,
		"t": true,
		"null": null
	}`)
	cases := []struct {
		path, want string
		found      bool
	}{
		{"sub", "x", true},
		{"kubernetes.io.namespace", "ci", true},
		{"kubernetes.io.serviceaccount.name", "builder", true},
		{"a.b", "literal", true}, // the literal key wins over the nested one
		{"a.c", "only-nested", true},
		{"x.y.z.w", "mixed", true},
		{"p.q.r", "via-literal-prefix", true}, // "p" → "q" is 1, not an object: back off to "p.q"
		{"n", "12.50", true},                  // numbers as written
		{"t", "true", true},
		{"kubernetes", "", false},
		{"kubernetes.io.nope", "", false},
		{"null", "", false}, // present but not a scalar
		{"sub.x", "", false},
	}
	for _, tc := range cases {
		v, ok := NewPath(tc.path).Lookup(claims)
		s, isScalar := Scalar(v)
		if (ok && isScalar) != tc.found || s != tc.want {
			t.Errorf("lookup(%q) = %v (%v), want %q (%v)", tc.path, v, ok, tc.want, tc.found)
		}
	}
}

func TestClaimRule(t *testing.T) {
	t.Parallel()
	claims := decode(t, `{"ref": "refs/heads/main", "groups": ["a", "team-b", 7], "flag": false, "obj": {"k": "v"}, "id": 123}`)
	cases := []struct {
		path string
		pats []string
		want bool
	}{
		{"ref", []string{"refs/heads/main"}, true},
		{"ref", []string{"refs/heads/*"}, true},
		{"ref", []string{"refs/*"}, false}, // * stops at /
		{"ref", []string{"refs/tags/*", "refs/heads/ma?n"}, true},
		{"ref", []string{"refs/heads/mai"}, false},
		{"groups", []string{"team-*"}, true},
		{"groups", []string{"7"}, true},
		{"groups", []string{"c"}, false},
		{"flag", []string{"false"}, true},
		{"flag", []string{"true"}, false},
		{"obj", []string{"*"}, false},
		{"id", []string{"123"}, true},
		{"missing", []string{"*"}, false},
	}
	for _, tc := range cases {
		if got := (Rule{Path: NewPath(tc.path), Patterns: tc.pats}).Matches(claims); got != tc.want {
			t.Errorf("%s ~ %v = %v, want %v", tc.path, tc.pats, got, tc.want)
		}
	}
}

func TestMappingIdentity(t *testing.T) {
	t.Parallel()
	spec := Spec{
		Subject: "preferred_username",
		Groups:  []string{"groups", "roles", "org"},
		Labels:  map[string]string{"department": "department", "emails": "emails", "level": "level", "obj": "obj", "none": "missing"},
		Claims:  map[string]Strings{"email_verified": {"true"}},
	}
	cases := []struct {
		name    string
		claims  string
		want    identity.Identity
		wantErr error
	}{
		{
			name: "everything",
			claims: `{"preferred_username": "alice", "email_verified": true, "groups": ["dev", "ops", "dev", ""],
				"roles": "admin", "org": 7, "department": "R&D", "emails": ["a@x", "b@x", "a@x"], "level": 3, "obj": {"k": "v"}}`,
			want: identity.Identity{Subject: "alice", Groups: []string{"dev", "ops", "admin", "7"},
				Labels: map[string][]string{"department": {"R&D"}, "emails": {"a@x", "b@x"}, "level": {"3"}}},
		},
		{
			name:   "string boolean satisfies the rule",
			claims: `{"preferred_username": "bob", "email_verified": "true"}`,
			want:   identity.Identity{Subject: "bob"},
		},
		{name: "rule fails", claims: `{"preferred_username": "bob", "email_verified": false}`, wantErr: ErrClaimMismatch},
		{name: "rule claim missing", claims: `{"preferred_username": "bob"}`, wantErr: ErrClaimMismatch},
		{name: "no subject", claims: `{"sub": "x", "email_verified": true}`, wantErr: ErrNoSubject},
		{name: "empty subject", claims: `{"preferred_username": "", "email_verified": true}`, wantErr: ErrNoSubject},
		{name: "subject not a scalar", claims: `{"preferred_username": ["a"], "email_verified": true}`, wantErr: ErrNoSubject},
	}
	m := spec.Compile()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := m.Identity(decode(t, tc.claims))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("identity %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	t.Parallel()
	var p config.Problems
	Spec{
		Claims: map[string]Strings{"a..b": {"x"}, "ref": {"[unterminated"}, "empty": {}},
		Groups: []string{"groups."},
		Labels: map[string]string{"": "x", "l": ""},
	}.Validate("sso", &p)
	var all []string
	for _, e := range p.Errs() {
		all = append(all, e.Error())
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		`sso.claims: "a..b": claim path "a..b" has an empty segment`,
		`sso.claims.ref: bad pattern "[unterminated"`,
		"sso.claims.empty: needs at least one pattern",
		"sso.subject: is required",
		`sso.groups: "groups.": claim path "groups." has an empty segment`,
		"sso.labels: a label name must not be empty",
		"sso.labels.l: empty claim path",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
	p = config.Problems{}
	Spec{Subject: ".sub"}.Validate("", &p)
	if errs := p.Errs(); len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), "subject: ") {
		t.Fatalf("no prefix: %v", errs)
	}
}
