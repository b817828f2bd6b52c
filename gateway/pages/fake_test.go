package pages_test

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"
)

// Values the fake knows. The secrets are distinctive so a test can look for them in logs.
const (
	aliceToken    = "pcw_ALICE-WEB-SESSION-SECRET"
	bobToken      = "pcw_BOB-WEB-SESSION-SECRET"
	alicePassword = "correct-horse-PASSWORD-SECRET"
	patSecret     = "pcp_PAT-SECRET-VALUE-0123456789"
	goodUserCode  = "WDJB-MJHT"
	idpCode       = "IDP-AUTH-CODE-SECRET"
	idpState      = "STATE-VALUE"
	sealedFlow    = "SEALED-FLOW-SECRET"
	hostile       = `<script>alert("x")</script>`
)

// fakeAccount is an AccountServiceClient with two people, alice and bob. errs makes a method
// fail; calls records which methods ran, and the last request of each is kept.
type fakeAccount struct {
	mu       sync.Mutex
	now      time.Time
	sessions map[string]string // web session token → subject
	errs     map[string]error
	calls    []string
	patMax   time.Duration
	patsOff  bool
	returnTo string // what CompleteSignIn answers

	begin    *authnv1.BeginSignInRequest
	complete *authnv1.CompleteSignInRequest
	password *authnv1.PasswordSignInRequest
	create   *authnv1.CreateMyPersonalAccessTokenRequest
	lookup   *authnv1.LookupDeviceRequest
	decide   *authnv1.DecideDeviceRequest
	revoked  []string
}

var _ authnv1.AccountServiceClient = (*fakeAccount)(nil)

func newFake(now time.Time) *fakeAccount {
	return &fakeAccount{
		now:      now,
		sessions: map[string]string{aliceToken: "alice", bobToken: "bob"},
		errs:     map[string]error{},
		patMax:   90 * 24 * time.Hour,
		returnTo: "/",
	}
}

// enter records the call and answers the error set for it, if any.
func (f *fakeAccount) enter(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, method)
	return f.errs[method]
}

func (f *fakeAccount) called(method string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == method {
			return true
		}
	}
	return false
}

func (f *fakeAccount) who(token string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[token]
	if !ok {
		return "", status.Error(codes.Unauthenticated, "unknown web session")
	}
	return s, nil
}

func (f *fakeAccount) BeginSignIn(_ context.Context, in *authnv1.BeginSignInRequest, _ ...grpc.CallOption) (*authnv1.BeginSignInResponse, error) {
	if err := f.enter("BeginSignIn"); err != nil {
		return nil, err
	}
	f.begin = in
	return &authnv1.BeginSignInResponse{AuthorizationUrl: "https://idp.example.com/authorize?state=" + idpState, Flow: sealedFlow}, nil
}

func (f *fakeAccount) CompleteSignIn(_ context.Context, in *authnv1.CompleteSignInRequest, _ ...grpc.CallOption) (*authnv1.CompleteSignInResponse, error) {
	if err := f.enter("CompleteSignIn"); err != nil {
		return nil, err
	}
	f.complete = in
	if in.GetFlow() != sealedFlow || in.GetState() != idpState || in.GetCode() != idpCode {
		return nil, status.Error(codes.Unauthenticated, "bad flow")
	}
	return &authnv1.CompleteSignInResponse{WebSessionToken: aliceToken, ExpiresAt: timestamppb.New(f.now.Add(8 * time.Hour)), ReturnTo: f.returnTo}, nil
}

func (f *fakeAccount) PasswordSignIn(_ context.Context, in *authnv1.PasswordSignInRequest, _ ...grpc.CallOption) (*authnv1.PasswordSignInResponse, error) {
	if err := f.enter("PasswordSignIn"); err != nil {
		return nil, err
	}
	f.password = in
	if in.GetUsername() != "alice" || in.GetPassword() != alicePassword {
		return nil, status.Error(codes.Unauthenticated, "wrong password")
	}
	return &authnv1.PasswordSignInResponse{WebSessionToken: aliceToken, ExpiresAt: timestamppb.New(f.now.Add(12 * time.Hour))}, nil
}

func (f *fakeAccount) GetAccount(_ context.Context, in *authnv1.GetAccountRequest, _ ...grpc.CallOption) (*authnv1.GetAccountResponse, error) {
	if err := f.enter("GetAccount"); err != nil {
		return nil, err
	}
	sub, err := f.who(in.GetWebSessionToken())
	if err != nil {
		return nil, err
	}
	return &authnv1.GetAccountResponse{
		Identity:             &commonv1.Identity{Subject: sub, Backend: "corp-sso", Groups: []string{"devs", hostile}},
		PersonalAccessTokens: !f.patsOff,
		PatMaxTtl:            durationpb.New(f.patMax),
		WebSessionExpiresAt:  timestamppb.New(f.now.Add(8 * time.Hour)),
	}, nil
}

func (f *fakeAccount) SignOut(_ context.Context, in *authnv1.SignOutRequest, _ ...grpc.CallOption) (*authnv1.SignOutResponse, error) {
	if err := f.enter("SignOut"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	delete(f.sessions, in.GetWebSessionToken())
	f.mu.Unlock()
	return &authnv1.SignOutResponse{}, nil
}

func (f *fakeAccount) ListMySessions(_ context.Context, in *authnv1.ListMySessionsRequest, _ ...grpc.CallOption) (*authnv1.ListMySessionsResponse, error) {
	if err := f.enter("ListMySessions"); err != nil {
		return nil, err
	}
	sub, err := f.who(in.GetWebSessionToken())
	if err != nil {
		return nil, err
	}
	return &authnv1.ListMySessionsResponse{Sessions: []*authnv1.Session{
		{Id: "s1", Subject: sub, Service: "registry.example.com", ClientId: "portcullis-cli", LastRemoteAddr: "198.51.100.4",
			CreatedAt: timestamppb.New(f.now.Add(-48 * time.Hour)), LastUsedAt: timestamppb.New(f.now.Add(-time.Hour))},
		{Id: "s2", Subject: sub, Service: "registry.example.com", ClientId: hostile, CreatedAt: timestamppb.New(f.now.Add(-time.Hour))},
	}}, nil
}

func (f *fakeAccount) RevokeMySession(_ context.Context, in *authnv1.RevokeMySessionRequest, _ ...grpc.CallOption) (*authnv1.RevokeMySessionResponse, error) {
	if err := f.enter("RevokeMySession"); err != nil {
		return nil, err
	}
	if _, err := f.who(in.GetWebSessionToken()); err != nil {
		return nil, err
	}
	if in.GetId() != "s1" && in.GetId() != "s2" {
		return nil, status.Error(codes.NotFound, "no such session")
	}
	f.revoked = append(f.revoked, in.GetId())
	return &authnv1.RevokeMySessionResponse{}, nil
}

func (f *fakeAccount) ListMyPersonalAccessTokens(_ context.Context, in *authnv1.ListMyPersonalAccessTokensRequest, _ ...grpc.CallOption) (*authnv1.ListMyPersonalAccessTokensResponse, error) {
	if err := f.enter("ListMyPersonalAccessTokens"); err != nil {
		return nil, err
	}
	sub, err := f.who(in.GetWebSessionToken())
	if err != nil {
		return nil, err
	}
	return &authnv1.ListMyPersonalAccessTokensResponse{PersonalAccessTokens: []*authnv1.PersonalAccessToken{
		{Id: "p1", Owner: sub, Name: "ci-builds", Scopes: []string{"repository:team/*:pull"},
			CreatedAt: timestamppb.New(f.now.Add(-72 * time.Hour)), ExpiresAt: timestamppb.New(f.now.Add(30 * 24 * time.Hour)),
			State: authnv1.PersonalAccessTokenState_PERSONAL_ACCESS_TOKEN_STATE_ACTIVE},
		{Id: "p0", Owner: sub, Name: "old-laptop", CreatedAt: timestamppb.New(f.now.Add(-400 * 24 * time.Hour)),
			ExpiresAt: timestamppb.New(f.now.Add(-35 * 24 * time.Hour)), LastUsedAt: timestamppb.New(f.now.Add(-40 * 24 * time.Hour)),
			State: authnv1.PersonalAccessTokenState_PERSONAL_ACCESS_TOKEN_STATE_EXPIRED},
	}}, nil
}

func (f *fakeAccount) CreateMyPersonalAccessToken(_ context.Context, in *authnv1.CreateMyPersonalAccessTokenRequest, _ ...grpc.CallOption) (*authnv1.CreateMyPersonalAccessTokenResponse, error) {
	if err := f.enter("CreateMyPersonalAccessToken"); err != nil {
		return nil, err
	}
	sub, err := f.who(in.GetWebSessionToken())
	if err != nil {
		return nil, err
	}
	f.create = in
	return &authnv1.CreateMyPersonalAccessTokenResponse{
		PersonalAccessToken: &authnv1.PersonalAccessToken{Id: "p2", Owner: sub, Name: in.GetName(), Scopes: in.GetScopes(),
			CreatedAt: timestamppb.New(f.now), ExpiresAt: timestamppb.New(f.now.Add(in.GetExpiresIn().AsDuration()))},
		Secret: patSecret,
	}, nil
}

func (f *fakeAccount) RevokeMyPersonalAccessToken(_ context.Context, in *authnv1.RevokeMyPersonalAccessTokenRequest, _ ...grpc.CallOption) (*authnv1.RevokeMyPersonalAccessTokenResponse, error) {
	if err := f.enter("RevokeMyPersonalAccessToken"); err != nil {
		return nil, err
	}
	if _, err := f.who(in.GetWebSessionToken()); err != nil {
		return nil, err
	}
	if in.GetId() != "p1" {
		return nil, status.Error(codes.NotFound, "no such token")
	}
	f.revoked = append(f.revoked, in.GetId())
	return &authnv1.RevokeMyPersonalAccessTokenResponse{}, nil
}

func (f *fakeAccount) device() *authnv1.DeviceAuthorization {
	return &authnv1.DeviceAuthorization{
		UserCode: goodUserCode, ClientId: hostile, ClientAddress: "203.0.113.7", UserAgent: "portcullis-cli/1.4 (linux; amd64) <b>bold</b>",
		Service: "registry.example.com", Scopes: []string{"repository:team/app:pull,push"},
		CreatedAt: timestamppb.New(f.now.Add(-time.Minute)), ExpiresAt: timestamppb.New(f.now.Add(9 * time.Minute)),
	}
}

func (f *fakeAccount) LookupDevice(_ context.Context, in *authnv1.LookupDeviceRequest, _ ...grpc.CallOption) (*authnv1.LookupDeviceResponse, error) {
	if err := f.enter("LookupDevice"); err != nil {
		return nil, err
	}
	if _, err := f.who(in.GetWebSessionToken()); err != nil {
		return nil, err
	}
	f.lookup = in
	if in.GetUserCode() != goodUserCode && in.GetUserCode() != "wdjbmjht" {
		return nil, status.Error(codes.NotFound, "no such code")
	}
	return &authnv1.LookupDeviceResponse{DeviceAuthorization: f.device()}, nil
}

func (f *fakeAccount) DecideDevice(_ context.Context, in *authnv1.DecideDeviceRequest, _ ...grpc.CallOption) (*authnv1.DecideDeviceResponse, error) {
	if err := f.enter("DecideDevice"); err != nil {
		return nil, err
	}
	if _, err := f.who(in.GetWebSessionToken()); err != nil {
		return nil, err
	}
	f.decide = in
	if in.GetUserCode() != goodUserCode {
		return nil, status.Error(codes.NotFound, "no such code")
	}
	return &authnv1.DecideDeviceResponse{DeviceAuthorization: f.device()}, nil
}

func (f *fakeAccount) BackChannelLogout(context.Context, *authnv1.BackChannelLogoutRequest, ...grpc.CallOption) (*authnv1.BackChannelLogoutResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not the pages' business")
}
