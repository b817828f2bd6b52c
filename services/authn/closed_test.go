package authn_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// Every ability the chain asks of a backend is a method of the one Backend interface, so a
// wrapper that implements it cannot lose one: the build fails, or reflection finds it missing.
func TestBackendIsClosed(t *testing.T) {
	t.Parallel()
	iface := reflect.TypeFor[authn.Backend]()
	abilities := []string{"Authenticate", "Resolve", "CanResolve", "BcryptCost", "Claiming", "ClaimsCredential", "AcceptsSubjectTokens", "SubjectNamespace", "Close"}
	for _, name := range abilities {
		if _, ok := iface.MethodByName(name); !ok {
			t.Errorf("authn.Backend has no method %s: it is an optional ability a wrapper would drop", name)
		}
	}
	if iface.NumMethod() != len(abilities) {
		t.Errorf("authn.Backend has %d methods, this test knows %d: add the new one here and to recordingBackend", iface.NumMethod(), len(abilities))
	}
}

// recordingBackend implements every method itself (no UnimplementedBackend), so a method
// added to Backend breaks this test's build until it is recorded too.
type recordingBackend struct{ calls map[string]int }

func (r *recordingBackend) Authenticate(context.Context, authn.Credentials) (identity.Identity, error) {
	r.calls["Authenticate"]++
	return identity.Identity{}, authn.ErrNoMatch
}
func (r *recordingBackend) Resolve(context.Context, string) (identity.Identity, error) {
	r.calls["Resolve"]++
	return identity.Identity{}, authn.ErrNoMatch
}
func (r *recordingBackend) CanResolve() bool { r.calls["CanResolve"]++; return true }
func (r *recordingBackend) BcryptCost(context.Context) int {
	r.calls["BcryptCost"]++
	return 4
}
func (r *recordingBackend) Claiming() bool { r.calls["Claiming"]++; return true }
func (r *recordingBackend) ClaimsCredential(context.Context, authn.Credentials) bool {
	r.calls["ClaimsCredential"]++
	return false
}
func (r *recordingBackend) AcceptsSubjectTokens() bool {
	r.calls["AcceptsSubjectTokens"]++
	return false
}
func (r *recordingBackend) SubjectNamespace() string { r.calls["SubjectNamespace"]++; return "" }
func (r *recordingBackend) Close(context.Context) error {
	r.calls["Close"]++
	return nil
}

var _ authn.Backend = (*recordingBackend)(nil)

// countingBackend is a decorator as a metrics wrapper would be written: it overrides what it
// measures and embeds the interface for the rest.
type countingBackend struct {
	authn.Backend
	logins int
}

func (w *countingBackend) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	w.logins++
	return w.Backend.Authenticate(ctx, c)
}

func TestBackendWrapperForwardsEveryAbility(t *testing.T) {
	t.Parallel()
	r := &recordingBackend{calls: map[string]int{}}
	var b authn.Backend = &countingBackend{Backend: r}
	iface := reflect.TypeFor[authn.Backend]()
	ctxType := reflect.TypeFor[context.Context]()
	rv := reflect.ValueOf(b)
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			if in := m.Type.In(j); in == ctxType {
				args[j] = reflect.ValueOf(context.Background())
			} else {
				args[j] = reflect.Zero(in)
			}
		}
		rv.MethodByName(m.Name).Call(args)
	}
	for i := range iface.NumMethod() {
		if name := iface.Method(i).Name; r.calls[name] == 0 {
			t.Errorf("the wrapper dropped Backend.%s", name)
		}
	}
}

// The defaults of UnimplementedBackend are what the chain did before for a backend without
// the ability: no sessions, no bcrypt cost, a password backend, no namespace.
func TestUnimplementedBackendDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var b authn.UnimplementedBackend
	if _, err := b.Resolve(ctx, "alice"); !errors.Is(err, authn.ErrUnsupported) {
		t.Errorf("Resolve err = %v, want ErrUnsupported", err)
	}
	if b.CanResolve() || b.Claiming() || b.ClaimsCredential(ctx, authn.Credentials{Password: "pcp_x"}) || b.AcceptsSubjectTokens() {
		t.Error("CanResolve, Claiming, ClaimsCredential or AcceptsSubjectTokens is true")
	}
	if b.BcryptCost(ctx) != 0 || b.SubjectNamespace() != "" || b.Close(ctx) != nil {
		t.Errorf("BcryptCost %d, SubjectNamespace %q, Close %v", b.BcryptCost(ctx), b.SubjectNamespace(), b.Close(ctx))
	}
}
