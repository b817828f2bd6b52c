package ssoaccountstest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
)

// Open returns a new, empty store for one subtest; the suite does not close it.
type Open func(t *testing.T) ssoaccounts.Store

// t0 is a time the stores keep exactly: UTC, whole microseconds.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// account is subject's account, known to the IdP as idpSub.
func account(subject, idpSub string) ssoaccounts.Account {
	return ssoaccounts.Account{Subject: subject, IDPSubject: idpSub, Groups: []string{"dev", "ops"},
		Labels:             map[string][]string{"team": {"platform"}, "cost-center": {"42", "43"}},
		SealedRefreshToken: []byte("sealed:" + subject), CreatedAt: t0, RevalidatedAt: t0.Add(time.Minute)}
}

// Same reports how got differs from want, or "" (times compared with Equal; nil and empty
// slices and maps are different).
func Same(got, want ssoaccounts.Account) string {
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.RevalidatedAt.Equal(want.RevalidatedAt) {
		return fmt.Sprintf("created/revalidated %v %v, want %v %v", got.CreatedAt, got.RevalidatedAt, want.CreatedAt, want.RevalidatedAt)
	}
	got.CreatedAt, got.RevalidatedAt, want.CreatedAt, want.RevalidatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("\n got %#v\nwant %#v", got, want)
	}
	return ""
}

// Run checks the Store contract. Stores read empty Groups, Labels and SealedRefreshToken back
// as nil (an IdP that sends no groups and one that sends an empty list say the same), keep a
// label's values as they were, and keep times in UTC to the microsecond.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	mustPut := func(t *testing.T, st ssoaccounts.Store, as ...ssoaccounts.Account) {
		t.Helper()
		for _, a := range as {
			if err := st.Put(ctx, a); err != nil {
				t.Fatalf("Put %s: %v", a.Subject, err)
			}
		}
	}
	t.Run("PutThenGet", func(t *testing.T) {
		st := open(t)
		a := account("alice", "idp-1")
		mustPut(t, st, a, account("bob", "idp-2"))
		got, err := st.Get(ctx, "alice")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if d := Same(got, a); d != "" {
			t.Errorf("Get: %s", d)
		}
		for _, s := range []string{"carol", "idp-1", "Alice", ""} {
			if _, err := st.Get(ctx, s); !errors.Is(err, ssoaccounts.ErrNotFound) {
				t.Errorf("Get(%q): %v, want ErrNotFound", s, err)
			}
		}
	})
	t.Run("PutReplaces", func(t *testing.T) {
		// A later Put replaces everything but CreatedAt, which stays the first Put's.
		st := open(t)
		first := account("alice", "idp-1")
		mustPut(t, st, first, account("bob", "idp-2"))
		steps := []ssoaccounts.Account{
			{Subject: "alice", IDPSubject: "idp-9", Groups: []string{"admins"}, Labels: map[string][]string{"x": {"y"}},
				SealedRefreshToken: []byte("sealed:2"), CreatedAt: t0.Add(time.Hour), RevalidatedAt: t0.Add(time.Hour)},
			{Subject: "alice", IDPSubject: "idp-9", CreatedAt: t0.Add(2 * time.Hour), RevalidatedAt: t0.Add(2 * time.Hour)},
		}
		for i, a := range steps {
			mustPut(t, st, a)
			want := a
			want.CreatedAt = first.CreatedAt
			got, err := st.Get(ctx, "alice")
			if err != nil {
				t.Fatalf("step %d: Get: %v", i, err)
			}
			if d := Same(got, want); d != "" {
				t.Errorf("step %d: %s", i, d)
			}
		}
		if got, err := st.Get(ctx, "bob"); err != nil || Same(got, account("bob", "idp-2")) != "" {
			t.Errorf("bob after alice's Puts: %v %s", err, Same(got, account("bob", "idp-2")))
		}
	})
	t.Run("ByIDPSubject", func(t *testing.T) {
		st := open(t)
		// Two subjects for one IdP person: the sso.subject claim changed between sign-ins.
		mustPut(t, st, account("zed", "idp-1"), account("alice", "idp-1"), account("bob", "idp-2"))
		for _, c := range []struct {
			sub  string
			want []string
		}{
			{"idp-1", []string{"alice", "zed"}},
			{"idp-2", []string{"bob"}},
			{"idp-3", nil},
			{"alice", nil},
		} {
			got, err := st.ByIDPSubject(ctx, c.sub)
			if err != nil {
				t.Fatalf("ByIDPSubject(%s): %v", c.sub, err)
			}
			var subjects []string
			for _, a := range got {
				subjects = append(subjects, a.Subject)
				if d := Same(a, account(a.Subject, c.sub)); d != "" {
					t.Errorf("ByIDPSubject(%s): %s", c.sub, d)
				}
			}
			if !reflect.DeepEqual(subjects, c.want) {
				t.Errorf("ByIDPSubject(%s) = %v, want %v (ordered by subject)", c.sub, subjects, c.want)
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		mustPut(t, st, account("alice", "idp-1"), account("bob", "idp-1"))
		if err := st.Delete(ctx, "alice"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := st.Get(ctx, "alice"); !errors.Is(err, ssoaccounts.ErrNotFound) {
			t.Errorf("Get after Delete: %v, want ErrNotFound", err)
		}
		if got, err := st.ByIDPSubject(ctx, "idp-1"); err != nil || len(got) != 1 || got[0].Subject != "bob" {
			t.Errorf("ByIDPSubject after Delete = %v, %v; want bob's only", got, err)
		}
		for _, s := range []string{"alice", "carol"} {
			if err := st.Delete(ctx, s); !errors.Is(err, ssoaccounts.ErrNotFound) {
				t.Errorf("Delete(%s): %v, want ErrNotFound", s, err)
			}
		}
		// Put after Delete is a new account: its own CreatedAt.
		again := account("alice", "idp-1")
		again.CreatedAt = t0.Add(time.Hour)
		mustPut(t, st, again)
		if got, err := st.Get(ctx, "alice"); err != nil || !got.CreatedAt.Equal(again.CreatedAt) {
			t.Errorf("created at %v (%v) after Delete and Put, want %v", got.CreatedAt, err, again.CreatedAt)
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		east := time.FixedZone("east", 5*3600)
		for _, c := range []struct {
			name       string
			edit, want func(*ssoaccounts.Account)
		}{
			{"nil groups, labels and token", func(a *ssoaccounts.Account) { a.Groups, a.Labels, a.SealedRefreshToken = nil, nil, nil },
				func(a *ssoaccounts.Account) { a.Groups, a.Labels, a.SealedRefreshToken = nil, nil, nil }},
			{"empty groups, labels and token", func(a *ssoaccounts.Account) {
				a.Groups, a.Labels, a.SealedRefreshToken = []string{}, map[string][]string{}, []byte{}
			}, func(a *ssoaccounts.Account) { a.Groups, a.Labels, a.SealedRefreshToken = nil, nil, nil }},
			{"a label without values", func(a *ssoaccounts.Account) { a.Labels = map[string][]string{"empty": {}, "one": {""}} },
				func(a *ssoaccounts.Account) { a.Labels = map[string][]string{"empty": {}, "one": {""}} }},
			{"odd strings", func(a *ssoaccounts.Account) { a.Groups = []string{"", "ü\"\\", "a,b"}; a.IDPSubject = "" },
				func(a *ssoaccounts.Account) { a.Groups = []string{"", "ü\"\\", "a,b"}; a.IDPSubject = "" }},
			{"binary token", func(a *ssoaccounts.Account) { a.SealedRefreshToken = []byte{0, 0xff, 0, 1} },
				func(a *ssoaccounts.Account) { a.SealedRefreshToken = []byte{0, 0xff, 0, 1} }},
			{"nanoseconds and zones", func(a *ssoaccounts.Account) {
				a.CreatedAt, a.RevalidatedAt = t0.Add(999).In(east), t0.Add(time.Hour+1).In(east)
			},
				func(a *ssoaccounts.Account) { a.CreatedAt, a.RevalidatedAt = t0, t0.Add(time.Hour) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				st := open(t)
				a, want := account("alice", "idp-1"), account("alice", "idp-1")
				c.edit(&a)
				c.want(&want)
				mustPut(t, st, a)
				got, err := st.Get(ctx, "alice")
				if err != nil {
					t.Fatal(err)
				}
				if d := Same(got, want); d != "" {
					t.Error(d)
				}
				if got.CreatedAt.Location() != time.UTC || got.RevalidatedAt.Location() != time.UTC {
					t.Errorf("times in %v and %v, want UTC", got.CreatedAt.Location(), got.RevalidatedAt.Location())
				}
			})
		}
	})
}
