package storagetest

import (
	"context"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/pats/patstest"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/storetest"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
)

// Memory is an in-memory storage.Store for tests: the three parts' fakes, each checked
// by its own suite through Run.
type Memory struct {
	S *storetest.Memory
	R *robotstest.Memory
	L *lockouttest.Memory
	P *patstest.Memory
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{S: storetest.NewMemory(), R: robotstest.NewMemory(), L: lockouttest.NewMemory(), P: patstest.NewMemory()}
}

var _ storage.Store = (*Memory)(nil)

func (m *Memory) Sessions() sessions.Store    { return m.S }
func (m *Memory) Robots() robots.Store        { return m.R }
func (m *Memory) Lockout() lockout.Store      { return m.L }
func (m *Memory) PATs() pats.Store            { return m.P }
func (m *Memory) Close(context.Context) error { return nil }
