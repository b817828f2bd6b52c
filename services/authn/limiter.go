package authn

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// BcryptLimiter bounds concurrent bcrypt work. bcrypt is slow on purpose, so without a bound
// a flood of wrong passwords from unauthenticated callers takes every CPU and starves the
// signing of tokens for users whose credentials are cached. A caller waits for a slot at most
// until its context ends, and is turned away at once (ErrBusy) when the queue is full, so the
// gateway can answer "retry later" instead of piling up work nobody will wait for.
//
// A nil *BcryptLimiter is unlimited.
type BcryptLimiter struct {
	slots    chan struct{}
	maxQueue int64
	waiting  atomic.Int64

	// Busy is called when a caller is turned away because the queue is full; Expired when a
	// caller's context ends before it gets a slot. Metrics hook in here; set before first use.
	Busy, Expired func()

	// compare is bcrypt.CompareHashAndPassword; tests swap it to count work by cost.
	compare func(hash, password []byte) error
}

// NewBcryptLimiter allows maxConcurrent comparisons at once (≤ 0: one per CPU the runtime
// uses) and at most maxQueue callers waiting for a slot (< 0 is taken as 0: never wait).
func NewBcryptLimiter(maxConcurrent, maxQueue int) *BcryptLimiter {
	if maxConcurrent <= 0 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	return &BcryptLimiter{
		slots:    make(chan struct{}, maxConcurrent),
		maxQueue: int64(max(maxQueue, 0)),
		Busy:     func() {},
		Expired:  func() {},
		compare:  bcrypt.CompareHashAndPassword,
	}
}

// Do runs work holding one slot. It returns ErrBusy when the queue is full and the context's
// error (wrapped) when ctx ends first; work has not run then.
func (l *BcryptLimiter) Do(ctx context.Context, work func()) error {
	if l == nil {
		work()
		return nil
	}
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-l.slots }()
	work()
	return nil
}

// Compare reports whether password matches the bcrypt hash, the comparison holding a slot.
// Called under a Chain, it also pays, in the same slot, the top-up that makes a cheaper hash
// cost what an unknown user costs (see Chain).
func (l *BcryptLimiter) Compare(ctx context.Context, hash string, password Password) (bool, error) {
	var ok bool
	err := l.Do(ctx, func() {
		cmp := l.comparer()
		ok = cmp([]byte(hash), []byte(password)) == nil
		if eq, _ := ctx.Value(equaliserKey{}).(*equaliser); eq != nil {
			eq.topUp(cmp, HashCost(hash), password)
		}
	})
	return ok, err
}

// InUse is the number of comparisons running now.
func (l *BcryptLimiter) InUse() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}

// Waiting is the number of callers queued for a slot.
func (l *BcryptLimiter) Waiting() int {
	if l == nil {
		return 0
	}
	return int(l.waiting.Load())
}

func (l *BcryptLimiter) acquire(ctx context.Context) error {
	// A caller whose deadline has passed gets nothing from the work: do not spend it.
	if err := ctx.Err(); err != nil {
		l.Expired()
		return fmt.Errorf("authn: waiting for bcrypt: %w", err)
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	if l.waiting.Add(1) > l.maxQueue {
		l.waiting.Add(-1)
		l.Busy()
		return ErrBusy
	}
	defer l.waiting.Add(-1)
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		l.Expired()
		return fmt.Errorf("authn: waiting for bcrypt: %w", ctx.Err())
	}
}

func (l *BcryptLimiter) comparer() func(hash, password []byte) error {
	if l == nil || l.compare == nil {
		return bcrypt.CompareHashAndPassword
	}
	return l.compare
}

// equaliser travels in the context from Chain.Authenticate to the comparisons its backends
// make: floor is the highest bcrypt cost in the chain, which an unknown user pays.
type equaliser struct {
	chain *Chain
	floor int
}

type equaliserKey struct{}

// topUp brings a comparison at cost paid up to the work of one at cost floor. bcrypt's work
// doubles per cost step, so 2^floor − 2^paid = 2^paid + 2^(paid+1) + … + 2^(floor−1): one
// dummy comparison at each cost from paid to floor−1.
func (e *equaliser) topUp(cmp func(hash, password []byte) error, paid int, password Password) {
	if paid < bcrypt.MinCost { // not a bcrypt hash (CheckHash refuses those): pay it all
		_ = cmp(e.chain.dummyHash(e.floor), []byte(password))
		return
	}
	for cost := paid; cost < e.floor; cost++ {
		_ = cmp(e.chain.dummyHash(cost), []byte(password))
	}
}
