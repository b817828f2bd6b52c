package app

import (
	"context"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-dev/portcullis/internal/admin"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	"github.com/portcullis-dev/portcullis/services/authz"
)

func (a *App) startAuthz(ctx context.Context) error {
	log := a.log.With("component", "authz")
	az, err := a.cfg.Authz.OPA.Open(ctx, authz.Deps{Logger: log, Now: a.now, Metrics: a.reg})
	if err != nil {
		return err
	}
	if c, ok := az.(interface{ Close(context.Context) error }); ok {
		a.closers = append(a.closers, c.Close)
	}
	srv := authz.NewServer(az, log)
	a.register("authz", &authzv1.AuthzService_ServiceDesc, srv)
	if p, ok := az.(authz.PolicyReporter); ok {
		a.adminServices = append(a.adminServices, admin.Service{Desc: &authzv1.PolicyAdminService_ServiceDesc,
			Impl: authz.NewPolicyAdminServer(p), REST: authzv1.RegisterPolicyAdminServiceHandler})
		select {
		case <-p.Loaded():
		default:
			// A policy fetched from a bundle server may come later: until it does, the
			// service is not ready (gRPC health, and so the gateway's /readyz).
			name := healthNames()["authz"]
			a.health.SetServingStatus(name, grpc_health_v1.HealthCheckResponse_NOT_SERVING)
			log.Warn("authz not ready: waiting for the first policy", "source", p.PolicyStatus(ctx).Source)
			go func() {
				<-p.Loaded()
				a.health.SetServingStatus(name, grpc_health_v1.HealthCheckResponse_SERVING)
			}()
		}
	}
	return nil
}
