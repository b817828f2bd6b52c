package signer_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// secret stands for configuration and backend detail: it may be logged, never returned.
const secret = "https://vault.internal:8200 token s.hunter2"

type failingKM struct {
	signer.UnimplementedKeyManager
	err error
}

func (m failingKM) SigningKey(context.Context) (signer.Key, error) { return nil, m.err }
func (m failingKM) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	return nil, m.err
}

// failingKey's signature fails with err.
type failingKey struct {
	*ecdsa.PrivateKey
	signer.UnimplementedKey
	err error
}

func (k failingKey) ID() string                         { return "k" }
func (k failingKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k failingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, k.err
}

// toStatus: requests the signer refuses are InvalidArgument with the reason (the gateway
// treats them as its own fault and echoes nothing); every other failure has a fixed message
// and the detail only goes to the log.
func TestServerStatus(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ok := memKM{k: memKey{PrivateKey: pk, id: "k"}}
	opt := signer.Options{Issuer: "i", Audiences: []string{"registry.local"}, MaxTTL: time.Hour}
	good := &signerv1.SignTokenRequest{Subject: "alice", Audience: "registry.local", Ttl: durationpb.New(time.Minute), Jti: "j"}
	with := func(f func(r *signerv1.SignTokenRequest)) *signerv1.SignTokenRequest {
		r := &signerv1.SignTokenRequest{Subject: good.Subject, Audience: good.Audience, Ttl: good.Ttl, Jti: good.Jti}
		f(r)
		return r
	}
	tests := []struct {
		name     string
		km       signer.KeyManager
		ctx      func() context.Context
		req      *signerv1.SignTokenRequest
		want     codes.Code
		wantText string // the whole status message for codes other than InvalidArgument
		logged   string // what the log must say about it
	}{
		{name: "signed", km: ok, req: good, want: codes.OK},
		{name: "audience not served", km: ok, req: with(func(r *signerv1.SignTokenRequest) { r.Audience = "evil.example" }), want: codes.InvalidArgument},
		{name: "ttl above max", km: ok, req: with(func(r *signerv1.SignTokenRequest) { r.Ttl = durationpb.New(2 * time.Hour) }), want: codes.InvalidArgument},
		{name: "malformed ttl", km: ok, req: with(func(r *signerv1.SignTokenRequest) { r.Ttl = &durationpb.Duration{Seconds: 1, Nanos: -1} }), want: codes.InvalidArgument},
		{name: "key manager down", km: failingKM{err: errors.New(secret)}, req: good, want: codes.Unavailable, wantText: "signing key unavailable", logged: "hunter2"},
		{name: "signature fails", km: memKM{k: failingKey{PrivateKey: pk, err: errors.New(secret)}}, req: good, want: codes.Unavailable, wantText: "signing key unavailable", logged: "hunter2"},
		{name: "key misconfigured", km: signer.StaticKeys(pk, "k", jose.RS256), req: good, want: codes.Internal, wantText: "internal error", logged: "does not fit"},
		{name: "deadline", km: memKM{k: failingKey{PrivateKey: pk, err: context.DeadlineExceeded}}, req: good, want: codes.DeadlineExceeded, wantText: "signing timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var log bytes.Buffer
			srv := signer.NewServer(signer.New(opt, tt.km), slog.New(slog.NewTextHandler(&log, nil)))
			resp, err := srv.SignToken(context.Background(), tt.req)
			st, _ := status.FromError(err)
			if st.Code() != tt.want {
				t.Fatalf("code = %s (%v), want %s", st.Code(), err, tt.want)
			}
			if tt.want == codes.OK {
				if resp.GetToken() == "" {
					t.Fatal("no token")
				}
				return
			}
			if tt.wantText != "" && st.Message() != tt.wantText {
				t.Errorf("message = %q, want %q", st.Message(), tt.wantText)
			}
			if strings.Contains(st.Message(), "hunter2") {
				t.Errorf("message %q leaks backend detail", st.Message())
			}
			if !strings.Contains(log.String(), tt.logged) {
				t.Errorf("the detail was not logged: %s", log.String())
			}
		})
	}
}
