package identity_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
)

func TestCheckBareName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"alice@corp.example", true},
		{"CN=Alice,OU=People", true},
		{"robot:ci", false},
		{"system:anonymous", false},
		{"repo:org/app:ref:refs/heads/main", false},
		{":", false},
	} {
		if err := identity.CheckBareName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckBareName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestCheckSubjectPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix string
		ok     bool
	}{
		{"corp:", true},
		{"github-actions:", true},
		{"k8s.prod_1:", true},
		{"corp", false},    // no separator: corpalice could be a bare name
		{"Corp:", false},   // lower case only
		{"a:b:", false},    // one namespace level
		{"robot:", false},  // reserved
		{"system:", false}, // reserved
		{":", false},       // empty name
		{"", false},
	} {
		if err := identity.CheckSubjectPrefix(tc.prefix); (err == nil) != tc.ok {
			t.Errorf("CheckSubjectPrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
		}
	}
}
