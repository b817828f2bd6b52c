package authn_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
)

func TestSessionAdmin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// setup logs alice in three times (two services) and bob once; it returns the tokens.
	setup := func(t *testing.T) (*env, map[string]string) {
		e := newEnv(t, true)
		toks := map[string]string{}
		for i, svc := range []string{"registry", "registry", "mirror"} {
			toks[fmt.Sprint("alice", i)] = e.login(t, "alice", svc, true).GetRefreshToken()
		}
		toks["bob"] = e.login(t, "bob", "registry", true).GetRefreshToken()
		return e, toks
	}
	ids := func(t *testing.T, e *env, subject string) []string {
		t.Helper()
		resp, err := e.admin.ListSessions(ctx, &authnv1.ListSessionsRequest{Subject: subject})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range resp.GetSessions() {
			out = append(out, s.GetId())
		}
		return out
	}
	cases := []struct {
		name string
		run  func(t *testing.T, e *env, toks map[string]string)
	}{
		{"list all", func(t *testing.T, e *env, _ map[string]string) {
			if got := ids(t, e, ""); len(got) != 4 {
				t.Fatalf("sessions = %v, want 4", got)
			}
		}},
		{"list by user", func(t *testing.T, e *env, _ map[string]string) {
			resp, err := e.admin.ListSessions(ctx, &authnv1.ListSessionsRequest{Subject: "alice"})
			if err != nil || len(resp.GetSessions()) != 3 {
				t.Fatalf("alice's sessions = %v, %v", resp, err)
			}
			for _, s := range resp.GetSessions() {
				if s.GetSubject() != "alice" || s.GetBackend() != "dir" || s.GetClientId() != "docker" ||
					s.GetCreatedAt() == nil || s.GetExpiresAt() == nil || s.GetIdleExpiresAt() == nil {
					t.Fatalf("session = %v", s)
				}
			}
		}},
		{"list pages", func(t *testing.T, e *env, _ map[string]string) {
			var all []string
			tok := ""
			for range 4 {
				resp, err := e.admin.ListSessions(ctx, &authnv1.ListSessionsRequest{PageSize: 3, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.GetSessions()) > 3 {
					t.Fatalf("page of %d, asked for 3", len(resp.GetSessions()))
				}
				for _, s := range resp.GetSessions() {
					all = append(all, s.GetId())
				}
				if tok = resp.GetNextPageToken(); tok == "" {
					break
				}
			}
			slices.Sort(all)
			if len(slices.Compact(all)) != 4 || tok != "" {
				t.Fatalf("paged through %v (next %q), want 4 distinct sessions", all, tok)
			}
		}},
		{"negative page size", func(t *testing.T, e *env, _ map[string]string) {
			_, err := e.admin.ListSessions(ctx, &authnv1.ListSessionsRequest{PageSize: -1})
			wantCode(t, err, codes.InvalidArgument)
		}},
		{"bad page token", func(t *testing.T, e *env, _ map[string]string) {
			_, err := e.admin.ListSessions(ctx, &authnv1.ListSessionsRequest{PageToken: "%%not-a-token%%"})
			wantCode(t, err, codes.InvalidArgument)
		}},
		{"get", func(t *testing.T, e *env, _ map[string]string) {
			id := ids(t, e, "bob")[0]
			resp, err := e.admin.GetSession(ctx, &authnv1.GetSessionRequest{Id: id})
			if err != nil || resp.GetSession().GetId() != id || resp.GetSession().GetSubject() != "bob" ||
				resp.GetSession().GetLastRemoteAddr() != "192.0.2.1" {
				t.Fatalf("get = %v, %v", resp, err)
			}
		}},
		{"get unknown", func(t *testing.T, e *env, _ map[string]string) {
			_, err := e.admin.GetSession(ctx, &authnv1.GetSessionRequest{Id: "ses_nope"})
			wantCode(t, err, codes.NotFound)
		}},
		{"get without id", func(t *testing.T, e *env, _ map[string]string) {
			_, err := e.admin.GetSession(ctx, &authnv1.GetSessionRequest{})
			wantCode(t, err, codes.InvalidArgument)
		}},
		{"revoke one", func(t *testing.T, e *env, toks map[string]string) {
			id := ids(t, e, "bob")[0]
			if _, err := e.admin.RevokeSession(ctx, &authnv1.RevokeSessionRequest{Id: id}); err != nil {
				t.Fatal(err)
			}
			_, err := e.refresh(toks["bob"], "registry")
			wantCode(t, err, codes.Unauthenticated)
			if _, err := e.refresh(toks["alice0"], "registry"); err != nil {
				t.Fatalf("alice's session went too: %v", err)
			}
			_, err = e.admin.GetSession(ctx, &authnv1.GetSessionRequest{Id: id})
			wantCode(t, err, codes.NotFound)
			_, err = e.admin.RevokeSession(ctx, &authnv1.RevokeSessionRequest{Id: id})
			wantCode(t, err, codes.NotFound)
		}},
		{"revoke without id", func(t *testing.T, e *env, _ map[string]string) {
			_, err := e.admin.RevokeSession(ctx, &authnv1.RevokeSessionRequest{})
			wantCode(t, err, codes.InvalidArgument)
		}},
		{"revoke a user's", func(t *testing.T, e *env, toks map[string]string) {
			resp, err := e.admin.RevokeUserSessions(ctx, &authnv1.RevokeUserSessionsRequest{Subject: "alice"})
			if err != nil || resp.GetRevoked() != 3 {
				t.Fatalf("revoke alice = %v, %v, want 3", resp, err)
			}
			for _, k := range []string{"alice0", "alice1"} {
				_, err := e.refresh(toks[k], "registry")
				wantCode(t, err, codes.Unauthenticated)
			}
			if _, err := e.refresh(toks["bob"], "registry"); err != nil {
				t.Fatalf("bob's session went too: %v", err)
			}
			if e.count(authn.EventRevoked) != 3 {
				t.Fatalf("revoked events = %d, want 3", e.count(authn.EventRevoked))
			}
		}},
		{"revoke a user without sessions", func(t *testing.T, e *env, _ map[string]string) {
			resp, err := e.admin.RevokeUserSessions(ctx, &authnv1.RevokeUserSessionsRequest{Subject: "nobody"})
			if err != nil || resp.GetRevoked() != 0 {
				t.Fatalf("= %v, %v", resp, err)
			}
		}},
		{"revoke without subject", func(t *testing.T, e *env, _ map[string]string) {
			_, err := e.admin.RevokeUserSessions(ctx, &authnv1.RevokeUserSessionsRequest{})
			wantCode(t, err, codes.InvalidArgument)
		}},
		{"store down", func(t *testing.T, e *env, _ map[string]string) {
			e.store.setDown(true)
			_, err := e.admin.ListSessions(ctx, &authnv1.ListSessionsRequest{})
			wantCode(t, err, codes.Unavailable)
			_, err = e.admin.GetSession(ctx, &authnv1.GetSessionRequest{Id: "ses_x"})
			wantCode(t, err, codes.Unavailable)
			_, err = e.admin.RevokeUserSessions(ctx, &authnv1.RevokeUserSessionsRequest{Subject: "alice"})
			wantCode(t, err, codes.Unavailable)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, toks := setup(t)
			tc.run(t, e, toks)
			for _, tok := range toks {
				assertNoToken(t, e.logs, tok)
			}
		})
	}
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if st := status.Convert(err); st.Code() != want {
		t.Fatalf("code = %v, want %v (%v)", st.Code(), want, err)
	} else if want != codes.OK && (st.Message() == "" || len(st.Message()) > 80) {
		t.Fatalf("message %q: want a short one", st.Message())
	}
}
