package signer_test

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/services/signer"
)

// Every ability a caller uses (the signer, the admin API, the application's readiness and
// shutdown, registry-config) is a method of the one interface, so a wrapper that implements
// it cannot lose one: the build fails, or reflection below finds the method missing.
func TestInterfacesAreClosed(t *testing.T) {
	t.Parallel()
	cases := []struct {
		iface     reflect.Type
		abilities []string
	}{
		{reflect.TypeFor[signer.KeyManager](), []string{"SigningKey", "PublicKeys", "Healthy", "RootCertificates", "JWKSMaxAge", "KeyVersions", "Rotate", "Close"}},
		{reflect.TypeFor[signer.Key](), []string{"ID", "Algorithm", "Public", "Sign", "SignJWS", "Chain"}},
	}
	for _, tc := range cases {
		for _, name := range tc.abilities {
			if _, ok := tc.iface.MethodByName(name); !ok {
				t.Errorf("%s has no method %s: it is an optional ability a wrapper would drop", tc.iface, name)
			}
		}
		if tc.iface.NumMethod() != len(tc.abilities) {
			t.Errorf("%s has %d methods, this test knows %d: add the new one here and to the recorders", tc.iface, tc.iface.NumMethod(), len(tc.abilities))
		}
	}
}

// recorder implements every method itself (no Unimplemented base), so a method added to the
// interface breaks this test's build until it is recorded too.
type recorder struct{ calls map[string]int }

func (r *recorder) hit(name string) { r.calls[name]++ }

func (r *recorder) SigningKey(context.Context) (signer.Key, error) {
	r.hit("SigningKey")
	return recordingKey{r}, nil
}
func (r *recorder) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	r.hit("PublicKeys")
	return nil, nil
}
func (r *recorder) Healthy(context.Context) error { r.hit("Healthy"); return nil }
func (r *recorder) RootCertificates(context.Context) []*x509.Certificate {
	r.hit("RootCertificates")
	return nil
}
func (r *recorder) JWKSMaxAge(context.Context) time.Duration { r.hit("JWKSMaxAge"); return 0 }
func (r *recorder) KeyVersions(context.Context) ([]signer.KeyVersion, error) {
	r.hit("KeyVersions")
	return nil, nil
}
func (r *recorder) Rotate(context.Context) error { r.hit("Rotate"); return nil }
func (r *recorder) Close(context.Context) error  { r.hit("Close"); return nil }

type recordingKey struct{ r *recorder }

func (k recordingKey) ID() string                         { k.r.hit("ID"); return "" }
func (k recordingKey) Algorithm() jose.SignatureAlgorithm { k.r.hit("Algorithm"); return "" }
func (k recordingKey) Public() crypto.PublicKey           { k.r.hit("Public"); return nil }
func (k recordingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	k.r.hit("Sign")
	return nil, nil
}
func (k recordingKey) SignJWS(context.Context, []byte, crypto.SignerOpts) ([]byte, error) {
	k.r.hit("SignJWS")
	return nil, nil
}
func (k recordingKey) Chain() [][]byte { k.r.hit("Chain"); return nil }

var (
	_ signer.KeyManager = (*recorder)(nil)
	_ signer.Key        = recordingKey{}
)

// timedKeyManager is a decorator as a metrics or caching wrapper would be written: it
// overrides what it measures and embeds the interface for the rest.
type timedKeyManager struct {
	signer.KeyManager
	signs int
}

func (w *timedKeyManager) SigningKey(ctx context.Context) (signer.Key, error) {
	w.signs++
	return w.KeyManager.SigningKey(ctx)
}

// callAll calls every method of iface on v with zero arguments (a live context for ctx).
func callAll(t *testing.T, iface reflect.Type, v any) {
	t.Helper()
	rv := reflect.ValueOf(v)
	ctxType := reflect.TypeFor[context.Context]()
	for i := range iface.NumMethod() {
		m := iface.Method(i)
		args := make([]reflect.Value, m.Type.NumIn())
		for j := range args {
			in := m.Type.In(j)
			if in == ctxType {
				args[j] = reflect.ValueOf(context.Background())
			} else {
				args[j] = reflect.Zero(in)
			}
		}
		rv.MethodByName(m.Name).Call(args)
	}
}

func TestWrapperForwardsEveryAbility(t *testing.T) {
	t.Parallel()
	r := &recorder{calls: map[string]int{}}
	var km signer.KeyManager = &timedKeyManager{KeyManager: r}
	callAll(t, reflect.TypeFor[signer.KeyManager](), km)
	k, _ := km.SigningKey(context.Background())
	callAll(t, reflect.TypeFor[signer.Key](), k)
	for _, iface := range []reflect.Type{reflect.TypeFor[signer.KeyManager](), reflect.TypeFor[signer.Key]()} {
		for i := range iface.NumMethod() {
			if name := iface.Method(i).Name; r.calls[name] == 0 {
				t.Errorf("the wrapper dropped %s.%s", iface, name)
			}
		}
	}
}

// The defaults a key manager that embeds UnimplementedKeyManager gets: what the signer and
// the admin API did before for a key manager without the ability.
func TestUnimplementedDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var m signer.UnimplementedKeyManager
	if err := m.Healthy(ctx); err != nil {
		t.Errorf("Healthy = %v, want nil", err)
	}
	if roots := m.RootCertificates(ctx); roots != nil {
		t.Errorf("RootCertificates = %v, want nil", roots)
	}
	if got := m.JWKSMaxAge(ctx); got != time.Minute {
		t.Errorf("JWKSMaxAge = %v, want 1m", got)
	}
	if _, err := m.KeyVersions(ctx); !errors.Is(err, signer.ErrUnsupported) {
		t.Errorf("KeyVersions err = %v, want ErrUnsupported", err)
	}
	if err := m.Rotate(ctx); !errors.Is(err, signer.ErrUnsupported) {
		t.Errorf("Rotate err = %v, want ErrUnsupported", err)
	}
	if err := m.Close(ctx); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
	var k signer.UnimplementedKey
	if _, err := k.SignJWS(ctx, nil, crypto.SHA256); !errors.Is(err, signer.ErrUnsupported) {
		t.Errorf("SignJWS err = %v, want ErrUnsupported", err)
	}
	if k.Chain() != nil {
		t.Error("Chain is not nil")
	}
}
