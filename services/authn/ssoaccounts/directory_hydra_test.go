package ssoaccounts_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/hydratest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts/ssoaccountstest"
)

// hydraRP is the relying party's side at a real Hydra: the callback answers with its query,
// the back-channel logout endpoint keeps the tokens it gets; down cuts the provider off.
type hydraRP struct {
	srv  *httptest.Server
	p    *sso.Provider
	down atomic.Bool

	mu      sync.Mutex
	logouts []string
}

func (r *hydraRP) RoundTrip(req *http.Request) (*http.Response, error) {
	if r.down.Load() {
		return nil, errors.New("connection refused (test)")
	}
	return http.DefaultTransport.RoundTrip(req)
}

func newHydraRP(t *testing.T, h *hydratest.Server) *hydraRP {
	t.Helper()
	r := &hydraRP{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, req *http.Request) { _, _ = io.WriteString(w, req.URL.RawQuery) })
	mux.HandleFunc("POST /backchannel", func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.logouts = append(r.logouts, req.PostFormValue("logout_token"))
		r.mu.Unlock()
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	c := h.CreateClient(t, hydratest.ClientConfig{ID: "portcullis", RedirectURIs: []string{r.srv.URL + "/callback"},
		BackChannelLogoutURI: r.srv.URL + "/backchannel"})
	dir := t.TempDir()
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	for name, b := range map[string][]byte{"key": key, "secret": []byte(c.Secret + "\n")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := sso.New(sso.Config{
		Issuer: h.Issuer, ClientID: c.ID, ClientSecretFile: filepath.Join(dir, "secret"), EncryptionKeyFile: filepath.Join(dir, "key"),
		Subject: "preferred_username", Groups: claims.Strings{"groups"},
		Scopes: []string{"openid", "offline_access", "profile", "groups"},
	}, sso.Options{RedirectURL: c.RedirectURIs[0], HTTPClient: &http.Client{Transport: r, Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	return r
}

// signIn sends a fresh browser through the code flow as the IdP's user sub.
func (r *hydraRP) signIn(t *testing.T, sub string) *sso.SignIn {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: time.Minute}
	req := sso.NewAuthRequest()
	u, err := r.p.AuthCodeURL(context.Background(), req, url.Values{"login_hint": {sub}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := browser.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Request.URL.String(), r.srv.URL+"/callback") {
		t.Fatalf("authorization ended at %s with %s: %s", res.Request.URL, res.Status, b)
	}
	q, _ := url.ParseQuery(string(b))
	if err := req.CheckState(q.Get("state")); err != nil {
		t.Fatal(err)
	}
	in, err := r.p.Exchange(context.Background(), q.Get("code"), req)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// countingIdP counts the revalidations that reach the IdP.
type countingIdP struct {
	ssoaccounts.Revalidator
	n atomic.Int32
}

func (c *countingIdP) Revalidate(ctx context.Context, subject string, sealed []byte) (*sso.Revalidation, error) {
	c.n.Add(1)
	return c.Revalidator.Revalidate(ctx, subject, sealed)
}

// TestDirectoryWithHydra runs the directory against a real ORY Hydra: revalidation with the
// rotating refresh tokens Hydra gives, the IdP down, an account disabled at the IdP, and a
// back-channel logout by sid. Only the directory's clock is fake.
func TestDirectoryWithHydra(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ORY Hydra")
	}
	h := hydratest.Start(t)
	for _, u := range []string{"alice", "bob"} {
		h.AddUser(hydratest.User{Subject: "idp-" + u, Claims: map[string]any{"preferred_username": u, "groups": []string{"developers"}}})
	}
	r := newHydraRP(t, h)
	idp := &countingIdP{Revalidator: r.p}
	st := ssoaccountstest.NewMemory()
	clock := testutil.NewClock(time.Now())
	var endedMu sync.Mutex
	var ended []string
	d := ssoaccounts.NewDirectory(ssoaccounts.DirectoryOptions{Store: st, IdP: idp, Interval: time.Hour, Now: clock.Now,
		Ended: func(_ context.Context, subject, reason string) {
			endedMu.Lock()
			ended = append(ended, subject+"/"+reason)
			endedMu.Unlock()
		}})
	ctx := context.Background()

	aliceIn := r.signIn(t, "idp-alice")
	alice, err := d.SignedIn(ctx, aliceIn)
	if err != nil {
		t.Fatal(err)
	}
	bobIn := r.signIn(t, "idp-bob")
	if _, err := d.SignedIn(ctx, bobIn); err != nil {
		t.Fatal(err)
	}
	if id, err := d.Resolve(ctx, "alice"); err != nil || id.Fingerprint != alice.Fingerprint || idp.n.Load() != 0 {
		t.Fatalf("just signed in: %+v, %v, %d IdP calls", id, err, idp.n.Load())
	}

	// Twice past the interval: Hydra rotates the refresh token each time, so the second works
	// only if the first stored the new one.
	for i := range 2 {
		before, _ := st.Get(ctx, "alice")
		clock.Add(time.Hour)
		id, err := d.Resolve(ctx, "alice")
		if err != nil || !slices.Equal(id.Groups, []string{"developers"}) || id.Fingerprint != alice.Fingerprint {
			t.Fatalf("revalidation %d: %+v, %v", i, id, err)
		}
		after, _ := st.Get(ctx, "alice")
		if slices.Equal(after.SealedRefreshToken, before.SealedRefreshToken) || !after.RevalidatedAt.Equal(clock.Now().UTC().Truncate(time.Microsecond)) {
			t.Fatalf("revalidation %d did not store a new token and time: %+v", i, after)
		}
	}
	if n := idp.n.Load(); n != 2 {
		t.Fatalf("%d IdP calls, want 2", n)
	}

	// The IdP unreachable: refused, kept, and fine once it is back.
	clock.Add(time.Hour)
	r.down.Store(true)
	if _, err := d.Resolve(ctx, "alice"); !errors.Is(err, ssoaccounts.ErrUnavailable) {
		t.Fatalf("IdP down: %v, want ErrUnavailable", err)
	}
	r.down.Store(false)
	if _, err := d.Resolve(ctx, "alice"); err != nil {
		t.Fatalf("IdP back: %v", err)
	}

	// Disabled at the IdP: the next revalidation ends the account, once.
	h.DisableUser(t, "idp-alice")
	if _, err := d.Resolve(ctx, "alice"); err != nil {
		t.Fatalf("inside the interval the IdP is not asked: %v", err)
	}
	clock.Add(time.Hour)
	if _, err := d.Resolve(ctx, "alice"); !errors.Is(err, ssoaccounts.ErrEnded) {
		t.Fatalf("disabled: %v, want ErrEnded", err)
	}
	if _, err := d.Resolve(ctx, "alice"); !errors.Is(err, ssoaccounts.ErrNotFound) {
		t.Fatalf("after the end: %v, want ErrNotFound", err)
	}
	endedMu.Lock()
	if !slices.Equal(ended, []string{"alice/" + ssoaccounts.EndedAtIdP}) {
		t.Errorf("Ended: %v", ended)
	}
	endedMu.Unlock()
	if _, err := d.Resolve(ctx, "bob"); err != nil {
		t.Fatalf("bob after alice's end: %v", err)
	}

	// Hydra ends bob's login session and tells us by sid; the host's web sessions map it.
	h.BackChannelLogout(t, bobIn.SessionID)
	var raw string
	testutil.Eventually(t, time.Minute, "Hydra's back-channel logout", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.logouts) > 0 {
			raw = r.logouts[0]
		}
		return raw != ""
	})
	lo, err := r.p.VerifyLogoutToken(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	webSessions := map[string][]string{bobIn.SessionID: {"bob"}, aliceIn.SessionID: {"alice"}}
	got, err := d.Logout(ctx, lo, func(_ context.Context, sid string) ([]string, error) { return webSessions[sid], nil })
	if err != nil || !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("Logout(%+v) = %v, %v; want bob", lo, got, err)
	}
}
