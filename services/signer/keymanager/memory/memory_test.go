package memory_test

import (
	"context"
	"testing"

	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/keymanagertest"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/memory"
)

func TestConformance(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			km, err := (&memory.Config{Algorithm: alg}).Open(context.Background(), signer.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			keymanagertest.Run(t, km)
		})
	}
}
