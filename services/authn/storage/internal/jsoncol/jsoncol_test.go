package jsoncol

import (
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		in, want []string
		enc      string
	}{
		{"nil", nil, nil, "[]"},
		{"empty", []string{}, nil, "[]"},
		{"some", []string{"a", "", "ü\""}, []string{"a", "", "ü\""}, `["a","","ü\""]`},
	} {
		enc := Strings(c.in)
		got, err := DecodeStrings([]byte(enc))
		if enc != c.enc || err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %s -> %#v, %v; want %s -> %#v", c.name, enc, got, err, c.enc, c.want)
		}
	}
	for _, c := range []struct {
		name     string
		in, want map[string][]string
		enc      string
	}{
		{"nil", nil, nil, "{}"},
		{"empty", map[string][]string{}, nil, "{}"},
		{"some", map[string][]string{"a": {"x", "y"}, "b": {}}, map[string][]string{"a": {"x", "y"}, "b": {}}, `{"a":["x","y"],"b":[]}`},
	} {
		enc := Labels(c.in)
		got, err := DecodeLabels([]byte(enc))
		if enc != c.enc || err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %s -> %#v, %v; want %s -> %#v", c.name, enc, got, err, c.enc, c.want)
		}
	}
	if _, err := DecodeStrings([]byte("{")); err == nil {
		t.Error("DecodeStrings of bad JSON succeeded")
	}
	if _, err := DecodeLabels([]byte("[]")); err == nil {
		t.Error("DecodeLabels of a list succeeded")
	}
}
