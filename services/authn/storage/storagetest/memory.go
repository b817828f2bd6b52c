package storagetest

import (
	"context"

	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/device/devicetest"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/pats/patstest"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/storetest"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts/ssoaccountstest"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/websessions"
	"github.com/portcullis-dev/portcullis/services/authn/websessions/websessionstest"
)

// Memory is an in-memory storage.Store for tests: the parts' fakes, each checked by its own
// suite through Run. A test reaches a fake's Fail through its field.
type Memory struct {
	S *storetest.Memory
	R *robotstest.Memory
	L *lockouttest.Memory
	P *patstest.Memory
	D *devicetest.Memory
	W *websessionstest.Memory
	A *ssoaccountstest.Memory
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{S: storetest.NewMemory(), R: robotstest.NewMemory(), L: lockouttest.NewMemory(), P: patstest.NewMemory(),
		D: devicetest.NewMemory(), W: websessionstest.NewMemory(), A: ssoaccountstest.NewMemory()}
}

var _ storage.Store = (*Memory)(nil)

func (m *Memory) Sessions() sessions.Store       { return m.S }
func (m *Memory) Robots() robots.Store           { return m.R }
func (m *Memory) Lockout() lockout.Store         { return m.L }
func (m *Memory) PATs() pats.Store               { return m.P }
func (m *Memory) Devices() device.Store          { return m.D }
func (m *Memory) WebSessions() websessions.Store { return m.W }
func (m *Memory) SSOAccounts() ssoaccounts.Store { return m.A }
func (m *Memory) Close(context.Context) error    { return nil }
