package oidc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
)

// A claim is data its issuer's users may shape (a Keycloak user name, a custom GitHub sub
// template): a subject claim "robot:ci" must not make the token's holder the robot "ci".
// Without subject_prefix a subject holding ':' is refused (so GitHub's, GitLab's and
// Kubernetes' sub need one); under a prefix it is namespaced.
func TestClaimedSubjectCannotNameARobot(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	workloads, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}}).Open(context.Background(), authn.Deps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = workloads.Close(context.Background()) })
	cases := []struct {
		prefix, sub string
		wantSub     string
		wantErr     error
	}{
		{"", "robot:ci", "", authn.ErrSubjectRefused},
		{"", "system:anonymous", "", authn.ErrSubjectRefused},
		{"", "repo:myorg/app:ref:refs/heads/main", "", authn.ErrSubjectRefused},
		{"", "build-bot", "build-bot", nil},
		{"github:", "robot:ci", "github:robot:ci", nil},
		{"github:", "repo:myorg/app:ref:refs/heads/main", "github:repo:myorg/app:ref:refs/heads/main", nil},
	}
	for _, tc := range cases {
		ch := authn.NewChain([]authn.Member{{Name: "ci", SubjectPrefix: tc.prefix, Backend: workloads}}, nil)
		tok := iss.MustSign(t, with(githubClaims(iss, clk.Now()), "sub", tc.sub))
		id, err := ch.Authenticate(context.Background(), authn.Credentials{Username: "x", Password: authn.Password(tok)})
		if !errors.Is(err, tc.wantErr) || id.Subject != tc.wantSub {
			t.Errorf("prefix %q sub %q: subject %q err %v, want %q %v", tc.prefix, tc.sub, id.Subject, err, tc.wantSub, tc.wantErr)
		}
	}
}
