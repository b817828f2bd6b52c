package websessionstest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

// Open returns a new, empty store for one subtest; the suite does not close it.
type Open func(t *testing.T) websessions.Store

// t0 is a time the stores keep exactly: UTC, whole microseconds.
var t0 = time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)

// session is subject's session named n, its id and token derived from n.
func session(n, subject string) websessions.Session {
	return websessions.Session{ID: "wss_" + n, TokenHash: websessions.HashToken("pcw_" + n),
		Subject: subject, Backend: "sso", Fingerprint: "fp-" + subject, IDPSessionID: "sid-" + n,
		RemoteAddr: "192.0.2.7", UserAgent: "Mozilla/5.0", CreatedAt: t0, ExpiresAt: t0.Add(8 * time.Hour)}
}

// Same reports how got differs from want, or "" (times compared with Equal).
func Same(got, want websessions.Session) string {
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		return fmt.Sprintf("created/expires %v %v, want %v %v", got.CreatedAt, got.ExpiresAt, want.CreatedAt, want.ExpiresAt)
	}
	got.CreatedAt, got.ExpiresAt, want.CreatedAt, want.ExpiresAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if got != want {
		return fmt.Sprintf("\n got %+v\nwant %+v", got, want)
	}
	return ""
}

// Run checks the Store contract. Stores keep times in UTC to the microsecond.
func Run(t *testing.T, open Open) {
	ctx := context.Background()
	mustCreate := func(t *testing.T, st websessions.Store, ss ...websessions.Session) {
		t.Helper()
		for _, s := range ss {
			if err := st.Create(ctx, s); err != nil {
				t.Fatalf("Create %s: %v", s.ID, err)
			}
		}
	}
	// left is which of the sessions named ns are still stored.
	left := func(t *testing.T, st websessions.Store, ns ...string) []string {
		t.Helper()
		var out []string
		for _, n := range ns {
			switch _, err := st.ByTokenHash(ctx, websessions.HashToken("pcw_"+n)); {
			case err == nil:
				out = append(out, n)
			case !errors.Is(err, websessions.ErrNotFound):
				t.Fatalf("ByTokenHash %s: %v", n, err)
			}
		}
		return out
	}
	t.Run("CreateThenFind", func(t *testing.T) {
		st := open(t)
		s := session("a", "alice")
		mustCreate(t, st, s, session("b", "alice"))
		got, err := st.ByTokenHash(ctx, s.TokenHash)
		if err != nil {
			t.Fatalf("ByTokenHash: %v", err)
		}
		if d := Same(got, s); d != "" {
			t.Errorf("ByTokenHash: %s", d)
		}
		if _, err := st.ByTokenHash(ctx, websessions.HashToken("pcw_other")); !errors.Is(err, websessions.ErrNotFound) {
			t.Errorf("ByTokenHash of an unknown hash: %v, want ErrNotFound", err)
		}
	})
	t.Run("CreateRefusesDuplicates", func(t *testing.T) {
		st := open(t)
		s := session("a", "alice")
		mustCreate(t, st, s)
		for _, c := range []struct {
			name string
			s    websessions.Session
		}{
			{"same id", func() websessions.Session { o := session("b", "bob"); o.ID = s.ID; return o }()},
			{"same token hash", func() websessions.Session { o := session("b", "bob"); o.TokenHash = s.TokenHash; return o }()},
		} {
			if err := st.Create(ctx, c.s); err == nil {
				t.Errorf("%s: Create succeeded", c.name)
			}
		}
		if got, err := st.ByTokenHash(ctx, s.TokenHash); err != nil || Same(got, s) != "" {
			t.Errorf("the first session after the refused ones: %v %s", err, Same(got, s))
		}
	})
	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		mustCreate(t, st, session("a", "alice"), session("b", "alice"))
		if err := st.Delete(ctx, "wss_a"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := left(t, st, "a", "b"); !slices.Equal(got, []string{"b"}) {
			t.Errorf("after Delete: %v left, want [b]", got)
		}
		for _, id := range []string{"wss_a", "wss_none", ""} {
			if err := st.Delete(ctx, id); !errors.Is(err, websessions.ErrNotFound) {
				t.Errorf("Delete(%q): %v, want ErrNotFound", id, err)
			}
		}
	})
	t.Run("SubjectsByIDPSession", func(t *testing.T) {
		st := open(t)
		b := session("b", "bob")
		b.IDPSessionID = "sid-a" // bob shares alice's IdP session: both are named
		c := session("c", "alice")
		c.IDPSessionID = "sid-a"
		d := session("d", "carol")
		d.IDPSessionID = ""
		mustCreate(t, st, session("a", "alice"), b, c, d)
		for _, tc := range []struct {
			sid  string
			want []string
		}{
			{"sid-a", []string{"alice", "bob"}},
			{"sid-x", nil},
			{"", nil}, // a session without a sid is never named by one
		} {
			got, err := st.SubjectsByIDPSession(ctx, tc.sid)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("SubjectsByIDPSession(%q) = %q, %v; want %q", tc.sid, got, err, tc.want)
			}
		}
	})
	t.Run("DeleteSubject", func(t *testing.T) {
		st := open(t)
		mustCreate(t, st, session("a", "alice"), session("b", "alice"), session("c", "bob"), session("d", "alice2"))
		steps := []struct {
			subject string
			want    int
			left    []string
		}{
			{"alice", 2, []string{"c", "d"}},
			{"alice", 0, []string{"c", "d"}},
			{"nobody", 0, []string{"c", "d"}},
			{"bob", 1, []string{"d"}},
		}
		for i, s := range steps {
			n, err := st.DeleteSubject(ctx, s.subject)
			if err != nil || n != s.want {
				t.Fatalf("step %d: DeleteSubject(%s) = %d, %v; want %d", i, s.subject, n, err, s.want)
			}
			if got := left(t, st, "a", "b", "c", "d"); !slices.Equal(got, s.left) {
				t.Errorf("step %d: %v left, want %v", i, got, s.left)
			}
		}
	})
	t.Run("DeleteExpired", func(t *testing.T) {
		st := open(t)
		exp := func(n string, at time.Time) websessions.Session { s := session(n, "alice"); s.ExpiresAt = at; return s }
		mustCreate(t, st, exp("a", t0.Add(-time.Microsecond)), exp("b", t0), exp("c", t0.Add(time.Microsecond)))
		steps := []struct {
			now  time.Time
			want int
			left []string
		}{
			{t0.Add(-2 * time.Microsecond), 0, []string{"a", "b", "c"}},
			{t0, 2, []string{"c"}}, // ExpiresAt not after now: gone
			{t0, 0, []string{"c"}},
			{t0.Add(time.Microsecond), 1, nil},
		}
		for i, s := range steps {
			n, err := st.DeleteExpired(ctx, s.now)
			if err != nil || n != s.want {
				t.Fatalf("step %d: DeleteExpired = %d, %v; want %d", i, n, err, s.want)
			}
			if got := left(t, st, "a", "b", "c"); !slices.Equal(got, s.left) {
				t.Errorf("step %d: %v left, want %v", i, got, s.left)
			}
		}
	})
	t.Run("RoundTrip", func(t *testing.T) {
		east := time.FixedZone("east", 5*3600)
		for _, c := range []struct {
			name       string
			edit, want func(*websessions.Session)
		}{
			{"no IdP session", func(s *websessions.Session) { s.IDPSessionID = "" }, func(s *websessions.Session) { s.IDPSessionID = "" }},
			{"empty strings", func(s *websessions.Session) { s.Backend, s.Fingerprint, s.RemoteAddr, s.UserAgent = "", "", "", "" },
				func(s *websessions.Session) { s.Backend, s.Fingerprint, s.RemoteAddr, s.UserAgent = "", "", "", "" }},
			{"nanoseconds and zones", func(s *websessions.Session) {
				s.CreatedAt, s.ExpiresAt = t0.Add(999).In(east), t0.Add(time.Hour+1).In(east)
			},
				func(s *websessions.Session) { s.CreatedAt, s.ExpiresAt = t0, t0.Add(time.Hour) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				st := open(t)
				s, want := session("a", "alice"), session("a", "alice")
				c.edit(&s)
				c.want(&want)
				mustCreate(t, st, s)
				got, err := st.ByTokenHash(ctx, s.TokenHash)
				if err != nil {
					t.Fatal(err)
				}
				if d := Same(got, want); d != "" {
					t.Error(d)
				}
				if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
					t.Errorf("times in %v and %v, want UTC", got.CreatedAt.Location(), got.ExpiresAt.Location())
				}
			})
		}
	})
}
