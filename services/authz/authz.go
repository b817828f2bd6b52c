// Package authz decides which of the requested resource scopes a caller gets.
//
// The consumer owns the interface: policy engines live in their own packages
// (services/authz/opa, ...) and export only a Config whose Open returns an
// Authorizer.
//
// Denying access is a result, not an error: denied actions are simply missing
// from Decision.Granted. Errors mean that no decision could be made.
package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
)

var (
	// ErrUnavailable means the authorizer cannot decide right now (for example
	// a remote policy service is down); the caller may retry.
	ErrUnavailable = errors.New("authz: unavailable")
	// ErrInvalidRequest means the request is malformed and will never be
	// decided; the caller must not retry it unchanged.
	ErrInvalidRequest = errors.New("authz: invalid request")
)

// Request asks which of the Requested scopes Identity may have for Service.
type Request struct {
	Identity  identity.Identity
	Service   string
	Requested []scope.Scope
	// RemoteAddr and ClientID are informational (the client's address and the
	// client_id parameter of the token request); policies may use them.
	RemoteAddr, ClientID string
}

// Decision is the answer to a Request.
type Decision struct {
	// Granted holds the requested scopes that got at least one action, in
	// request order, each with only its granted actions (in request order).
	Granted []scope.Scope
	// DecisionID identifies this decision in logs.
	DecisionID string
}

// Authorizer decides requests. A denied action is not an error: it is left out
// of Decision.Granted. Implementations must be safe for concurrent use.
type Authorizer interface {
	Authorize(ctx context.Context, req Request) (Decision, error)
}

// Reason is why the policy denied one action.
type Reason struct {
	Type, Class, Name, Action string
	Reason                    string
}

// Explainer is an optional ability of an Authorizer: a decision with the policy's reasons
// for each denied action.
type Explainer interface {
	Explain(ctx context.Context, req Request) (Decision, []Reason, error)
}

// PolicyStatus is what an Authorizer says about the policy it evaluates.
type PolicyStatus struct {
	// Source is where the policy comes from: "embedded default", "dir /etc/…",
	// "bundle file …" or "bundle https://…".
	Source string
	// Revision of the active policy; empty before the first load.
	Revision string
	// Ready is true once a policy is active.
	Ready    bool
	LoadedAt time.Time
	// LastError is the latest refused load, kept until a load succeeds; the active policy
	// is then still the one before it.
	LastError   string
	LastErrorAt time.Time
	// LastCheck is when a bundle server was last asked (a 304 counts).
	LastCheck time.Time
}

// PolicyReporter is an optional ability of an Authorizer whose policy can change while it
// runs.
type PolicyReporter interface {
	PolicyStatus(ctx context.Context) PolicyStatus
	// Loaded is closed once a policy is active; until then decisions are ErrUnavailable.
	Loaded() <-chan struct{}
}

// Deps are the runtime dependencies an Authorizer is opened with.
type Deps struct {
	// Logger receives the engine's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics registers the engine's metrics; nil registers none.
	Metrics prometheus.Registerer
}

// Validate reports why req can never be decided, wrapping ErrInvalidRequest,
// or nil. It does not judge whether anything would be granted.
func (req Request) Validate() error {
	var errs []error
	if !req.Identity.Anonymous && req.Identity.Subject == "" {
		errs = append(errs, errors.New("identity is neither anonymous nor has a subject"))
	}
	for i, s := range req.Requested {
		if s.Type == "" {
			errs = append(errs, fmt.Errorf("scope %d: empty type", i))
		}
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("scope %d: empty name", i))
		}
		for _, a := range s.Actions {
			if a == "" {
				errs = append(errs, fmt.Errorf("scope %d: empty action", i))
				break
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidRequest, errors.Join(errs...))
}

// Grant builds Decision.Granted from the requested scopes: it keeps each
// requested action for which allow returns true, drops scopes left without
// actions and keeps request order. allow is only ever asked about requested
// actions, so the result is always a subset of requested, whatever allow
// answers. A repeated action within a scope is granted at most once. The result
// shares no slices with requested.
func Grant(requested []scope.Scope, allow func(s scope.Scope, action string) bool) []scope.Scope {
	var granted []scope.Scope
	for _, s := range requested {
		var actions []string
		for i, a := range s.Actions {
			if slices.Contains(s.Actions[:i], a) || !allow(s, a) {
				continue
			}
			actions = append(actions, a)
		}
		if len(actions) == 0 {
			continue
		}
		granted = append(granted, scope.Scope{Type: s.Type, Class: s.Class, Name: s.Name, Actions: actions})
	}
	return granted
}
