package app_test

import (
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
)

// subject_prefix namespaces one backend's users; it must end in ':' (so no bare name can equal
// a prefixed subject) and must not be a namespace Portcullis gives itself. The robot backend's
// subjects are namespaced already.
func TestSubjectPrefixConfig(t *testing.T) {
	t.Parallel()
	cases := []struct{ prefix, typ, want string }{
		{"corp:", "static", ""},
		{"corp", "static", `authn.backends[0].subject_prefix: "corp" must be`},
		{"robot:", "static", `authn.backends[0].subject_prefix: "robot:" is reserved`},
		{"system:", "static", `authn.backends[0].subject_prefix: "system:" is reserved`},
		{"bots:", "robot", `authn.backends[0].subject_prefix: the robot backend's subjects are robot:<name> already`},
	}
	for _, tc := range cases {
		doc := strings.Replace(apptest.ValidDoc, "      type: static\n      config: {users: []}\n",
			"      type: "+tc.typ+"\n      subject_prefix: \""+tc.prefix+"\"\n", 1)
		if tc.typ == "static" {
			doc = strings.Replace(doc, "\"\n", "\"\n      config: {users: []}\n", 1)
		}
		err := apptest.LoadValidate(t, doc)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s/%q: %v", tc.typ, tc.prefix, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s/%q: %v, want %q", tc.typ, tc.prefix, err, tc.want)
		}
	}
}
