package local_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/keymanagertest"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
)

func TestConformance(t *testing.T) {
	for _, mode := range []keyid.Mode{keyid.ModeThumbprint, keyid.ModeLibtrust} {
		t.Run(string(mode), func(t *testing.T) {
			km, err := (&local.Config{Path: filepath.Join(t.TempDir(), "k.pem"), KeyIDMode: mode}).Open(context.Background(), signer.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			keymanagertest.Run(t, km)
		})
	}
}
