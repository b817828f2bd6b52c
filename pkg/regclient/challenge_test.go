package regclient

import (
	"reflect"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		want    []Challenge
		wantErr bool
	}{
		{`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"`,
			[]Challenge{{"bearer", map[string]string{"realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull,push"}}}, false},
		{`Basic realm="Amazon ECR"`, []Challenge{{"basic", map[string]string{"realm": "Amazon ECR"}}}, false},
		{`bearer realm=https://a/token, service=reg`, []Challenge{{"bearer", map[string]string{"realm": "https://a/token", "service": "reg"}}}, false},
		{`Bearer realm="a\"b", error="invalid_token"`, []Challenge{{"bearer", map[string]string{"realm": `a"b`, "error": "invalid_token"}}}, false},
		{`Basic realm="x", Bearer realm="y",service="z"`, []Challenge{{"basic", map[string]string{"realm": "x"}}, {"bearer", map[string]string{"realm": "y", "service": "z"}}}, false},
		{`Bearer`, []Challenge{{"bearer", map[string]string{}}}, false},
		{`Bearer realm="unterminated`, nil, true},
		{``, nil, true},
	}
	for _, tc := range cases {
		got, err := ParseChallenges(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && !reflect.DeepEqual(got, tc.want)) {
			t.Errorf("ParseChallenges(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}
