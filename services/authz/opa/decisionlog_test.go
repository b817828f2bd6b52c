package opa

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

type logged struct {
	DecisionID string `json:"decision_id"`
	Revision   string `json:"revision"`
	Path       string `json:"path"`
	Input      struct {
		Identity struct {
			Subject string `json:"subject"`
		} `json:"identity"`
		Scopes []struct {
			Name string `json:"name"`
		} `json:"scopes"`
	} `json:"input"`
	Result struct {
		Granted []string `json:"granted"`
	} `json:"result"`
	Custom struct {
		Denied []authz.Reason `json:"denied"`
	} `json:"custom"`
}

func teamsRequest(user string, scopes ...string) authz.Request {
	ss, _ := scope.ParseList(scopes)
	return authz.Request{Identity: identity.Identity{Subject: user, Groups: []string{"payments-devs"}}, Service: "r", Requested: ss, RemoteAddr: "192.0.2.9"}
}

func TestDecisionLogFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "decisions.jsonl")
	on := true
	a, err := Config{Dir: "../../../deploy/policies/teams", DecisionLogs: DecisionLogConfig{Console: &on, File: file}}.Open(context.Background(), authz.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := a.(*engine)
	d1, err := e.Authorize(context.Background(), teamsRequest("ann", "repository:payments/api:pull,delete"))
	if err != nil {
		t.Fatal(err)
	}
	d2, err := e.Authorize(context.Background(), teamsRequest("bob", "repository:payments/api:pull"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []logged
	raw := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		raw += sc.Text() + "\n"
		var l logged
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not a JSON line: %v: %s", err, sc.Text())
		}
		got = append(got, l)
	}
	if len(got) != 2 {
		t.Fatalf("%d entries, want 2:\n%s", len(got), raw)
	}
	first := got[0]
	if first.DecisionID != d1.DecisionID || first.Input.Identity.Subject != "ann" || first.Path != "portcullis/authz/allowed" ||
		first.Revision == "" || !slices.Equal(first.Result.Granted, []string{"repository:payments/api:pull"}) {
		t.Errorf("first entry %+v (decision %s)", first, d1.DecisionID)
	}
	if len(first.Custom.Denied) != 1 || first.Custom.Denied[0].Action != "delete" || !strings.Contains(first.Custom.Denied[0].Reason, "do not include delete") {
		t.Errorf("first entry's reasons %+v", first.Custom.Denied)
	}
	if got[1].DecisionID != d2.DecisionID || len(got[1].Custom.Denied) != 0 {
		t.Errorf("second entry %+v", got[1])
	}
}

// TestDecisionLogService: OPA's plugin uploads every decision to the log service, and with
// the console on as well, the console (here its file) has every one of them too.
func TestDecisionLogService(t *testing.T) {
	t.Parallel()
	for _, console := range []bool{false, true} {
		t.Run(fmt.Sprintf("console=%v", console), func(t *testing.T) {
			t.Parallel()
			testDecisionLogService(t, console)
		})
	}
}

func testDecisionLogService(t *testing.T, console bool) {
	var mu sync.Mutex
	var ids []string
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/logs" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var batch []logged
		if err := json.NewDecoder(zr).Decode(&batch); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		auth = append(auth, r.Header.Get("Authorization"))
		for _, l := range batch {
			ids = append(ids, l.DecisionID)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := ""
	if console {
		file = filepath.Join(dir, "decisions.jsonl")
	}
	cfg := Config{DecisionLogs: DecisionLogConfig{Console: &console, File: file, URL: srv.URL, BearerTokenFile: tokenFile,
		MinDelay: config.Duration(time.Second), MaxDelay: config.Duration(time.Second)}}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	a, err := cfg.Open(context.Background(), authz.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for range 3 {
		d, err := a.Authorize(context.Background(), teamsRequest("alice", "repository:alice/x:pull"))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, d.DecisionID)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(ids)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = a.(*engine).Close(context.Background())
	mu.Lock()
	defer mu.Unlock()
	for _, id := range want {
		if !slices.Contains(ids, id) {
			t.Errorf("decision %s never reached the log service (got %v)", id, ids)
		}
	}
	if len(auth) == 0 || auth[0] != "Bearer s3cret" {
		t.Errorf("Authorization %v", auth)
	}
	if !console {
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		var e logged
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not a JSON line: %v: %s", err, l)
		}
		lines = append(lines, e.DecisionID)
	}
	if !slices.Equal(lines, want) {
		t.Errorf("the file has %v, want %v", lines, want)
	}
}

func TestDecisionLogSettings(t *testing.T) {
	off := false
	errs := Config{DecisionLogs: DecisionLogConfig{Console: &off, File: "/x", URL: "ftp://h", BearerTokenFile: "/nonexistent"}}.Validate()
	all := ""
	for _, e := range errs {
		all += e.Error() + "\n"
	}
	for _, want := range []string{"needs console: true", "not an http(s) URL", "bearer_token_file"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors %q lack %q", all, want)
		}
	}
}
