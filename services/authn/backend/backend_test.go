package backend_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/htpasswd"
	"github.com/portcullis-dev/portcullis/services/authn/backend/ldap"
)

// A Spec built in Go decodes to the config it was built from, as one read from a file does.
func TestNewSpecRoundTrips(t *testing.T) {
	t.Parallel()
	for _, c := range []authn.BackendConfig{
		&htpasswd.Config{Path: "/etc/portcullis/htpasswd", Groups: map[string][]string{"admins": {"alice"}}},
		&ldap.Config{URL: "ldaps://ldap.example", UserSearch: ldap.UserSearch{BaseDN: "dc=example"}, Labels: map[string]string{"team": "ou"}},
	} {
		s, err := backend.NewSpec("b", c)
		if err != nil {
			t.Fatalf("NewSpec(%T): %v", c, err)
		}
		got, err := backend.Decode(s)
		if err != nil {
			t.Fatalf("Decode(NewSpec(%T)): %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %T: %#v, want %#v", c, got, c)
		}
	}
	type other struct{ authn.BackendConfig }
	if _, err := backend.NewSpec("x", &other{}); err == nil || !strings.Contains(err.Error(), "not a known authn backend type") {
		t.Errorf("NewSpec of an unlisted type: %v", err)
	}
}
