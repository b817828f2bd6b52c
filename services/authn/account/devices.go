package account

import (
	"context"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn/device"
)

// DeviceFlows is what the approval page needs of the device flows (*device.Manager).
type DeviceFlows interface {
	Lookup(ctx context.Context, userCode, addr string) (device.Authorization, error)
	Decide(ctx context.Context, userCode, addr string, approve bool, who device.Approver) (device.Authorization, error)
}

// deviceError is an error of the device flows, mapped as every device-flow RPC maps them.
type deviceError struct{ err error }

func (e *deviceError) Error() string { return e.err.Error() }
func (e *deviceError) Unwrap() error { return e.err }

func (e *deviceError) status(ctx context.Context, log *slog.Logger) error {
	return device.StatusFor(ctx, log, e.err)
}

// LookupDevice implements authnv1.AccountServiceServer.
func (s *Server) LookupDevice(ctx context.Context, req *authnv1.LookupDeviceRequest) (*authnv1.LookupDeviceResponse, error) {
	if _, _, err := s.signedIn(ctx, req.GetWebSessionToken()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.o.Devices == nil {
		return nil, status.Error(codes.FailedPrecondition, "device flows are off")
	}
	a, err := s.o.Devices.Lookup(ctx, req.GetUserCode(), req.GetRemoteAddr())
	if err != nil {
		return nil, s.toStatus(ctx, &deviceError{err})
	}
	return &authnv1.LookupDeviceResponse{DeviceAuthorization: deviceToPB(a)}, nil
}

// DecideDevice implements authnv1.AccountServiceServer. The session the device gets is the
// signed-in person's: their subject, backend and credential fingerprint, as re-read now.
func (s *Server) DecideDevice(ctx context.Context, req *authnv1.DecideDeviceRequest) (*authnv1.DecideDeviceResponse, error) {
	ws, id, err := s.signedIn(ctx, req.GetWebSessionToken())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.o.Devices == nil {
		return nil, status.Error(codes.FailedPrecondition, "device flows are off")
	}
	a, err := s.o.Devices.Decide(ctx, req.GetUserCode(), req.GetRemoteAddr(), req.GetApprove(),
		device.Approver{Subject: id.Subject, Backend: ws.Backend, Fingerprint: id.Fingerprint})
	if err != nil {
		return nil, s.toStatus(ctx, &deviceError{err})
	}
	return &authnv1.DecideDeviceResponse{DeviceAuthorization: deviceToPB(a)}, nil
}

func deviceToPB(a device.Authorization) *authnv1.DeviceAuthorization {
	return &authnv1.DeviceAuthorization{UserCode: device.FormatUserCode(a.UserCode), ClientId: a.ClientID,
		ClientAddress: a.ClientAddr, UserAgent: a.UserAgent, Service: a.Service, Scopes: a.Scopes,
		CreatedAt: timestamppb.New(a.CreatedAt), ExpiresAt: timestamppb.New(a.ExpiresAt)}
}
