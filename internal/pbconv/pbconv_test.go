package pbconv_test

import (
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/pbconv"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"
)

// TestIdentityLabels: every value of a multi-valued label crosses the wire, and a replica
// on either side of a rolling upgrade still sees labels: an old reader the first value in
// the old map, a new reader one value from an old writer's map.
func TestIdentityLabels(t *testing.T) {
	t.Parallel()
	id := identity.Identity{Subject: "alice", Groups: []string{"dev"}, Backend: "static",
		Labels: map[string][]string{"group": {"dev", "ops"}, "project": {"p1"}}}
	pb := pbconv.IdentityToPB(id)
	if got := pbconv.IdentityFromPB(pb); !reflect.DeepEqual(got, id) {
		t.Fatalf("round trip: %+v, want %+v", got, id)
	}
	if want := map[string]string{"group": "dev", "project": "p1"}; !reflect.DeepEqual(pb.GetLabels(), want) {
		t.Fatalf("old labels field = %v, want the first values %v", pb.GetLabels(), want)
	}
	old := &commonv1.Identity{Subject: "bob", Labels: map[string]string{"team": "blue"}}
	if got := pbconv.IdentityFromPB(old).Labels; !reflect.DeepEqual(got, map[string][]string{"team": {"blue"}}) {
		t.Fatalf("from an old writer: %v", got)
	}
	if got := pbconv.IdentityFromPB(pbconv.IdentityToPB(identity.Identity{Subject: "c"})).Labels; got != nil {
		t.Fatalf("no labels became %v", got)
	}
}

// A personal access token's name and narrowing cross the wire; an identity without them sends
// no empty list.
func TestIdentityPAT(t *testing.T) {
	for _, id := range []identity.Identity{
		{Subject: "alice", Backend: "pat", PATName: "ci", PATScopes: []scope.Scope{
			{Type: "repository", Name: "alice/*", Actions: []string{"pull"}},
			{Type: "repository", Class: "plugin", Name: "x", Actions: []string{"*"}},
		}},
		{Subject: "alice", Backend: "ldap"},
	} {
		p := pbconv.IdentityToPB(id)
		if len(id.PATScopes) == 0 && p.PatScopes != nil {
			t.Errorf("%+v: pat_scopes %v, want none", id, p.PatScopes)
		}
		got := pbconv.IdentityFromPB(p)
		if got.PATName != id.PATName || !reflect.DeepEqual(got.PATScopes, id.PATScopes) {
			t.Errorf("round trip of %+v = %+v", id, got)
		}
	}
}
