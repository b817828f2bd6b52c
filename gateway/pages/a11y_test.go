package pages_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPageStructure parses every kind of page and checks what keyboard and screen reader users
// rely on, and what the CSP would break: a language, a title, one h1, a main landmark, a label
// for every control, submit buttons, no script, no inline style, and a CSRF field in every form.
func TestPageStructure(t *testing.T) {
	t.Parallel()
	pagesToCheck := []struct {
		name string
		do   func(h *harness) *httptest.ResponseRecorder
	}{
		{"signin", func(h *harness) *httptest.ResponseRecorder { return h.get("/signin", "") }},
		{"signin error", func(h *harness) *httptest.ResponseRecorder {
			r := postReq("/signin/password", url.Values{"username": {"x"}, "password": {"y"}, "csrf": {"c"}})
			r.AddCookie(&http.Cookie{Name: "__Host-pc_csrf", Value: "c"})
			return h.do(r)
		}},
		{"account", func(h *harness) *httptest.ResponseRecorder { return h.get("/", aliceToken) }},
		{"account with form error", func(h *harness) *httptest.ResponseRecorder {
			return h.post("/pats", aliceToken, url.Values{"name": {"a"}, "expires": {"999"}})
		}},
		{"device", func(h *harness) *httptest.ResponseRecorder { return h.get("/device", aliceToken) }},
		{"device error", func(h *harness) *httptest.ResponseRecorder {
			return h.post("/device", aliceToken, url.Values{"user_code": {"NOPE"}})
		}},
		{"device confirm", func(h *harness) *httptest.ResponseRecorder {
			return h.post("/device", aliceToken, url.Values{"user_code": {goodUserCode}})
		}},
		{"device done", func(h *harness) *httptest.ResponseRecorder {
			return h.post("/device/decide", aliceToken, url.Values{"user_code": {goodUserCode}, "decision": {"approve"}})
		}},
		{"pat created", func(h *harness) *httptest.ResponseRecorder {
			return h.post("/pats", aliceToken, url.Values{"name": {"a"}, "expires": {"7"}})
		}},
		{"csrf refused", func(h *harness) *httptest.ResponseRecorder {
			return h.post("/pats", aliceToken, url.Values{"csrf": {"x"}})
		}},
		{"unavailable", func(h *harness) *httptest.ResponseRecorder {
			h.fake.errs["GetAccount"] = status.Error(codes.Unavailable, "down")
			return h.get("/", aliceToken)
		}},
		{"method not allowed", func(h *harness) *httptest.ResponseRecorder {
			return h.do(httptest.NewRequest(http.MethodDelete, publicURL+"/pats", nil))
		}},
	}
	for _, pc := range pagesToCheck {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			rec := pc.do(newHarness(t))
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Fatalf("Content-Type = %q (status %d)", ct, rec.Code)
			}
			doc, err := html.Parse(strings.NewReader(rec.Body.String()))
			if err != nil {
				t.Fatal(err)
			}
			checkStructure(t, doc)
		})
	}
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func checkStructure(t *testing.T, doc *html.Node) {
	t.Helper()
	count := map[string]int{}
	labels := map[string]bool{}
	var controls []string
	var lastHeading int
	forms := map[*html.Node]bool{} // form → has a csrf field
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		count[n.Data]++
		for _, a := range n.Attr {
			if a.Key == "style" || strings.HasPrefix(a.Key, "on") {
				t.Errorf("<%s %s=…>: inline style and handlers break under the CSP", n.Data, a.Key)
			}
			if (a.Key == "href" || a.Key == "action") && strings.HasPrefix(strings.ToLower(a.Val), "javascript:") {
				t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
			}
		}
		switch n.Data {
		case "html":
			if v, _ := attr(n, "lang"); v != "en" {
				t.Errorf("<html lang=%q>", v)
			}
		case "title":
			if n.FirstChild == nil || strings.TrimSpace(n.FirstChild.Data) == "" {
				t.Error("empty <title>")
			}
		case "meta":
			if v, _ := attr(n, "name"); v == "viewport" {
				count["viewport"]++
			}
		case "label":
			if v, ok := attr(n, "for"); ok {
				labels[v] = true
			}
		case "input", "select", "textarea":
			typ, _ := attr(n, "type")
			if typ == "hidden" {
				continue
			}
			id, _ := attr(n, "id")
			if id == "" {
				t.Errorf("<%s> without an id to label", n.Data)
			}
			controls = append(controls, id)
		case "button":
			if v, _ := attr(n, "type"); v != "submit" {
				t.Errorf("<button type=%q>", v)
			}
			if strings.TrimSpace(textOf(n)) == "" {
				t.Error("a button without text")
			}
		case "form":
			forms[n] = false
			if v, _ := attr(n, "method"); v != "post" {
				t.Errorf("<form method=%q>", v)
			}
		case "h1", "h2", "h3", "h4":
			level := int(n.Data[1] - '0')
			if level > lastHeading+1 {
				t.Errorf("heading skips from h%d to h%d", lastHeading, level)
			}
			lastHeading = level
		}
	}
	for f := range forms {
		for n := range f.Descendants() {
			if name, _ := attr(n, "name"); n.Type == html.ElementNode && n.Data == "input" && name == "csrf" {
				if v, _ := attr(n, "value"); v != "" {
					forms[f] = true
				}
			}
		}
		if !forms[f] {
			action, _ := attr(f, "action")
			t.Errorf("form %s without a csrf field", action)
		}
	}
	for _, id := range controls {
		if !labels[id] {
			t.Errorf("control %q has no <label for>", id)
		}
	}
	for el, want := range map[string]int{"h1": 1, "main": 1, "title": 1, "header": 1, "footer": 1, "viewport": 1, "script": 0, "style": 0, "iframe": 0} {
		if count[el] != want {
			t.Errorf("%d <%s>, want %d", count[el], el, want)
		}
	}
}

func textOf(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}
