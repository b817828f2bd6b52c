package ssobackend_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	ssobackend "github.com/portcullis-dev/portcullis/services/authn/backend/sso"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts/ssoaccountstest"
)

// idp answers every revalidation with err, else vouches with groups ops.
type idp struct{ err error }

func (p *idp) Revalidate(_ context.Context, subject string, sealed []byte) (*sso.Revalidation, error) {
	if p.err != nil {
		return nil, p.err
	}
	return &sso.Revalidation{SealedRefreshToken: sealed, Identity: &identity.Identity{Subject: subject, Groups: []string{"ops"}}}, nil
}

// people is a password backend that knows nobody: the sso backend must not need one, and
// must not keep the chain from reaching it.
type people struct{ authn.UnimplementedBackend }

func (people) Authenticate(context.Context, authn.Credentials) (identity.Identity, error) {
	return identity.Identity{}, authn.ErrNoMatch
}

const interval = time.Hour

type env struct {
	dir   *ssoaccounts.Directory
	idp   *idp
	clock *testutil.Clock
	b     authn.Backend
	ended []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{idp: &idp{}, clock: testutil.NewClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))}
	e.dir = ssoaccounts.NewDirectory(ssoaccounts.DirectoryOptions{
		Store: ssoaccountstest.NewMemory(), IdP: e.idp, Interval: interval, Now: e.clock.Now,
		Ended: func(_ context.Context, subject, _ string) { e.ended = append(e.ended, subject) },
	})
	// Through the config list, as a config file opens it.
	var node yaml.Node
	if err := yaml.Unmarshal([]byte("{}"), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := backend.Decode(backend.Spec{Name: "sso", Type: "sso", Config: *node.Content[0]})
	if err != nil {
		t.Fatal(err)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if e.b, err = cfg.Open(context.Background(), authn.Deps{SSO: e.dir}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dir.SignedIn(context.Background(), &sso.SignIn{
		Identity:   identity.Identity{Subject: "alice", Groups: []string{"dev"}, Backend: sso.Backend},
		IDPSubject: "idp-alice", SealedRefreshToken: []byte("sealed"),
	}); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestResolveThroughTheChain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, member, prefix, subject string
		after                         time.Duration
		idpErr                        error
		wantErr                       error
		wantSubject                   string
		wantGroups                    []string
		wantEnded                     bool
	}{
		{name: "vouched for recently", member: "sso", subject: "alice", wantSubject: "alice", wantGroups: []string{"dev"}},
		{name: "revalidated", member: "sso", subject: "alice", after: interval, wantSubject: "alice", wantGroups: []string{"ops"}},
		{name: "unknown", member: "sso", subject: "bob", wantErr: authn.ErrNoMatch},
		{name: "ended at the IdP", member: "sso", subject: "alice", after: interval, idpErr: sso.ErrAccountEnded,
			wantErr: authn.ErrAccountDisabled, wantEnded: true},
		{name: "IdP down", member: "sso", subject: "alice", after: interval, idpErr: sso.ErrUnavailable, wantErr: authn.ErrUnavailable},
		{name: "with a subject_prefix", member: "corp", prefix: "corp:", subject: "corp:alice", wantSubject: "corp:alice", wantGroups: []string{"dev"}},
		{name: "without the prefix", member: "corp", prefix: "corp:", subject: "alice", wantErr: authn.ErrNoMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			ch := authn.NewChain([]authn.Member{{Name: "ldap", Backend: people{}}, {Name: tc.member, SubjectPrefix: tc.prefix, Backend: e.b}}, nil)
			e.idp.err = tc.idpErr
			e.clock.Add(tc.after)
			id, err := ch.Resolve(context.Background(), tc.member, tc.subject)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve: %v, want %v", err, tc.wantErr)
			}
			if tc.wantEnded != (len(e.ended) == 1) || len(e.ended) > 1 {
				t.Errorf("Ended called for %v", e.ended)
			}
			if err != nil {
				return
			}
			if id.Subject != tc.wantSubject || id.Backend != tc.member || !slices.Equal(id.Groups, tc.wantGroups) || id.Fingerprint == "" {
				t.Errorf("identity %+v, want %s of backend %s with groups %v and a fingerprint", id, tc.wantSubject, tc.member, tc.wantGroups)
			}
			// A personal access token's owner is found the same way.
			if p, err := ch.ResolvePerson(context.Background(), tc.subject); err != nil || p.Subject != id.Subject {
				t.Errorf("ResolvePerson: %+v, %v", p, err)
			}
		})
	}
}

func TestNoLogins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if e.b.Claiming() || !e.b.CanResolve() || e.b.AcceptsSubjectTokens() || e.b.SubjectNamespace() != "" {
		t.Error("the sso backend resolves and claims nothing")
	}
	for _, k := range []authn.CredentialKind{authn.KindPassword, authn.KindSubjectToken} {
		if _, err := e.b.Authenticate(context.Background(), authn.Credentials{Username: "alice", Password: "anything", Kind: k}); !errors.Is(err, authn.ErrNoMatch) {
			t.Errorf("Authenticate (kind %d): %v, want ErrNoMatch", k, err)
		}
	}
	ch := authn.NewChain([]authn.Member{{Name: "sso", Backend: e.b}}, nil)
	if _, err := ch.Authenticate(context.Background(), authn.Credentials{Username: "alice", Password: "anything"}); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Errorf("a login as a signed-in person: %v, want ErrInvalidCredentials", err)
	}
}

func TestOpenWithoutDirectory(t *testing.T) {
	t.Parallel()
	if _, err := (&ssobackend.Config{}).Open(context.Background(), authn.Deps{}); err == nil || !strings.Contains(err.Error(), "sso") {
		t.Errorf("Open without a directory: %v", err)
	}
}
