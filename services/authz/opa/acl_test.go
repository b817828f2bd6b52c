package opa

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa/opatest"
)

const aclPolicyDir = "../../../deploy/policies/acl"

func aclEngine(t testing.TB, data map[string]any, prep func(map[string]any) (map[string]any, *aclMatcher, error)) *engine {
	t.Helper()
	src, errs := Config{Dir: aclPolicyDir}.load()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if data != nil {
		src.data = data
	}
	p, errs := compileData(context.Background(), src, slog.New(slog.DiscardHandler), prep)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	e := newEngine(Config{Dir: aclPolicyDir}, authz.Deps{})
	e.cur.Store(p)
	return e
}

func noIndex(d map[string]any) (map[string]any, *aclMatcher, error) { return d, nil, nil }

// The shipped example ACL (deploy/policies/acl/data.yaml) as the engine loads it, indexed.
func TestACLExampleData(t *testing.T) {
	e := aclEngine(t, nil, prepareACL)
	id := func(sub string, labels map[string][]string) identity.Identity {
		return identity.Identity{Subject: sub, Labels: labels}
	}
	cases := []struct {
		name   string
		id     identity.Identity
		ip     string
		scopes []string
		want   []string
	}{
		{"admin everything, the catalog too", id("admin", nil), "", []string{"repository:x/y:pull,push,delete", "registry:catalog:*"},
			[]string{"repository:x/y:pull,push,delete", "registry:catalog:*"}},
		{"own namespace", id("alice", nil), "", []string{"repository:alice/app:pull,push", "repository:bob/app:pull"}, []string{"repository:alice/app:pull,push"}},
		{"ci robot by capture group", id("ci-payments", nil), "", []string{"repository:payments/api:pull,push,delete"}, []string{"repository:payments/api:pull,push"}},
		{"team label", id("carol", map[string][]string{"team": {"payments"}}), "", []string{"repository:payments/api:push"}, []string{"repository:payments/api:push"}},
		{"library pull only", id("alice", nil), "", []string{"repository:library/nginx:pull,push"}, []string{"repository:library/nginx:pull"}},
		{"mirror from the build network", id("anyone", nil), "10.20.3.4", []string{"repository:mirror/x:push"}, []string{"repository:mirror/x:push"}},
		{"mirror from elsewhere", id("anyone", nil), "10.21.3.4", []string{"repository:mirror/x:push"}, nil},
		{"anonymous public pull", identity.Identity{Anonymous: true}, "", []string{"repository:public/x:pull,push", "repository:library/x:pull"}, []string{"repository:public/x:pull"}},
		{"no catalog for users", id("alice", nil), "", []string{"registry:catalog:*"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scopes, err := scope.ParseList(tc.scopes)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Authorize(context.Background(), authz.Request{Identity: tc.id, Service: "registry.example.com", Requested: scopes, RemoteAddr: tc.ip})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range d.Granted {
				got = append(got, s.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("granted %v, want %v", got, tc.want)
			}
		})
	}
}

// randomACL builds n rules from the shapes real ACLs have: per-user and per-team rules with
// literal accounts and namespaces, placeholder and regexp rules, IP rules, label rules, denies.
func randomACL(r *rand.Rand, n int) []any {
	users := []string{"alice", "bob", "carol", "ci-pay", "ci-web", ""}
	teams := []string{"pay", "web", "ops", "library", "public"}
	acts := [][]any{{"*"}, {"pull"}, {"pull", "push"}, {}, {"delete", "pull"}}
	rules := make([]any, 0, n)
	for i := range n {
		m := map[string]any{}
		switch r.IntN(11) {
		case 0:
			m["account"] = users[r.IntN(len(users))]
		case 1:
			m["account"], m["name"] = users[r.IntN(len(users))], teams[r.IntN(len(teams))]+"/*"
		case 2:
			m["account"], m["name"] = "/.+/", "${account}/*"
		case 3:
			m["account"], m["name"] = "/^ci-(.+)$/", "${account:1}/*"
		case 4:
			m["name"] = fmt.Sprintf("%s/app-%d*", teams[r.IntN(len(teams))], r.IntN(3))
		case 5:
			m["ip"] = []string{"10.0.0.0/8", "192.0.2.1", "::1"}[r.IntN(3)]
		case 6:
			m["labels"] = map[string]any{"team": teams[r.IntN(len(teams))]}
		case 7:
			m["name"], m["account"] = "${labels:team}/*", "/.+/"
		case 8:
			m["account"], m["type"] = users[r.IntN(len(users))], "registry"
		case 9:
			m["name"] = "${labels:team}/${labels:proj}-*"
		case 10:
			m["name"], m["labels"] = "/^${labels:team}\\/app-[0-9]$/", map[string]any{"proj": "app-?"}
		}
		rules = append(rules, map[string]any{"match": m, "actions": acts[r.IntN(len(acts))], "comment": fmt.Sprint("rule ", i)})
	}
	return rules
}

func randomRequest(r *rand.Rand) authz.Request {
	users := []string{"alice", "bob", "carol", "ci-pay", "ci-web", "dave"}
	teams := []string{"pay", "web", "ops", "library", "public", "alice", "bob"}
	req := authz.Request{Service: "registry.example.com", RemoteAddr: []string{"10.1.2.3", "192.0.2.1", "203.0.113.9", "::1"}[r.IntN(4)]}
	if r.IntN(5) == 0 {
		req.Identity = identity.Identity{Anonymous: true}
	} else {
		// Two labels of up to three values each: the placeholders' permutations. "*" and "."
		// are values a CI user can choose (an OIDC claim): quoted, they match only themselves.
		pick := func(from []string) []string {
			var vs []string
			for range 1 + r.IntN(3) {
				vs = append(vs, from[r.IntN(len(from))])
			}
			return vs
		}
		req.Identity = identity.Identity{Subject: users[r.IntN(len(users))], Labels: map[string][]string{
			"team": pick(append(teams, "*", "p.y")), "proj": pick([]string{"app", "app-1", "*", "app-?"})}}
	}
	for range 1 + r.IntN(5) {
		if r.IntN(10) == 0 {
			req.Requested = append(req.Requested, scope.Scope{Type: "registry", Name: "catalog", Actions: []string{"*"}})
			continue
		}
		name := fmt.Sprintf("%s/app-%d", teams[r.IntN(len(teams))], r.IntN(3))
		if r.IntN(4) == 0 {
			name += "/sub"
		}
		all := []string{"pull", "push", "delete"}
		r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		req.Requested = append(req.Requested, scope.Scope{Type: "repository", Name: name, Actions: all[:1+r.IntN(3)]})
	}
	return req
}

// Property: the index never changes a decision, and a decision never grants what was not
// requested.
func TestACLIndexEquivalence(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 12 {
		acl := randomACL(r, 5+r.IntN(60))
		indexed := aclEngine(t, map[string]any{"acl": acl}, prepareACL)
		plain := aclEngine(t, map[string]any{"acl": acl}, noIndex)
		for range 50 {
			req := randomRequest(r)
			a, err := indexed.Authorize(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := plain.Authorize(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Granted, b.Granted) {
				t.Fatalf("round %d: indexed %v, unindexed %v for %+v", round, a.Granted, b.Granted, req)
			}
			checkSubset(t, req, a.Granted)
		}
	}
}

func checkSubset(t *testing.T, req authz.Request, granted []scope.Scope) {
	t.Helper()
	// A request may name one resource twice: what it asks for there is the union.
	asked := map[string]map[string]bool{}
	for _, s := range req.Requested {
		k := s.Type + "(" + s.Class + "):" + s.Name
		if asked[k] == nil {
			asked[k] = map[string]bool{}
		}
		for _, a := range s.Actions {
			asked[k][a] = true
		}
	}
	for _, g := range granted {
		k := g.Type + "(" + g.Class + "):" + g.Name
		if asked[k] == nil {
			t.Fatalf("granted %s, which was not requested", g)
		}
		for _, a := range g.Actions {
			if !asked[k][a] {
				t.Fatalf("granted %s on %s, which was not requested", a, g.Name)
			}
		}
	}
}

// Property, for every shipped policy: granted ⊆ requested, and anonymous callers get
// nothing unless the policy's data says so (the acl example's public/*).
func TestShippedPoliciesProperties(t *testing.T) {
	entries, err := os.ReadDir("../../../deploy/policies")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join("../../../deploy/policies", e.Name())
		t.Run(e.Name(), func(t *testing.T) {
			a, err := Config{Dir: dir}.Open(context.Background(), authz.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			defer a.(*engine).Close(context.Background())
			r := rand.New(rand.NewPCG(3, 4))
			for range 500 {
				req := randomRequest(r)
				d, err := a.Authorize(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				checkSubset(t, req, d.Granted)
				if req.Identity.Anonymous {
					for _, g := range d.Granted {
						if !(e.Name() == "acl" && strings.HasPrefix(g.Name, "public/") && reflect.DeepEqual(g.Actions, []string{"pull"})) {
							t.Fatalf("anonymous granted %s by %s", g, e.Name())
						}
					}
				}
			}
		})
		ran++
	}
	if ran < 2 {
		t.Fatalf("%d shipped policies found", ran)
	}
}

func TestACLDataRejected(t *testing.T) {
	cases := []struct {
		name string
		acl  any
		want string
	}{
		{"not a list", map[string]any{}, `"acl" must be a list`},
		{"bad regexp", []any{map[string]any{"match": map[string]any{"account": "/(/"}, "actions": []any{}}}, `acl[0]: match.account: invalid regexp`},
		{"bad ip", []any{map[string]any{"match": map[string]any{}, "actions": []any{}}, map[string]any{"match": map[string]any{"ip": "10.0.0.0/33"}, "actions": []any{}}}, `acl[1]: match.ip "10.0.0.0/33"`},
		{"no actions", []any{map[string]any{"match": map[string]any{}}}, `"actions" must be a list`},
		{"typo", []any{map[string]any{"match": map[string]any{"acount": "x"}, "actions": []any{}}}, `unknown field "acount"`},
		{"rule typo", []any{map[string]any{"match": map[string]any{}, "action": []any{}}}, `unknown key "action"`},
		{"bad label pattern", []any{map[string]any{"match": map[string]any{"labels": map[string]any{"g": "/[/"}}, "actions": []any{}}}, `match.labels.g: invalid regexp`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := prepareACL(map[string]any{"acl": tc.acl})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to mention %s", err, tc.want)
			}
		})
	}
	if _, _, err := prepareACL(map[string]any{"acl": []any{}, "acl_index": map[string]any{}}); err == nil {
		t.Error("a hand-written acl_index was accepted")
	}
}

// BenchmarkACL: a 5-scope decision against ACLs of 10, 1,000 and 10,000 rules (make bench
// prints the same through the authz service).
func BenchmarkACL(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e := aclEngine(b, map[string]any{"acl": opatest.OrgACL(n)}, prepareACL)
			reqs := opatest.OrgRequests(n, 64)
			b.ResetTimer()
			for i := range b.N {
				if _, err := e.Authorize(context.Background(), reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestACLPlaceholderValuesQuoted: every value substituted into a pattern is regex-quoted,
// in the compiled matcher and in the policy's Rego alike. A label may come from an OIDC
// claim a CI user controls: a workflow named "*" must not turn "${labels:workflow}/*" into
// "*/*", nor ".+" a regexp into one matching everything; the capture group of a caller's
// own name neither.
func TestACLPlaceholderValuesQuoted(t *testing.T) {
	acl := []any{
		map[string]any{"match": map[string]any{"name": "${labels:workflow}/*"}, "actions": []any{"pull"}, "comment": "glob"},
		map[string]any{"match": map[string]any{"name": "/^${labels:team}\\/x$/"}, "actions": []any{"pull"}, "comment": "regexp"},
		map[string]any{"match": map[string]any{"name": "${labels:team}-${labels:workflow}/*"}, "actions": []any{"pull"}, "comment": "two labels"},
		map[string]any{"match": map[string]any{"account": "/^ci-(.+)$/", "name": "${account:1}/*"}, "actions": []any{"pull"}, "comment": "capture group"},
		map[string]any{"match": map[string]any{"labels": map[string]any{"team": "${account}"}}, "actions": []any{"pull"}, "comment": "label pattern"},
	}
	for _, engine := range []struct {
		name string
		prep func(map[string]any) (map[string]any, *aclMatcher, error)
	}{{"compiled", prepareACL}, {"rego", noIndex}} {
		e := aclEngine(t, map[string]any{"acl": acl}, engine.prep)
		for _, tc := range []struct {
			name   string
			id     identity.Identity
			scopes []string
			want   []string
		}{
			{"label value *", identity.Identity{Subject: "eve", Labels: map[string][]string{"workflow": {"*"}}}, []string{"repository:pay/app:pull"}, nil},
			{"label value .+ in a regexp", identity.Identity{Subject: "eve", Labels: map[string][]string{"team": {".+"}}}, []string{"repository:pay/x:pull"}, nil},
			{"two labels, one of them *", identity.Identity{Subject: "eve", Labels: map[string][]string{"team": {"pay", "*"}, "workflow": {"*", "web"}}},
				[]string{"repository:pay-app/x:pull", "repository:ops-web/x:pull", "repository:pay-web/x:pull"}, []string{"repository:pay-web/x:pull"}},
			{"capture group *", identity.Identity{Subject: "ci-*"}, []string{"repository:pay/app:pull"}, nil},
			{"account quoted in a label pattern", identity.Identity{Subject: "a.c", Labels: map[string][]string{"team": {"abc"}}}, []string{"repository:z:pull"}, nil},
			// Quoting keeps what the values say literally.
			{"label value matches itself", identity.Identity{Subject: "eve", Labels: map[string][]string{"workflow": {"nightly", "release"}}}, []string{"repository:release/app:pull"}, []string{"repository:release/app:pull"}},
			{"dotted label value in a regexp", identity.Identity{Subject: "eve", Labels: map[string][]string{"team": {"p.y"}}}, []string{"repository:p.y/x:pull", "repository:pay/x:pull"}, []string{"repository:p.y/x:pull"}},
			{"capture group matches itself", identity.Identity{Subject: "ci-pay"}, []string{"repository:pay/app:pull"}, []string{"repository:pay/app:pull"}},
		} {
			t.Run(engine.name+"/"+tc.name, func(t *testing.T) {
				scopes, err := scope.ParseList(tc.scopes)
				if err != nil {
					t.Fatal(err)
				}
				d, err := e.Authorize(context.Background(), authz.Request{Identity: tc.id, Service: "registry.example.com", Requested: scopes})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, s := range d.Granted {
					got = append(got, s.String())
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("granted %v, want %v", got, tc.want)
				}
			})
		}
	}
}

// TestACLMatchesEachScopeOnce: a decision with its reasons (what the decision log asks for)
// runs the ACL's matching once per requested scope, as one without does. The reasons look
// up the rule that decided each scope again; when they matched it anew, a logged decision
// cost twice the matching of an unlogged one.
func TestACLMatchesEachScopeOnce(t *testing.T) {
	e := aclEngine(t, map[string]any{"acl": opatest.OrgACL(1000)}, prepareACL)
	p := e.cur.Load()
	var calls int
	counting := rego.Function1(&rego.Function{Name: aclBuiltinName, Decl: aclBuiltinDecl},
		func(_ rego.BuiltinContext, a *ast.Term) (*ast.Term, error) {
			calls++
			return p.acl.firstMatch(a), nil
		})
	for _, q := range []string{query, explainQuery} {
		pq, err := rego.New(rego.Query(q), rego.Compiler(p.compiler), rego.Store(p.store), counting).PrepareForEval(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		denied := 0
		for _, req := range opatest.OrgRequests(1000, 64) {
			calls = 0
			rs, err := pq.Eval(context.Background(), rego.EvalParsedInput(inputValue(req)))
			if err != nil {
				t.Fatal(err)
			}
			if calls != len(req.Requested) {
				t.Fatalf("%s: %d scopes matched %d times", q, len(req.Requested), calls)
			}
			if len(rs) > 0 {
				if r, ok := rs[0].Bindings["reasons"].([]any); ok && len(r) > 0 {
					denied++
				}
			}
		}
		if q == explainQuery && denied == 0 {
			t.Errorf("%s: no decision denied anything, so no reason was looked up", q)
		}
	}
}
