package browsertest_test

import (
	"bytes"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/browsertest"
)

// site is a small server-rendered site like Portcullis's pages: a strict CSP, a form with
// labels, a list of rows with a button each, a POST that redirects.
type site struct {
	mu      sync.Mutex
	revoked []string
	posted  map[string]string
}

func (s *site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	page := func(body string) {
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><title>Test site</title></head><body>%s
<script>document.title = "inline ran";</script></body></html>`, body)
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s1", HttpOnly: true, SameSite: http.SameSiteLaxMode, Path: "/"})
		var rows strings.Builder
		for _, name := range []string{"laptop", "ci server", "phone"} {
			fmt.Fprintf(&rows, `<tr><td>%s</td><td><form method="post" action="/revoke"><input type="hidden" name="id" value="%s"><button>Revoke</button></form></td></tr>`,
				html.EscapeString(name), html.EscapeString(name))
		}
		page(`<h1>Account</h1>
<form method="post" action="/create">
  <label for="n">Name</label> <input id="n" name="name">
  <label>Expires in <select name="expiry"><option value="24h">1 day</option><option value="720h">30 days</option></select></label>
  <input type="password" name="secret" aria-label="Secret">
  <button type="submit">Create token</button>
</form>
<table>` + rows.String() + `</table>
<div style="height: 2000px">tall</div><p>bottom of the page</p>`)
	case r.Method == http.MethodPost && r.URL.Path == "/create":
		_ = r.ParseForm()
		s.mu.Lock()
		s.posted = map[string]string{"name": r.PostForm.Get("name"), "expiry": r.PostForm.Get("expiry"), "secret": r.PostForm.Get("secret")}
		s.mu.Unlock()
		page(`<p>Created ` + html.EscapeString(r.PostForm.Get("name")) + `: tok_abc123</p>`)
	case r.Method == http.MethodPost && r.URL.Path == "/revoke":
		_ = r.ParseForm()
		s.mu.Lock()
		s.revoked = append(s.revoked, r.PostForm.Get("id"))
		s.mu.Unlock()
		http.Redirect(w, r, "/done", http.StatusSeeOther)
	case r.URL.Path == "/done":
		page(`<p>Revoked.</p>`)
	case r.URL.Path == "/limited":
		w.WriteHeader(http.StatusTooManyRequests)
		page(`<p>Too many attempts.</p>`)
	default:
		http.NotFound(w, r)
	}
}

func TestBrowser(t *testing.T) {
	s := &site{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	shots := t.TempDir()
	t.Setenv(browsertest.ArtifactsEnv, shots)

	b := browsertest.Start(t)
	p := b.Navigate(srv.URL + "/")
	if p.Status != 200 || p.URL != srv.URL+"/" {
		t.Fatalf("navigate: %+v", p)
	}
	if c := b.Cookies(srv.URL + "/")["sid"]; c == nil || !c.HTTPOnly || c.Value != "s1" {
		t.Fatalf("cookie sid: %+v", c)
	}
	// The CSP blocked the inline script, and the browser said so.
	if got := b.Title(); got != "Test site" {
		t.Fatalf("title %q: the inline script ran despite the CSP", got)
	}
	if c := strings.Join(b.Console(), "\n"); !strings.Contains(c, "inline script violates the following Content Security Policy") {
		t.Fatalf("the console has no report of the blocked script:\n%s", c)
	}
	first := b.Screenshot(t, "account page")
	if filepath.Base(first) != "00-account-page.png" || filepath.Dir(first) != filepath.Join(shots, "TestBrowser") {
		t.Fatalf("screenshot path %s", first)
	}
	data, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if h := img.Bounds().Dy(); h < 2000 {
		t.Fatalf("screenshot is %d px high: not the full page", h)
	}

	b.Fill("Name", "ci")
	b.Fill("Expires in", "30 days")
	b.Fill("Secret", "s3cret")
	if p := b.ClickButton("Create"); p.Status != 200 {
		t.Fatalf("create: %+v", p)
	}
	if got := b.Find(regexp.MustCompile(`tok_[a-z0-9]+`)); got != "tok_abc123" {
		t.Fatalf("token %q", got)
	}
	b.MustSee("Created ci")
	s.mu.Lock()
	posted := s.posted
	s.mu.Unlock()
	if posted["name"] != "ci" || posted["expiry"] != "720h" || posted["secret"] != "s3cret" {
		t.Fatalf("posted %v", posted)
	}

	b.Navigate(srv.URL + "/")
	if p := b.ClickButtonNear("ci server", "Revoke"); p.URL != srv.URL+"/done" || p.Status != 200 {
		t.Fatalf("revoke: %+v", p)
	}
	b.MustSee("Revoked.")
	s.mu.Lock()
	revoked := s.revoked
	s.mu.Unlock()
	if len(revoked) != 1 || revoked[0] != "ci server" {
		t.Fatalf("revoked %v, want the ci server's row", revoked)
	}
	if p := b.Navigate(srv.URL + "/limited"); p.Status != http.StatusTooManyRequests {
		t.Fatalf("limited: %+v", p)
	}
	second := b.Screenshot(t, "limited")
	if filepath.Base(second) != "01-limited.png" {
		t.Fatalf("second screenshot %s", second)
	}
}
