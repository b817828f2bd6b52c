// Package browsertest drives a real browser for the suites that test Portcullis's pages: Debian's
// chromium, headless, through the DevTools protocol (github.com/chromedp/chromedp). A test
// navigates, fills fields, clicks buttons by what they say, reads the page's text, and keeps a
// full-page screenshot of every page it looks at in its artifact directory.
//
// The browser runs as root in a container would need it: without the sandbox (--no-sandbox),
// with the new headless mode, without a GPU, and with a fresh profile in a temporary directory,
// so no cookie survives from one test to the next. It never fakes the browser: a test that needs
// it and finds no chromium fails with the install command.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// T is what the harness needs of a test: *testing.T has it. ArtifactDir is where the
// screenshots go (kept with go test -artifacts -outputdir DIR).
type T interface {
	testutil.T
	Name() string
	ArtifactDir() string
}

// ArtifactsEnv, when set, names a directory that keeps every test's screenshots (in a
// subdirectory named after the test) instead of the test's artifact directory.
const ArtifactsEnv = "PORTCULLIS_ARTIFACTS"

// DefaultTimeout bounds each action (a navigation with its redirects, a click and the page it
// loads, a query), unless Browser.Timeout says otherwise.
const DefaultTimeout = 30 * time.Second

// Binary finds chromium: $CHROMIUM_BIN, then chromium or chromium-browser on PATH.
func Binary(t testutil.T) string {
	t.Helper()
	if b := os.Getenv("CHROMIUM_BIN"); b != "" {
		return b
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found (run scripts/install-tools.sh debian, or apt-get install chromium): " +
		"the page suites need a real browser")
	return ""
}

// Browser is one headless chromium with one tab, as a test (or subtest) sees it: its
// methods fail that test. For gives another test's view of the same browser.
type Browser struct {
	*browser
	t T
}

// browser is what the views share.
type browser struct {
	// Timeout bounds each action; DefaultTimeout unless changed.
	Timeout time.Duration

	ctx    context.Context // the tab's chromedp context, its browser already started
	cancel context.CancelFunc
	log    string

	mu    sync.Mutex
	shots map[string]int // per artifact directory: screenshots taken so far (their prefix)
	marks int            // elements marked for a click or a fill so far
	// console holds what the pages wrote to the console and the browser's log entries
	// (a Content-Security-Policy violation shows up here), for the failure report.
	console []string
}

// Start runs chromium for the test; it is stopped when the test ends. When the test failed by
// then, the last page is kept as a screenshot named "failed" and its text and the browser's
// console are logged.
func Start(t T) *Browser {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(dir, "profile")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,               // root in a container: the sandbox cannot start
		chromedp.Flag("headless", "new"), // the full browser, not the old headless shell
		chromedp.DisableGPU,              // no GPU in CI
		chromedp.UserDataDir(profile),    // a fresh profile: no cookies from another test
		chromedp.WindowSize(1024, 768),   // a laptop's page; screenshots take the full height
		chromedp.Flag("lang", "en-US"),   // the pages' language does not follow the machine
		chromedp.Flag("no-proxy-server", true),
		chromedp.CombinedOutput(logFile),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &Browser{browser: &browser{Timeout: DefaultTimeout, log: logPath, shots: map[string]int{}}, t: t}
	ctx, cancel := chromedp.NewContext(actx)
	b.ctx = ctx
	b.cancel = func() {
		cancel()
		acancel()
		_ = logFile.Close()
	}
	// The first Run starts the browser and binds it to ctx: it must have no deadline.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		// The browser's log carries what the console shows of a page beside its own calls: a
		// script or style the Content-Security-Policy blocked, a resource that failed.
		if _, err := cdp.Call(ctx, tg, log.Enable, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{})
		return err
	})); err != nil {
		b.cancel()
		out, _ := os.ReadFile(logPath)
		t.Fatalf("start chromium (%s): %v\n%s", bin, err, out)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			b.reportFailure(t)
		}
		b.cancel()
	})
	return b
}

// For is the same browser (its tab, cookies and page) for t, a subtest: a failed action
// fails t, which the testing package requires of a subtest's goroutine.
func (b *Browser) For(t T) *Browser { return &Browser{browser: b.browser, t: t} }

// Console is what the pages wrote to the console and what the browser logged for them so
// far (a blocked inline script, a CSP violation, a failed resource), one line each.
func (b *browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// reportFailure logs the page the browser is on and keeps its screenshot, for t.
func (b *browser) reportFailure(t T) {
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		t.Logf("browser: the last page was %s", loc)
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err == nil {
		t.Logf("browser: its text:\n%s", text)
	}
	if png, err := chromedp.Run(ctx, fullPage()); err == nil {
		b.save(t, "failed", png)
	}
	if c := b.Console(); len(c) > 0 {
		t.Logf("browser console:\n%s", strings.Join(c, "\n"))
	}
}

// run runs an action within the browser's timeout.
func run[R any](b *Browser, what string, a chromedp.Action[R]) R {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// Page is the answer of a navigation: the document the browser ended on, after redirects.
type Page struct {
	URL    string
	Status int
}

// Navigate loads url (following redirects) and returns where the browser ended and with which
// status. An error status is a page like another: the test decides.
func (b *Browser) Navigate(url string) Page {
	b.t.Helper()
	resp := run(b, "navigate to "+url, chromedp.NavigateResponse(url))
	return b.page(resp)
}

func (b *Browser) page(resp *network.Response) Page {
	b.t.Helper()
	loc := run(b, "read the location", chromedp.Location())
	p := Page{URL: loc}
	if resp != nil {
		p.Status = int(resp.Status)
	}
	return p
}

// URL is the current page's address.
func (b *Browser) URL() string {
	b.t.Helper()
	return run(b, "read the location", chromedp.Location())
}

// Fill types value into the form field labelled label (its <label>'s text, or its
// aria-label, placeholder or name), replacing what it held. A <select> gets the option whose
// value or text is value.
func (b *Browser) Fill(label, value string) {
	b.t.Helper()
	sel := b.mark("field", findFieldJS, label)
	b.fillMarked(label, sel, value)
}

// FillCSS is Fill for the field that the CSS selector finds.
func (b *Browser) FillCSS(selector, value string) {
	b.t.Helper()
	run(b, "find "+selector, chromedp.WaitVisible(chromedp.CSS(selector)))
	b.fillMarked(selector, chromedp.CSS(selector), value)
}

func (b *Browser) fillMarked(what string, sel chromedp.CSS, value string) {
	b.t.Helper()
	tag := run(b, "read the field "+what, chromedp.QueryAfter(sel,
		func(ctx context.Context, tg *chromedp.Target, nodes []*chromedp.Node) (string, error) {
			return strings.ToLower(nodes[0].NodeName), nil
		}, chromedp.NodeVisible))
	if tag == "select" {
		ok := run(b, "choose "+value+" in "+what, chromedp.Evaluate[bool](fmt.Sprintf(`(() => {
			const s = document.querySelector(%s), want = %s;
			for (const o of s.options) {
				if (o.value === want || o.text.trim() === want) { s.value = o.value; s.dispatchEvent(new Event('change', {bubbles: true})); return true; }
			}
			return false;
		})()`, jsString(string(sel)), jsString(value))))
		if !ok {
			b.t.Fatalf("browser: the list %s has no option %q", what, value)
		}
		return
	}
	run(b, "fill "+what, chromedp.Steps(
		chromedp.Clear(sel),
		chromedp.SendKeys(sel, value),
	))
	if got := run(b, "read back "+what, chromedp.Value(sel)); got != value {
		b.t.Fatalf("browser: the field %s holds %q after typing %q", what, got, value)
	}
}

// ClickButton clicks the button (or submit input, or link) whose text is text (or, when no
// label is exactly that, contains it), and waits for the page it loads. Several that say the
// same fail the test: use ClickButtonNear.
func (b *Browser) ClickButton(text string) Page {
	b.t.Helper()
	return b.clickMarked("the button "+text, b.mark("button", findButtonJS, text, ""))
}

// ClickButtonNear clicks the button that says text in the smallest part of the page (a table
// row, a list item, a form) that also holds near: the "Revoke" of one session among many.
func (b *Browser) ClickButtonNear(near, text string) Page {
	b.t.Helper()
	return b.clickMarked(fmt.Sprintf("the button %s near %q", text, near), b.mark("button", findButtonJS, text, near))
}

// Click clicks what the CSS selector finds first and waits for the page it loads.
func (b *Browser) Click(selector string) Page {
	b.t.Helper()
	return b.clickMarked(selector, chromedp.CSS(selector))
}

func (b *Browser) clickMarked(what string, sel chromedp.CSS) Page {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.Timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(sel, chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("browser: click %s (on %s): %v", what, b.URL(), err)
	}
	return b.page(resp)
}

// mark runs a finder script that returns the index of the one element it chose among
// document.querySelectorAll('*'), or a string saying why none, and returns a CSS selector
// for that element (it gets a data attribute, the page is not otherwise changed).
func (b *Browser) mark(kind, finder string, args ...string) chromedp.CSS {
	b.t.Helper()
	jsArgs := make([]string, len(args))
	for i, a := range args {
		jsArgs[i] = jsString(a)
	}
	b.mu.Lock()
	b.marks++
	id := fmt.Sprintf("%s-%d", kind, b.marks)
	b.mu.Unlock()
	res := run(b, "find the "+kind+" "+strings.Join(args, " "), chromedp.Evaluate[json.RawMessage](
		fmt.Sprintf(`(%s)(%s, %s)`, finder, jsString(id), strings.Join(jsArgs, ", "))))
	var errText string
	if json.Unmarshal(res, &errText) == nil && errText != "" {
		b.t.Fatalf("browser: on %s: %s", b.URL(), errText)
	}
	return chromedp.CSS(fmt.Sprintf(`[data-browsertest=%q]`, id))
}

// findButtonJS returns "" after marking the button, or why it found none or several.
const findButtonJS = `function(id, want, near) {
	const norm = s => (s || '').replace(/\s+/g, ' ').trim();
	const label = e => norm(e.tagName === 'INPUT' ? e.value : e.innerText) || norm(e.getAttribute('aria-label'));
	const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
	const all = [...document.querySelectorAll('button, input[type=submit], input[type=button], a[href]')].filter(visible);
	let found = all.filter(e => label(e) === want);
	if (found.length === 0) found = all.filter(e => label(e).includes(want));
	if (near) {
		// The depth of the closest ancestor that also holds near: the button in near's own
		// row is deeper than the others, whose closest such ancestor is the whole table.
		const depth = e => {
			let d = 0; for (let p = e; p; p = p.parentElement) d++;
			for (let p = e.parentElement; p; p = p.parentElement, d--) {
				if (norm(p.innerText).includes(near)) return d;
			}
			return -1;
		};
		const best = Math.max(-1, ...found.map(depth));
		found = best < 0 ? [] : found.filter(e => depth(e) === best);
	}
	const labels = all.map(label).filter(l => l).map(l => JSON.stringify(l)).join(', ');
	if (found.length === 0) return 'no button, link or submit says ' + JSON.stringify(want) + (near ? ' near ' + JSON.stringify(near) : '') + ' (there are: ' + labels + ')';
	if (found.length > 1) return found.length + ' buttons say ' + JSON.stringify(want) + (near ? ' near ' + JSON.stringify(near) : '') + ': ' + found.map(label).join(', ');
	found[0].setAttribute('data-browsertest', id);
	return '';
}`

// findFieldJS returns "" after marking the form field labelled want, or why it found none.
const findFieldJS = `function(id, want) {
	const norm = s => (s || '').replace(/\s+/g, ' ').trim();
	const fields = [...document.querySelectorAll('input:not([type=hidden]), select, textarea')];
	let found = [];
	for (const l of document.querySelectorAll('label')) {
		const text = norm(l.innerText);
		if (text !== want && !text.startsWith(want)) continue;
		const f = l.control || (l.htmlFor && document.getElementById(l.htmlFor));
		if (f) found.push(f);
	}
	if (found.length === 0) {
		found = fields.filter(f => [f.getAttribute('aria-label'), f.placeholder, f.name, f.id].some(v => norm(v) === want));
	}
	if (found.length === 0) return 'no form field is labelled ' + JSON.stringify(want) + ' (the labels: ' +
		[...document.querySelectorAll('label')].map(l => JSON.stringify(norm(l.innerText))).join(', ') + '; the fields: ' +
		fields.map(f => f.name || f.id).join(', ') + ')';
	if (found.length > 1) return found.length + ' fields are labelled ' + JSON.stringify(want);
	found[0].setAttribute('data-browsertest', id);
	return '';
}`

// Text is the visible text of what the CSS selector finds first.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	return run(b, "read "+selector, chromedp.Text(chromedp.CSS(selector), chromedp.NodeVisible))
}

// PageText is the visible text of the whole page.
func (b *Browser) PageText() string {
	b.t.Helper()
	return run(b, "read the page", chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
}

// Title is the document's title.
func (b *Browser) Title() string {
	b.t.Helper()
	return run(b, "read the title", chromedp.Title())
}

// Value is the value of the form field the CSS selector finds first.
func (b *Browser) Value(selector string) string {
	b.t.Helper()
	return run(b, "read "+selector, chromedp.Value(chromedp.CSS(selector)))
}

// Count is how many elements the CSS selector finds now (no waiting).
func (b *Browser) Count(selector string) int {
	b.t.Helper()
	return run(b, "count "+selector, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%s).length`, jsString(selector))))
}

// MustSee fails the test unless the page's text holds each of wants; it returns the text.
func (b *Browser) MustSee(wants ...string) string {
	b.t.Helper()
	text := b.PageText()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			b.t.Fatalf("browser: the page %s does not say %q; it says:\n%s", b.URL(), w, text)
		}
	}
	return text
}

// Find returns the first match of re in the page's text, or fails the test.
func (b *Browser) Find(re *regexp.Regexp) string {
	b.t.Helper()
	text := b.PageText()
	m := re.FindString(text)
	if m == "" {
		b.t.Fatalf("browser: the page %s has nothing matching %s; it says:\n%s", b.URL(), re, text)
	}
	return m
}

// Cookies are the browser's cookies for url, by name.
func (b *Browser) Cookies(url string) map[string]*network.Cookie {
	b.t.Helper()
	res := run(b, "read the cookies", chromedp.Action[*network.GetCookiesResult](
		func(ctx context.Context, tg *chromedp.Target) (*network.GetCookiesResult, error) {
			r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{url}})
			return &r, err
		}))
	m := map[string]*network.Cookie{}
	for _, c := range res.Cookies {
		m[c.Name] = c
	}
	return m
}

// Screenshot saves a full-page PNG of what the browser shows now as NN-name.png in t's
// artifact directory (or under $PORTCULLIS_ARTIFACTS), NN counting the test's screenshots so
// they sort in the order taken, and returns its path. t is the test or subtest the page
// belongs to.
func (b *Browser) Screenshot(t T, name string) string {
	t.Helper()
	png := run(b, "screenshot "+name, fullPage())
	return b.save(t, name, png)
}

func (b *browser) save(t T, name string, png []byte) string {
	t.Helper()
	dir := artifactDir(t)
	b.mu.Lock()
	n := b.shots[dir]
	b.shots[dir]++
	b.mu.Unlock()
	if n == 0 {
		t.Logf("browser: screenshots in %s", dir)
	}
	path := filepath.Join(dir, fmt.Sprintf("%02d-%s.png", n, fileName(name)))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("browser: save the screenshot: %v", err)
	}
	return path
}

var (
	artifactMu   sync.Mutex
	artifactDirs = map[string]string{}
)

// artifactDir is $PORTCULLIS_ARTIFACTS/<test name> when that is set, else t.ArtifactDir().
func artifactDir(t T) string {
	t.Helper()
	root := os.Getenv(ArtifactsEnv)
	if root == "" {
		return t.ArtifactDir()
	}
	artifactMu.Lock()
	defer artifactMu.Unlock()
	if d, ok := artifactDirs[t.Name()]; ok {
		return d
	}
	d := filepath.Join(root, fileName(t.Name()))
	// A rerun replaces the last run's screenshots rather than mixing with them.
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	artifactDirs[t.Name()] = d
	return d
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func fileName(s string) string { return strings.Trim(unsafeName.ReplaceAllString(s, "-"), "-") }

// fullPage captures the whole document, not only the window: the page is measured and
// captured beyond the viewport.
func fullPage() chromedp.Action[[]byte] {
	return func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		m, err := cdp.Call(ctx, tg, page.GetLayoutMetrics, cdp.Empty{})
		if err != nil {
			return nil, err
		}
		if m.CSSContentSize == nil {
			return nil, errors.New("the browser reported no content size")
		}
		w, h := math.Ceil(m.CSSContentSize.Width), math.Ceil(m.CSSContentSize.Height)
		if m.CSSLayoutViewport != nil {
			w = max(w, float64(m.CSSLayoutViewport.ClientWidth))
		}
		r, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format:                page.CaptureScreenshotFormatPng,
			CaptureBeyondViewport: ptr(true),
			FromSurface:           ptr(true),
			Clip:                  &page.Viewport{X: 0, Y: 0, Width: w, Height: h, Scale: 1},
		})
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	}
}

func ptr[V any](v V) *V { return &v }

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
