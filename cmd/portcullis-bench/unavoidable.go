package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
)

// unavoidableWork is what a warm Basic token cannot do without, run inside the bench process
// with the services' own code: one evaluation of the default policy, prepared once (the
// authz engine's Authorize, decision logs off), and one ES256 signature of the claims it
// grants (the signer's Sign with a local P-256 key). The settings are the bench server's
// (serverConfig), the request is a warm Basic request's (basicRequest).
type unavoidableWork struct {
	az     authz.Authorizer
	signer *signer.Signer
	ttl    time.Duration
	req    authz.Request
	close  func()
}

// basicRequest is the authz request of a warm 1-scope Basic token of the bench: the user of
// writeUsers with the groups serverConfig gives it, asking for tokenURL's first scope.
func basicRequest() (authz.Request, error) {
	s, err := scope.Parse(benchScope(0))
	if err != nil {
		return authz.Request{}, err
	}
	return authz.Request{
		Identity: identity.Identity{Subject: benchUser, Groups: []string{benchGroup}, Backend: benchBackend},
		Service:  benchService, Requested: []scope.Scope{s},
		RemoteAddr: "127.0.0.1", // as the gateway passes it: the address without the port
	}, nil
}

func newUnavoidableWork(ctx context.Context, dir string) (*unavoidableWork, error) {
	ports := make([]string, numPorts)
	for i := range ports {
		ports[i] = "127.0.0.1:0" // never listened on: only the settings are used
	}
	c, err := serverConfig(dir, scenario{scopes: 1, noDecisionLogs: true}, ports)
	if err != nil {
		return nil, err
	}
	// A key of its own, so the servers' key file is theirs to create.
	if c.Signer.Key, err = keymanager.NewSpec(&local.Config{Path: filepath.Join(dir, "unavoidable-key.pem")}); err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	km, err := app.OpenKeyManager(ctx, c, quiet, time.Now, nil, nil)
	if err != nil {
		return nil, err
	}
	s := signer.New(signer.Options{Issuer: c.Signer.Issuer, MaxTTL: c.Signer.MaxTTL.D(), NotBeforeSkew: c.Signer.NotBeforeSkew.D(),
		Audiences: slices.Clone(c.Gateway.Services), Now: time.Now}, km)
	az, err := c.Authz.OPA.Open(ctx, authz.Deps{Logger: quiet})
	if err != nil {
		_ = km.Close(ctx)
		return nil, err
	}
	req, err := basicRequest()
	if err != nil {
		return nil, err
	}
	u := &unavoidableWork{az: az, signer: s, ttl: c.Gateway.TokenTTL.D(), req: req}
	u.close = func() {
		if cl, ok := az.(interface{ Close(context.Context) error }); ok {
			_ = cl.Close(ctx)
		}
		_ = km.Close(ctx)
	}
	return u, nil
}

// decide is the policy evaluation; a decision that grants nothing is an error, since a token
// without access is not the work the bench's tokens need.
func (u *unavoidableWork) decide(ctx context.Context) (authz.Decision, error) {
	d, err := u.az.Authorize(ctx, u.req)
	if err != nil {
		return authz.Decision{}, err
	}
	if len(d.Granted) == 0 {
		return authz.Decision{}, errors.New("the default policy granted the bench request nothing")
	}
	return d, nil
}

// sign signs the token of decision d, as the gateway asks the signer to.
func (u *unavoidableWork) sign(ctx context.Context, d authz.Decision) (signer.Token, error) {
	return u.signer.Sign(ctx, signer.Claims{Subject: u.req.Identity.Subject, Audience: u.req.Service,
		Access: d.Granted, TTL: u.ttl, JTI: d.DecisionID})
}

// token is the whole unavoidable work of one token.
func (u *unavoidableWork) token(ctx context.Context) error {
	d, err := u.decide(ctx)
	if err != nil {
		return err
	}
	_, err = u.sign(ctx, d)
	return err
}

// unavoidableCost is the unavoidable work's process CPU time and allocations per token.
type unavoidableCost struct {
	perToken, sign, decide time.Duration
	allocs                 allocCounters // per token
}

// benchUnavoidable measures the unavoidable work on one goroutine in process CPU time
// (getrusage: the garbage collector's share counts, as it does in the server's figure): the
// median of three rounds of the whole, then signing and evaluation alone once each.
func benchUnavoidable(dir string) (unavoidableCost, error) {
	ctx := context.Background()
	u, err := newUnavoidableWork(ctx, dir)
	if err != nil {
		return unavoidableCost{}, err
	}
	defer u.close()
	d, err := u.decide(ctx)
	if err != nil {
		return unavoidableCost{}, err
	}
	var c unavoidableCost
	var rounds []time.Duration
	for range 3 {
		per, allocs, err := cpuPerOp(func() error { return u.token(ctx) }, 600*time.Millisecond)
		if err != nil {
			return unavoidableCost{}, err
		}
		rounds = append(rounds, per)
		c.allocs = allocs
	}
	slices.Sort(rounds)
	c.perToken = rounds[1]
	if c.sign, _, err = cpuPerOp(func() error { _, err := u.sign(ctx, d); return err }, 300*time.Millisecond); err != nil {
		return unavoidableCost{}, err
	}
	if c.decide, _, err = cpuPerOp(func() error { _, err := u.decide(ctx); return err }, 300*time.Millisecond); err != nil {
		return unavoidableCost{}, err
	}
	return c, nil
}

// cpuPerOp runs op on this goroutine until it has used budget of process CPU time (after a
// warm-up) and returns the CPU time and the allocations per call.
func cpuPerOp(op func() error, budget time.Duration) (time.Duration, allocCounters, error) {
	for range 50 {
		if err := op(); err != nil {
			return 0, allocCounters{}, err
		}
	}
	runtime.GC() // no debt from earlier garbage: each round pays for its own
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start, err := processCPU()
	if err != nil {
		return 0, allocCounters{}, err
	}
	n, used := 0, time.Duration(0)
	for used < budget {
		for range 8 {
			if err := op(); err != nil {
				return 0, allocCounters{}, err
			}
		}
		n += 8
		now, err := processCPU()
		if err != nil {
			return 0, allocCounters{}, err
		}
		used = now - start
	}
	runtime.ReadMemStats(&m1)
	return used / time.Duration(n), allocCounters{
		mallocs: float64(m1.Mallocs-m0.Mallocs) / float64(n),
		bytes:   float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n),
	}, nil
}

// processCPU is the user+system CPU time this process has used so far, every thread counted.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// unavoidableRowName names the row of the unavoidable work.
const unavoidableRowName = "unavoidable work (1 ES256 signature + 1 prepared OPA evaluation)"

// print prints the unavoidable work's row: its CPU and allocations per token in the columns
// of the servers' rows.
func (c unavoidableCost) print() {
	fmt.Printf(rowFormat, unavoidableRowName, "-", "-", "-", fmtMicros(c.perToken),
		fmt.Sprintf("%.0f", c.allocs.mallocs), fmtBytes(c.allocs.bytes),
		joinNotes([]string{fmt.Sprintf("(in this process, one goroutine, process CPU time, median of 3; alone: signature %s, evaluation %s)",
			fmtMicros(c.sign), fmtMicros(c.decide))}))
}
