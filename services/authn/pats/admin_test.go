package pats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
)

func TestAdminServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pp := &people{ids: map[string]identity.Identity{"alice": {Subject: "alice"}}}
	m, st := newManager(t, &now, pp)
	s := pats.NewAdminServer(m, nil)

	created, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "ci",
		ExpiresIn: durationpb.New(time.Hour), Scopes: []string{"repository:alice/*:pull"}})
	if err != nil {
		t.Fatal(err)
	}
	p := created.GetPersonalAccessToken()
	if !pats.WellFormed(created.GetSecret()) || p.GetOwner() != "alice" || p.GetName() != "ci" || p.GetId() == "" ||
		p.GetState() != authnv1.PersonalAccessTokenState_PERSONAL_ACCESS_TOKEN_STATE_ACTIVE ||
		strings.Join(p.GetScopes(), " ") != "repository:alice/*:pull" || !p.GetExpiresAt().AsTime().Equal(now.Add(time.Hour)) ||
		p.GetLastUsedAt() != nil || strings.Contains(p.String(), created.GetSecret()[4:]) {
		t.Fatalf("CreatePersonalAccessToken = %v", created)
	}
	now = now.Add(2 * time.Hour)
	list, err := s.ListPersonalAccessTokens(ctx, &authnv1.ListPersonalAccessTokensRequest{Owner: "alice"})
	if err != nil || len(list.GetPersonalAccessTokens()) != 1 ||
		list.GetPersonalAccessTokens()[0].GetState() != authnv1.PersonalAccessTokenState_PERSONAL_ACCESS_TOKEN_STATE_EXPIRED ||
		strings.Contains(list.String(), created.GetSecret()[4:]) {
		t.Fatalf("ListPersonalAccessTokens = %v, %v; want the expired ci", list, err)
	}
	rev, err := s.RevokePersonalAccessToken(ctx, &authnv1.RevokePersonalAccessTokenRequest{Id: p.GetId()})
	if err != nil || rev.GetPersonalAccessToken().GetId() != p.GetId() {
		t.Fatalf("RevokePersonalAccessToken = %v, %v", rev, err)
	}

	// Every refusal is a standard code with a message for the caller; a store failure says
	// nothing of the store.
	for _, c := range []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"no expiry", func() error {
			_, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "x"})
			return err
		}, codes.InvalidArgument, "expires_in is required"},
		{"negative expiry", func() error {
			_, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "x", ExpiresIn: durationpb.New(-time.Second)})
			return err
		}, codes.InvalidArgument, "positive"},
		{"invalid duration", func() error {
			_, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "x",
				ExpiresIn: &durationpb.Duration{Seconds: 1, Nanos: -1}})
			return err
		}, codes.InvalidArgument, "not a valid duration"},
		{"unknown owner", func() error {
			_, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "bob", Name: "x", ExpiresIn: durationpb.New(time.Hour)})
			return err
		}, codes.FailedPrecondition, "no authn backend knows"},
		{"list without owner", func() error {
			_, err := s.ListPersonalAccessTokens(ctx, &authnv1.ListPersonalAccessTokensRequest{})
			return err
		}, codes.InvalidArgument, "owner is required"},
		{"revoke without id", func() error {
			_, err := s.RevokePersonalAccessToken(ctx, &authnv1.RevokePersonalAccessTokenRequest{})
			return err
		}, codes.InvalidArgument, "id is required"},
		{"revoke unknown", func() error {
			_, err := s.RevokePersonalAccessToken(ctx, &authnv1.RevokePersonalAccessTokenRequest{Id: p.GetId()})
			return err
		}, codes.NotFound, "not found"},
		{"revoke an overlong id", func() error {
			_, err := s.RevokePersonalAccessToken(ctx, &authnv1.RevokePersonalAccessTokenRequest{Id: strings.Repeat("x", 1000)})
			return err
		}, codes.NotFound, "not found"},
		{"store down", func() error {
			st.Fail(errors.New("disk on fire"))
			defer st.Fail(nil)
			_, err := s.ListPersonalAccessTokens(ctx, &authnv1.ListPersonalAccessTokensRequest{Owner: "alice"})
			return err
		}, codes.Unavailable, "unavailable"},
		{"owner lookup down", func() error {
			pp.broken = errors.New("ldap down")
			defer func() { pp.broken = nil }()
			_, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "y", ExpiresIn: durationpb.New(time.Hour)})
			return err
		}, codes.Unavailable, "unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			st, _ := status.FromError(err)
			if st.Code() != c.code || !strings.Contains(st.Message(), c.msg) || strings.Contains(st.Message(), "fire") {
				t.Errorf("%v, want %v with %q", err, c.code, c.msg)
			}
		})
	}
	// The name of a revoked token may be used again.
	if _, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "ci", ExpiresIn: durationpb.New(time.Hour)}); err != nil {
		t.Fatalf("re-creating ci: %v", err)
	}
	if _, err := s.CreatePersonalAccessToken(ctx, &authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "ci", ExpiresIn: durationpb.New(time.Hour)}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("creating ci twice: %v, want AlreadyExists", err)
	}
}
