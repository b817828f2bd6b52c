package authn

import (
	"errors"
	"fmt"
	"time"
)

// ErrLocked means the caller failed to log in too often and is refused for a while without
// its credentials being checked. It says nothing about whether the account exists: unknown
// accounts are locked the same way.
var ErrLocked = errors.New("authn: too many failed login attempts")

// LockedReason and ErrorDomain name a locked caller in the gRPC status's ErrorInfo, so the
// gateway can tell it from ErrBusy (both are ResourceExhausted) without reading the message.
const (
	LockedReason = "LOGIN_LOCKED"
	ErrorDomain  = "authn.portcullis.dev"
)

// LockedError is ErrLocked with the time left until the caller may try again.
type LockedError struct {
	RetryAfter time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v; retry in %s", ErrLocked, e.RetryAfter)
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
