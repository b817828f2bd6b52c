// Package admin is the admin API: the bearer check every call passes, the admin gRPC server
// assembled from the services the modules of a process register (nothing here lists them),
// and its REST form through grpc-gateway.
package admin

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
)

// Service is one admin service a module registers: its gRPC description and implementation,
// and the routes of its REST form.
type Service struct {
	Desc *grpc.ServiceDesc
	Impl any
	// REST routes the service's REST API on mux to conn: the Register…Handler function
	// protoc-gen-grpc-gateway generated for the service.
	REST func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error
}

// Rules say who may call what on an admin server holding services: an admin certificate
// (or, without internal_tls, the one caller the listener is for) for each of them, anybody
// for health. Every call also needs the bearer secret (Auth).
func Rules(services []Service) grpctls.Rules {
	r := grpctls.Rules{grpctls.MethodsOf(&grpc_health_v1.Health_ServiceDesc): {grpctls.AnyPeer}}
	for _, s := range services {
		r[grpctls.MethodsOf(s.Desc)] = []string{grpctls.RoleAdmin}
	}
	return r
}

// Register puts services on s, with a health service reporting each of them serving.
func Register(s *grpc.Server, services []Service) {
	hs := health.NewServer()
	for _, as := range services {
		s.RegisterService(as.Desc, as.Impl)
		hs.SetServingStatus(as.Desc.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
	}
	grpc_health_v1.RegisterHealthServer(s, hs)
}
