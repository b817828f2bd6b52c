// Package opa is the embedded Open Policy Agent authz engine.
//
// A policy is a directory of Rego (v1 syntax) files plus an optional data
// document; deploy/policies/README.md describes the input it gets and the
// output it must produce. The policy is compiled once at Open and every
// Authorize call is one evaluation of data.portcullis.authz.allowed, however
// many scopes are requested.
package opa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"

	"github.com/portcullis-dev/portcullis/internal/randid"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// query is the one rule a policy must define: a set of [type, class, name, action]
// (deploy/policies/README.md).
const query = "data.portcullis.authz.allowed"

// reasonsQuery is optional: a set of {type, class, name, action, reason} saying why an
// action was denied (deploy/policies/README.md).
const reasonsQuery = "data.portcullis.authz.reasons"

// explainQuery asks for allowed and reasons in one evaluation, so that both see one
// evaluation's documents.
const explainQuery = "allowed = " + query + "; reasons = " + reasonsQuery

// Config selects the policy: a directory (Dir), a bundle (Bundle), or, with neither, the
// shipped default. A directory and a local bundle are watched and reloaded when they
// change; an HTTP bundle is polled. A policy that fails to load never replaces the one
// serving.
type Config struct {
	// Dir holds the policy: every *.rego file in it except *_test.rego, and at
	// most one of data.json, data.yaml or data.yml, which becomes the data
	// document. Subdirectories are ignored.
	Dir string `yaml:"dir"`
	// Bundle is an OPA bundle (.tar.gz), from a file or an HTTP bundle server.
	Bundle *BundleConfig `yaml:"bundle"`
	// DecisionLogs is where every decision is logged.
	DecisionLogs DecisionLogConfig `yaml:"decision_logs"`
}

// Validate checks the settings and, for a directory or a local bundle, loads and compiles
// the policy; it returns every problem found. It only reads files.
func (c Config) Validate() []error {
	if errs := c.validateSettings(); len(errs) > 0 {
		return errs
	}
	if c.Bundle != nil && c.Bundle.URL != "" {
		return nil // fetched at run time; the authz service is not ready until it is
	}
	src, errs := c.loadStatic()
	if len(errs) > 0 {
		return errs
	}
	_, errs = compile(context.Background(), src, slog.New(slog.DiscardHandler))
	return errs
}

func (c Config) validateSettings() []error {
	errs := c.DecisionLogs.validate()
	if c.Bundle != nil {
		if c.Dir != "" {
			errs = append(errs, errors.New("dir and bundle exclude each other: give one"))
		}
		errs = append(errs, c.Bundle.validate()...)
	}
	return errs
}

// loadStatic reads the policy from the directory, the local bundle or the embedded
// default.
func (c Config) loadStatic() (source, []error) {
	if c.Bundle != nil && c.Bundle.Path != "" {
		src, err := c.Bundle.readFile()
		if err != nil {
			return source{}, []error{err}
		}
		return src, nil
	}
	return c.load()
}

// Open loads and compiles the policy and starts watching (or polling) for new versions.
// With an HTTP bundle it returns at once: until the first bundle is active, Authorize
// answers authz.ErrUnavailable and Loaded stays open.
func (c Config) Open(ctx context.Context, deps authz.Deps) (authz.Authorizer, error) {
	if errs := c.validateSettings(); len(errs) > 0 {
		return nil, fmt.Errorf("opa: %w", errors.Join(errs...))
	}
	e := newEngine(c, deps)
	dl, err := openDecisionLog(ctx, c.DecisionLogs, e.logger, e.dropped)
	if err != nil {
		return nil, fmt.Errorf("opa: %w", err)
	}
	e.dlog = dl
	if c.Bundle != nil && c.Bundle.URL != "" {
		if c.Bundle.Insecure && c.Bundle.Verification == nil && strings.HasPrefix(strings.ToLower(c.Bundle.URL), "http:") {
			e.logger.Warn("the authz policy bundle comes over plain http unsigned (bundle.insecure: true): anyone on the path to the bundle server can serve the policy",
				"url", c.Bundle.URL)
		}
		if err := e.startDownloader(); err != nil {
			return nil, fmt.Errorf("opa: %w", err)
		}
		return e, nil
	}
	src, errs := c.loadStatic()
	if len(errs) == 0 {
		errs = e.apply(ctx, src)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("opa: %w", errors.Join(errs...))
	}
	if watched := c.watchPath(); watched != "" {
		if err := e.startWatcher(watched); err != nil {
			return nil, fmt.Errorf("opa: %w", err)
		}
	}
	return e, nil
}

// watchPath is the directory or file whose changes trigger a reload; "" for the embedded
// default and an HTTP bundle.
func (c Config) watchPath() string {
	switch {
	case c.Bundle != nil && c.Bundle.Path != "":
		return c.Bundle.Path
	default:
		return c.Dir
	}
}

// compiled is one loaded policy, ready to evaluate. Everything an evaluation reads — the
// prepared queries, the store holding the data and the compiled ACL — belongs to one value
// that is published whole (engine.cur): an evaluation sees one version's data with that
// same version's ACL index, never one with the other.
type compiled struct {
	query rego.PreparedEvalQuery
	// explain asks for allowed and reasons together, when the policy gives reasons.
	explain    rego.PreparedEvalQuery
	hasReasons bool
	// compiler holds the compiled modules; a change of data alone prepares the queries
	// again over a new store with it, without compiling the policy again.
	compiler *ast.Compiler
	// store holds the data document; never written after the value is published.
	store storage.Store
	// acl is the compiled ACL the policy's portcullis.acl_first_match reads, made from the
	// data in store.
	acl *aclHolder
	// modules is a digest of the policy's modules: equal digests, same policy.
	modules  string
	revision string
	loadedAt time.Time
}

// compile prepares src for evaluation.
func compile(ctx context.Context, src source, logger *slog.Logger) (*compiled, []error) {
	return compileData(ctx, src, logger, prepareACL)
}

// compileData is compile with the data preparation given (tests compare with and without
// the ACL index).
func compileData(ctx context.Context, src source, logger *slog.Logger, prepData func(map[string]any) (map[string]any, *aclMatcher, error)) (*compiled, []error) {
	compiler := ast.NewCompiler().
		WithBuiltins(map[string]*ast.Builtin{aclBuiltinName: {Name: aclBuiltinName, Decl: aclBuiltinDecl}}).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(true).
		WithUseTypeCheckAnnotations(true)
	c, errs := prepareWith(ctx, compiler, src.modules, src.shown, src.data, logger, prepData)
	if len(errs) > 0 {
		return nil, errs
	}
	c.modules, c.revision = src.modulesDigest(), src.revision()
	return c, nil
}

// withData is p's policy over other data: a new store and ACL holder, the queries prepared
// again with p's compiler (nothing is compiled again). The result is a new value, so the one
// serving keeps its own data and index until the new one replaces it.
func (p *compiled) withData(ctx context.Context, data map[string]any, shown string, logger *slog.Logger) (*compiled, []error) {
	if data == nil {
		data = map[string]any{}
	}
	next, errs := prepareWith(ctx, p.compiler, nil, shown, data, logger, prepareACL)
	if len(errs) > 0 {
		return nil, errs
	}
	next.modules = p.modules
	return next, nil
}

// prepareWith loads data into a new store, compiles its ACL, and prepares the queries over
// them with compiler; modules are compiled into compiler when given (the first time).
func prepareWith(ctx context.Context, compiler *ast.Compiler, modules []*ast.Module, shown string, data map[string]any, logger *slog.Logger,
	prepData func(map[string]any) (map[string]any, *aclMatcher, error)) (*compiled, []error) {
	acl := &aclHolder{}
	// Reads return AST values, so evaluation does not convert data per call.
	store := inmem.NewWithOpts(inmem.OptReturnASTValuesOnRead(true))
	if data != nil {
		data, m, err := prepData(data)
		if err != nil {
			return nil, []error{err}
		}
		acl.m.Store(m)
		if err := storage.WriteOne(ctx, store, storage.AddOp, storage.RootPath, data); err != nil {
			return nil, []error{fmt.Errorf("load data: %w", err)}
		}
	}
	// Both queries run over this compiler, store and ACL, and keep their results as AST
	// terms: no JSON conversion per call.
	shared := []func(*rego.Rego){
		rego.Compiler(compiler),
		rego.Store(store),
		rego.SetRegoVersion(ast.RegoV1),
		rego.EnablePrintStatements(true),
		rego.PrintHook(printHook{logger: logger}),
		rego.GenerateJSON(func(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }),
		acl.builtin(),
	}
	opts := append([]func(*rego.Rego){rego.Query(query)}, shared...)
	for _, m := range modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, astErrors("compile policy", shown, err)
	}
	if len(compiler.GetRulesExact(ast.MustParseRef(query))) == 0 {
		return nil, []error{fmt.Errorf("policy %s defines no rule %s", shown, query)}
	}
	c := &compiled{query: pq, compiler: compiler, store: store, acl: acl}
	if len(compiler.GetRulesExact(ast.MustParseRef(reasonsQuery))) > 0 {
		// One more query over the policy already compiled.
		eq, err := rego.New(append([]func(*rego.Rego){rego.Query(explainQuery)}, shared...)...).PrepareForEval(ctx)
		if err != nil {
			return nil, astErrors("compile policy", shown, err)
		}
		c.explain, c.hasReasons = eq, true
	}
	return c, nil
}

// Authorize evaluates the policy once for all requested scopes.
func (e *engine) Authorize(ctx context.Context, req authz.Request) (authz.Decision, error) {
	if err := req.Validate(); err != nil {
		return authz.Decision{}, err
	}
	// OPA notices cancellation only now and then; a decision nobody waits
	// for is useless, so check first.
	if err := ctx.Err(); err != nil {
		return authz.Decision{}, fmt.Errorf("opa: %w", err)
	}
	p := e.cur.Load()
	if p == nil {
		return authz.Decision{}, fmt.Errorf("%w: no policy loaded yet", authz.ErrUnavailable)
	}
	id := randid.Hex(16)
	if len(req.Requested) == 0 {
		return authz.Decision{DecisionID: id}, nil
	}

	in := inputValue(req)
	if e.dlog != nil && p.hasReasons {
		// Logged with the policy's reasons: one evaluation gives allowed and reasons.
		d, reasons, err := e.explainWith(ctx, p, req)
		if err != nil {
			e.logger.WarnContext(ctx, "authz policy evaluation failed", "decision_id", id, "revision", p.revision, "error", err)
			return authz.Decision{}, err
		}
		d.DecisionID = id
		e.dlog.log(ctx, id, p.revision, e.now(), req, in, d.Granted, reasons)
		return d, nil
	}
	rs, err := p.query.Eval(ctx,
		rego.EvalParsedInput(in),
		rego.EvalTime(e.now()),
	)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		e.logger.WarnContext(ctx, "authz policy evaluation failed", "decision_id", id, "revision", p.revision, "error", err)
		return authz.Decision{}, fmt.Errorf("opa: evaluate policy: %w", err)
	}
	allowed, err := allowedSet(rs)
	if err != nil {
		e.logger.WarnContext(ctx, "authz policy returned a malformed result", "decision_id", id, "revision", p.revision, "error", err)
		return authz.Decision{}, fmt.Errorf("opa: %w", err)
	}

	granted := authz.Grant(req.Requested, func(s scope.Scope, action string) bool {
		_, ok := allowed[grant{s.Type, s.Class, s.Name, action}]
		return ok
	})
	if e.dlog != nil {
		e.dlog.log(ctx, id, p.revision, e.now(), req, in, granted, nil)
	}
	// Checked first: the arguments would be boxed for a line that, by default, is not written.
	if e.logger.Enabled(ctx, slog.LevelDebug) {
		e.logger.DebugContext(ctx, "authz decision",
			"decision_id", id,
			"revision", p.revision,
			"subject", req.Identity.Subject,
			"anonymous", req.Identity.Anonymous,
			"requested", len(req.Requested),
			"granted", len(granted),
		)
	}
	return authz.Decision{Granted: granted, DecisionID: id}, nil
}

// grant is one element of the allowed set: [type, class, name, action]. The class is part
// of the key, so allowing repository(plugin):x does not allow repository:x, nor the reverse.
type grant [4]string

// allowedSet reads the query result. An undefined result means nothing is allowed; anything
// but a set of string quadruples [type, class, name, action] is an error. A triple
// [type, name, action] (the format before the class was part of the key) is refused rather
// than guessed at: read as "any class" it would grant plugins to a policy that only meant
// images, read as "no class" it would grant images to one that only meant plugins.
func allowedSet(rs rego.ResultSet) (map[grant]struct{}, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	return allowedOf(rs[0].Expressions[0].Value)
}

// allowedOf reads one result value of allowed (an AST term), as allowedSet says.
func allowedOf(v any) (map[grant]struct{}, error) {
	t, ok := v.(*ast.Term)
	if !ok {
		return nil, fmt.Errorf("%s: unexpected result type %T", query, v)
	}
	set, ok := t.Value.(ast.Set)
	if !ok {
		return nil, fmt.Errorf("%s must be a set, got %s", query, ast.ValueName(t.Value))
	}
	allowed := make(map[grant]struct{}, set.Len())
	err := set.Iter(func(elem *ast.Term) error {
		arr, ok := elem.Value.(*ast.Array)
		if ok && arr.Len() == 3 {
			return fmt.Errorf("%s: element %v has no class: elements are [type, class, name, action] (class is \"\" for scopes without one)", query, elem)
		}
		if !ok || arr.Len() != 4 {
			return fmt.Errorf("%s: element %v is not [type, class, name, action]", query, elem)
		}
		var g grant
		for i := range g {
			s, ok := arr.Elem(i).Value.(ast.String)
			if !ok {
				return fmt.Errorf("%s: element %v is not [type, class, name, action] of strings", query, elem)
			}
			g[i] = string(s)
		}
		allowed[g] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return allowed, nil
}

// inputValue builds the policy input as an AST value directly, avoiding a
// conversion from Go values on every call. Its terms come from one array (termSlab): a
// term each would be an allocation each.
func inputValue(req authz.Request) ast.Value {
	id := req.Identity
	// 10 for the top level's keys and values, 8 for the identity's (anonymous is OPA's
	// interned boolean), 2 for the PAT's name; then each group, label and scope.
	n := 10 + 8 + 2 + len(id.Groups)
	for _, vs := range id.Labels {
		n += 2 + len(vs)
	}
	for _, s := range req.Requested {
		n += 9 + len(s.Actions)
	}
	ts := termSlab(make([]ast.Term, 0, n))
	groups := make([]*ast.Term, len(id.Groups))
	for i, g := range id.Groups {
		groups[i] = ts.str(g)
	}
	labels := make([][2]*ast.Term, 0, len(id.Labels))
	for k, vs := range id.Labels {
		// Every label is an array of its values, even a label with one: a policy reads them
		// all the same way (`some v in input.identity.labels.team`).
		values := make([]*ast.Term, len(vs))
		for i, v := range vs {
			values[i] = ts.str(v)
		}
		labels = append(labels, [2]*ast.Term{ts.str(k), ts.term(ast.NewArray(values...))})
	}
	scopes := make([]*ast.Term, len(req.Requested))
	for i, s := range req.Requested {
		actions := make([]*ast.Term, len(s.Actions))
		for j, a := range s.Actions {
			actions[j] = ts.str(a)
		}
		scopes[i] = ts.term(ast.NewObject(
			ast.Item(ts.str("type"), ts.str(s.Type)),
			ast.Item(ts.str("class"), ts.str(s.Class)),
			ast.Item(ts.str("name"), ts.str(s.Name)),
			ast.Item(ts.str("actions"), ts.term(ast.NewArray(actions...))),
		))
	}
	idObj := make([][2]*ast.Term, 0, 6)
	idObj = append(idObj,
		ast.Item(ts.str("subject"), ts.str(id.Subject)),
		ast.Item(ts.str("anonymous"), ast.InternedTerm(id.Anonymous)),
		ast.Item(ts.str("groups"), ts.term(ast.NewArray(groups...))),
		ast.Item(ts.str("labels"), ts.term(ast.NewObject(labels...))),
		ast.Item(ts.str("backend"), ts.str(id.Backend)),
	)
	if id.PATName != "" {
		// Only for a personal access token's login, so every other input keeps its shape.
		// The narrowing is not the policy's to see or undo: the authz server applies it.
		idObj = append(idObj, ast.Item(ts.str("pat_name"), ts.str(id.PATName)))
	}
	return ast.NewObject(
		ast.Item(ts.str("identity"), ts.term(ast.NewObject(idObj...))),
		ast.Item(ts.str("service"), ts.str(req.Service)),
		ast.Item(ts.str("client_id"), ts.str(req.ClientID)),
		ast.Item(ts.str("remote_addr"), ts.str(req.RemoteAddr)),
		ast.Item(ts.str("scopes"), ts.term(ast.NewArray(scopes...))),
	)
}

// termSlab hands out terms from one array, allocated with room for all of them; past its
// capacity append moves on to a new array, and the terms already handed out stay valid.
type termSlab []ast.Term

func (s *termSlab) term(v ast.Value) *ast.Term {
	if len(*s) == cap(*s) {
		*s = make([]ast.Term, 0, 8)
	}
	*s = append(*s, ast.Term{Value: v})
	return &(*s)[len(*s)-1]
}

func (s *termSlab) str(v string) *ast.Term { return s.term(ast.String(v)) }

// printHook sends the policy's print() output to the log.
type printHook struct{ logger *slog.Logger }

func (h printHook) Print(pctx print.Context, msg string) error {
	ctx := pctx.Context
	if ctx == nil {
		ctx = context.Background()
	}
	var loc string
	if pctx.Location != nil {
		loc = pctx.Location.String()
	}
	h.logger.DebugContext(ctx, "authz policy print", "location", loc, "msg", msg)
	return nil
}
