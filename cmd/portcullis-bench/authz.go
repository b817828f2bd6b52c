package main

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/portcullis-dev/portcullis/deploy"
	"github.com/portcullis-dev/portcullis/internal/pbconv"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/authz/opa"
	"github.com/portcullis-dev/portcullis/services/authz/opa/opatest"
)

// benchAuthz measures the authz service alone (split, its gRPC port, decision logs on as by
// default): 5-scope decisions from a set of users against the shipped policies, the acl one
// with 10, 1,000 and 10,000 rules of an organisation's shape (opatest.OrgACL).
func benchAuthz(bin, dir string, o options) error {
	fmt.Printf("\nAuthz decisions (split; gRPC straight to the authz service; 5 scopes per decision; closed loop, then %d/s fixed rate)\n", o.rate)
	type policyCase struct {
		name   string
		rules  int // acl rules; 0 for the others
		dir    string
		noLogs bool
	}
	cases := []policyCase{{name: "default policy"}, {name: "teams policy (shipped example data)", dir: "teams"}}
	for _, n := range []int{10, 1000, 10000} {
		cases = append(cases, policyCase{name: fmt.Sprintf("acl policy, %d rules", n), rules: n, dir: "acl"})
	}
	// What the decision log (with the policy's reasons for denials) costs.
	cases = append(cases, policyCase{name: "acl policy, 1000 rules, decision logs off", rules: 1000, dir: "acl", noLogs: true})
	for _, pc := range cases {
		policy := ""
		if pc.dir != "" {
			var err error
			if policy, err = writePolicy(dir, pc.dir, pc.rules); err != nil {
				return err
			}
		}
		reqs := opatest.OrgRequests(max(pc.rules, 1000), 256)
		var pbReqs []*authzv1.AuthorizeRequest
		for _, r := range reqs {
			pbReqs = append(pbReqs, &authzv1.AuthorizeRequest{Identity: pbconv.IdentityToPB(r.Identity), Service: r.Service,
				Requested: pbconv.ScopesToPB(r.Requested), RemoteAddr: r.RemoteAddr})
		}
		if pc.dir != "" && !pc.noLogs {
			// The policy engine alone, in this process, one decision at a time: what a
			// decision costs without gRPC and without the decision log.
			inproc, err := engineOnly(policy, reqs, o.dur)
			if err != nil {
				return fmt.Errorf("%s: %w", pc.name, err)
			}
			inproc.print(pc.name + ", engine in-process")
		}
		sc := scenario{split: true, scopes: 5, opaDir: policy, noDecisionLogs: pc.noLogs}
		var closed, fixed result
		_, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
			cc, err := grpc.NewClient(s.authzAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return result{}, err
			}
			defer cc.Close()
			client := authzv1.NewAuthzServiceClient(cc)
			send := func(_ *http.Client, i int) (time.Duration, error) {
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_, err := client.Authorize(ctx, pbReqs[i%len(pbReqs)])
				return time.Since(start), err
			}
			if closed, err = s.measure(func() (result, error) { return closedLoop(send, o.conc, o.dur) }); err != nil {
				return result{}, err
			}
			fixed, err = s.measure(func() (result, error) { return fixedRate(send, o.rate, o.dur) })
			return fixed, err
		})
		if err != nil {
			return fmt.Errorf("%s: %w", pc.name, err)
		}
		closed.print(pc.name + " (decisions/s)")
		fixed.print(fmt.Sprintf("%s @%d/s", pc.name, o.rate))
	}
	return nil
}

// writePolicy copies a shipped policy into dir; for acl with rules > 0 the data is an
// organisation's ACL of that size.
func writePolicy(dir, name string, rules int) (string, error) {
	out := filepath.Join(dir, fmt.Sprintf("policy-%s-%d", name, rules))
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	sub, err := fs.Sub(deploy.Policies, "policies/"+name)
	if err != nil {
		return "", err
	}
	entries, err := fs.ReadDir(sub, ".")
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(sub, e.Name())
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			return "", err
		}
	}
	if rules > 0 {
		b, err := yaml.Marshal(map[string]any{"acl": opatest.OrgACL(rules)})
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(out, "data.yaml"), b, 0o644); err != nil {
			return "", err
		}
	}
	return out, nil
}

// engineOnly decides reqs in turn with the opa engine in this process for dur.
func engineOnly(policy string, reqs []authz.Request, dur time.Duration) (result, error) {
	a, err := opa.Config{Dir: policy}.Open(context.Background(), authz.Deps{})
	if err != nil {
		return result{}, err
	}
	if c, ok := a.(interface{ Close(context.Context) error }); ok {
		defer c.Close(context.Background())
	}
	var res result
	start := time.Now()
	for i := 0; time.Since(start) < dur; i++ {
		t := time.Now()
		if _, err := a.Authorize(context.Background(), reqs[i%len(reqs)]); err != nil {
			res.errs++
			continue
		}
		res.lat = append(res.lat, time.Since(t))
	}
	res.elapsed = time.Since(start)
	res.n = len(res.lat)
	return res, nil
}
