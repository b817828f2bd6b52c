package authn_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// mapped is a backend that maps its users' subjects from data the user may control (a
// directory attribute, a token claim): the password "pw" logs in any name, whose subject is
// subjects[name].
type mapped struct {
	authn.UnimplementedBackend
	subjects map[string]string
}

func (m mapped) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	s, ok := m.subjects[c.Username]
	if !ok {
		return identity.Identity{}, authn.ErrNoMatch
	}
	if c.Password != "pw" {
		return identity.Identity{}, authn.ErrInvalidCredentials
	}
	return identity.Identity{Subject: s}, nil
}

func (mapped) CanResolve() bool { return true }

func (m mapped) Resolve(_ context.Context, subject string) (identity.Identity, error) {
	for _, s := range m.subjects {
		if s == subject {
			return identity.Identity{Subject: s}, nil
		}
	}
	return identity.Identity{}, authn.ErrNoMatch
}

// namespaced is a backend whose subjects carry their own namespace, as the robot backend's.
type namespaced struct{ mapped }

func (namespaced) SubjectNamespace() string { return identity.RobotPrefix }

// A subject holding ':' could pass for a robot ("robot:ci"), the anonymous caller
// ("system:anonymous") or another backend's prefixed user: the chain refuses it from every
// backend that has no subject_prefix, accepts it under one, and accepts namespaced subjects
// only from the backend that owns the namespace.
func TestChainSubjectsCannotBeConfused(t *testing.T) {
	t.Parallel()
	users := mapped{subjects: map[string]string{"mallory": "robot:ci", "anon": "system:anonymous", "alice": "alice",
		"gha": "repo:myorg/app:ref:refs/heads/main"}}
	c := authn.NewChain([]authn.Member{
		{Name: "robots", Backend: namespaced{mapped{subjects: map[string]string{"ci": "robot:ci", "fake": "ci"}}}},
		{Name: "bare", Backend: mapped{subjects: map[string]string{"mallory": "robot:ci", "anon": "system:anonymous", "alice": "alice"}}},
		{Name: "corp", SubjectPrefix: "corp:", Backend: users},
	}, nil)
	cases := []struct {
		user        string
		wantSubject string
		wantErr     error
	}{
		{"ci", "robot:ci", nil},                                 // the robot backend's own namespace
		{"fake", "", authn.ErrSubjectRefused},                   // a namespaced backend's subject outside it
		{"mallory", "", authn.ErrSubjectRefused},                // a bare backend's "robot:ci"
		{"anon", "", authn.ErrSubjectRefused},                   // a bare backend's "system:anonymous"
		{"alice", "alice", nil},                                 // bare stays bare
		{"gha", "corp:repo:myorg/app:ref:refs/heads/main", nil}, // under a prefix ':' is fine
	}
	for _, tc := range cases {
		id, err := c.Authenticate(context.Background(), authn.Credentials{Username: tc.user, Password: "pw"})
		if !errors.Is(err, tc.wantErr) || id.Subject != tc.wantSubject {
			t.Errorf("%s: subject %q err %v, want %q %v", tc.user, id.Subject, err, tc.wantSubject, tc.wantErr)
		}
		if tc.wantErr != nil && !errors.Is(err, authn.ErrInvalidCredentials) {
			t.Errorf("%s: a refused subject must be a refused login: %v", tc.user, err)
		}
	}
	// A refresh re-reads the bare name and gets the prefix again; the bare name alone, or
	// another prefix, is nobody in that backend.
	if id, err := c.Resolve(context.Background(), "corp", "corp:repo:myorg/app:ref:refs/heads/main"); err != nil ||
		id.Subject != "corp:repo:myorg/app:ref:refs/heads/main" || id.Backend != "corp" {
		t.Errorf("Resolve prefixed: %+v %v", id, err)
	}
	for _, s := range []string{"repo:myorg/app:ref:refs/heads/main", "other:alice", "corp:"} {
		if _, err := c.Resolve(context.Background(), "corp", s); !errors.Is(err, authn.ErrNoMatch) {
			t.Errorf("Resolve(corp, %q) = %v, want ErrNoMatch", s, err)
		}
	}
	if _, err := c.Resolve(context.Background(), "bare", "robot:ci"); !errors.Is(err, authn.ErrNoMatch) {
		t.Errorf("Resolve(bare, robot:ci) = %v, want ErrNoMatch", err)
	}
}
