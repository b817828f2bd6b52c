package signer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"log/slog"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
	"github.com/portcullis-dev/portcullis/services/signer"
)

// A key manager without rotation (the Unimplemented defaults) shows its key as version 1
// and refuses to rotate with FailedPrecondition, naming the one that rotates.
func TestAdminServerOverAKeyThatDoesNotRotate(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a := signer.NewAdminServer(signer.StaticKeys(pk, "kid-1", jose.ES256), slog.New(slog.DiscardHandler))
	ctx := context.Background()
	vs, err := a.ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{})
	if err != nil || len(vs.GetVersions()) != 1 || vs.GetVersions()[0].GetKeyId() != "kid-1" || vs.GetVersions()[0].GetState() != "active" {
		t.Fatalf("ListKeyVersions = %v, %v; want kid-1 active", vs, err)
	}
	_, err = a.RotateKey(ctx, &signerv1.RotateKeyRequest{})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "this key manager does not rotate keys (use the vault key manager)" {
		t.Fatalf("RotateKey = %v, want FailedPrecondition naming the vault key manager", err)
	}
}
