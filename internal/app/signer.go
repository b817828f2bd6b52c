package app

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/admin"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
)

// startKeys opens the key manager the signer signs with and the admin API rotates.
func (a *App) startKeys(ctx context.Context) error {
	km, err := OpenKeyManager(ctx, a.cfg, a.log, a.now, a.reg, a.tracing.HTTPTransport)
	if err != nil {
		return err
	}
	a.closers = append(a.closers, km.Close)
	a.km = km
	a.adminServices = append(a.adminServices, admin.Service{Desc: &signerv1.KeyAdminService_ServiceDesc,
		Impl: signer.NewAdminServer(km, a.log.With("component", "admin")), REST: signerv1.RegisterKeyAdminServiceHandler})
	return nil
}

func (a *App) startSigner(ctx context.Context) error {
	c := a.cfg.Signer
	audiences := slices.Clone(c.Audiences)
	if len(audiences) == 0 { // a Config built without Defaults
		audiences = slices.Clone(a.cfg.Gateway.Services)
	}
	s := signer.New(signer.Options{Issuer: c.Issuer, MaxTTL: c.MaxTTL.D(), NotBeforeSkew: c.NotBeforeSkew.D(),
		Audiences: audiences, Now: a.now}, a.km)
	// A key that cannot fail (local, memory) stays healthy, so following it changes nothing.
	go a.followHealth(ctx, signerv1.SignerService_ServiceDesc.ServiceName, a.km)
	srv := signer.NewServer(s, a.log.With("component", "signer"))
	a.register("signer", &signerv1.SignerService_ServiceDesc, srv)
	return nil
}

// OpenKeyManager opens the key manager cfg names (signer.key), as the signer does; the
// commands that read or certify the key without running a server use it too.
func OpenKeyManager(ctx context.Context, cfg *Config, log *slog.Logger, now func() time.Time, reg prometheus.Registerer,
	wrapHTTP func(http.RoundTripper) http.RoundTripper) (signer.KeyManager, error) {
	kc, err := keymanager.Decode(cfg.Signer.Key)
	if err != nil {
		return nil, err
	}
	return kc.Open(ctx, signer.Deps{Logger: log.With("component", "signer"), Now: now, Registerer: reg, TokenLifetime: cfg.Signer.MaxTTL.D(),
		WrapHTTP: wrapHTTP})
}
