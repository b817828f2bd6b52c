package regclient

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestCheckRealm(t *testing.T) {
	t.Parallel()
	ch := func(registry, realm string) Challenge {
		return Challenge{Scheme: "bearer", Params: map[string]string{"realm": realm}, Registry: registry}
	}
	cases := []struct {
		name string
		ch   Challenge
		bad  bool
	}{
		{"https registry, https realm", ch("https://reg", "https://auth/token"), false},
		{"https registry, http realm", ch("https://reg", "http://127.0.0.1:5399/token"), true},
		{"HTTP in capitals", ch("https://reg", "HTTP://auth/token"), true},
		{"http registry, http realm", ch("http://reg", "http://auth/token"), false},
		{"unknown registry, http realm: held to https", ch("", "http://auth/token"), true},
		{"unknown registry, https realm", ch("", "https://auth/token"), false},
	}
	for _, tc := range cases {
		err := CheckRealm(tc.ch)
		if got := errors.Is(err, ErrInsecureRealm); got != tc.bad {
			t.Errorf("%s: CheckRealm = %v, want refused %v", tc.name, err, tc.bad)
		}
	}
}

// TestFetchTokenInsecureRealm: FetchToken itself refuses the http realm of an https registry
// before sending anything; Client.InsecureRealm lets it through.
func TestFetchTokenInsecureRealm(t *testing.T) {
	t.Parallel()
	f := newFakeRealm(t, &fakeRealm{})
	ch := f.bearer()
	ch.Registry = "https://registry.example"
	req := Request{Credentials: Credentials{Username: "alice", Password: "secret"}}
	if _, err := newClient().FetchToken(context.Background(), ch, req); !errors.Is(err, ErrInsecureRealm) {
		t.Fatalf("FetchToken = %v, want ErrInsecureRealm", err)
	}
	if n := len(f.requests()); n != 0 {
		t.Fatalf("the realm got %d request(s)", n)
	}
	c := newClient()
	c.InsecureRealm = true
	if _, err := c.FetchToken(context.Background(), ch, req); err != nil {
		t.Fatalf("with InsecureRealm: %v", err)
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to string
		ok       bool
	}{
		{"https://a/token", "https://a/other", true},
		{"https://a/token", "https://A:443/other", true},
		{"https://a/token", "http://a/token", false},
		{"https://a/token", "https://b/token", false},
		{"https://a/token", "https://a:8443/token", false},
		{"https://a/token", "https://a.evil/token", false},
		{"http://a/token", "https://a:80/token", true},
		{"http://a/token", "http://b/token", false},
	}
	for _, tc := range cases {
		from, _ := url.Parse(tc.from)
		to, _ := url.Parse(tc.to)
		err := SameOrigin(from, to)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnsafeRedirect)) {
			t.Errorf("SameOrigin(%s, %s) = %v, want ok %v", tc.from, tc.to, err, tc.ok)
		}
	}
}

// TestKeepCredentials: the copy refuses an unsafe redirect, keeps the caller's own policy
// after its own, and leaves the caller's client as it was.
func TestKeepCredentials(t *testing.T) {
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect target got a request (Authorization %q)", r.Header.Get("Authorization"))
	}))
	defer other.Close()
	same := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/x", http.StatusTemporaryRedirect)
		case "/here":
			http.Redirect(w, r, "/done", http.StatusTemporaryRedirect)
		}
	}))
	defer same.Close()
	base := newClient().HTTP
	hc := KeepCredentials(base)
	if base.CheckRedirect != nil {
		t.Fatal("KeepCredentials changed the caller's client")
	}
	req, _ := http.NewRequest(http.MethodGet, same.URL+"/away", nil)
	req.SetBasicAuth("alice", "secret")
	if _, err := hc.Do(req); !errors.Is(err, ErrUnsafeRedirect) {
		t.Errorf("redirect to another port: %v, want ErrUnsafeRedirect", err)
	}
	resp, err := hc.Get(same.URL + "/here")
	if err != nil || resp.Request.URL.Path != "/done" {
		t.Errorf("same-origin redirect: %v", err)
	} else {
		resp.Body.Close()
	}
	mine := errors.New("mine")
	base.CheckRedirect = func(*http.Request, []*http.Request) error { return mine }
	if _, err := KeepCredentials(base).Get(same.URL + "/here"); !errors.Is(err, mine) {
		t.Errorf("the caller's own redirect policy did not run: %v", err)
	}
}
