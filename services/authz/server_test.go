package authz_test

import (
	"context"
	"log/slog"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/pbconv"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// grantAll is a policy that grants whatever is asked.
type grantAll struct{}

func (grantAll) Authorize(_ context.Context, req authz.Request) (authz.Decision, error) {
	return authz.Decision{Granted: authz.Grant(req.Requested, func(scope.Scope, string) bool { return true })}, nil
}

// Whatever the policy grants, a personal access token gets no more than its narrowing; any
// other identity gets the policy's answer.
func TestServerNarrowsPATs(t *testing.T) {
	t.Parallel()
	srv := authz.NewServer(grantAll{}, slog.New(slog.DiscardHandler))
	requested := scopes(t, "repository:alice/app:pull,push", "repository:bob/app:pull")
	for _, c := range []struct {
		name string
		id   identity.Identity
		want []string
	}{
		{"password login", identity.Identity{Subject: "alice", Backend: "ldap"}, []string{"repository:alice/app:pull,push", "repository:bob/app:pull"}},
		{"token without narrowing", identity.Identity{Subject: "alice", Backend: "pat", PATName: "all"},
			[]string{"repository:alice/app:pull,push", "repository:bob/app:pull"}},
		{"narrowed token", identity.Identity{Subject: "alice", Backend: "pat", PATName: "ci", PATScopes: scopes(t, "repository:alice/*:pull")},
			[]string{"repository:alice/app:pull"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := srv.Authorize(context.Background(), &authzv1.AuthorizeRequest{Identity: pbconv.IdentityToPB(c.id),
				Service: "registry.local", Requested: pbconv.ScopesToPB(requested)})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range pbconv.ScopesFromPB(resp.GetGranted()) {
				got = append(got, s.String())
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("granted %v, want %v", got, c.want)
			}
		})
	}
}
