package ldap

import (
	"errors"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/ldaptest"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// A directory entry whose login name or subject attribute reads "robot:ci" must not become
// the robot "ci": through the chain (where every backend's subject is checked) the login is
// refused, unless the backend has a subject_prefix, which then namespaces it ("corp:robot:ci"),
// on login and on a session's refresh alike. Real slapd.
func TestSlapdSubjectsCannotNameARobot(t *testing.T) {
	t.Parallel()
	s := ldaptest.Start(t, service()+ou("people")+
		person(uidDN("robot:ci"), "robot:ci", "ci-pw")+
		// mallory may edit her own description in many directories.
		person(uidDN("mallory"), "mallory", "mallory-pw", "description", "robot:ci"))
	byUID := baseConfig(t, s)
	byUID.GroupSearch = GroupSearch{}
	byDescription := byUID
	byDescription.UserSearch.SubjectAttr = "description"
	cases := []struct {
		name, prefix string
		cfg          Config
		user, pw     string
		wantSub      string
		wantErr      error
	}{
		{"uid robot:ci", "", byUID, "robot:ci", "ci-pw", "", authn.ErrSubjectRefused},
		{"subject_attr robot:ci", "", byDescription, "mallory", "mallory-pw", "", authn.ErrSubjectRefused},
		{"uid robot:ci under a prefix", "corp:", byUID, "robot:ci", "ci-pw", "corp:robot:ci", nil},
		{"subject_attr robot:ci under a prefix", "corp:", byDescription, "mallory", "mallory-pw", "corp:robot:ci", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ch := authn.NewChain([]authn.Member{{Name: "corp", SubjectPrefix: tc.prefix, Backend: open(t, tc.cfg, authn.Deps{})}}, nil)
			id, err := login(t.Context(), ch, tc.user, tc.pw)
			if !errors.Is(err, tc.wantErr) || id.Subject != tc.wantSub {
				t.Fatalf("login %s: subject %q err %v, want %q %v", tc.user, id.Subject, err, tc.wantSub, tc.wantErr)
			}
			if tc.wantErr != nil {
				if _, err := ch.Resolve(t.Context(), "corp", "robot:ci"); !errors.Is(err, authn.ErrNoMatch) {
					t.Fatalf("Resolve(robot:ci) = %v, want ErrNoMatch", err)
				}
				return
			}
			if id, err := ch.Resolve(t.Context(), "corp", tc.wantSub); err != nil || id.Subject != tc.wantSub {
				t.Fatalf("Resolve(%s) = %+v, %v", tc.wantSub, id, err)
			}
		})
	}
}
