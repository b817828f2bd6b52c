package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/services/authn"
)

// conn is a connection bound as the service account while it sits in the pool.
type conn struct {
	*goldap.Conn
	// broken: the connection failed (network, timeout, closed); it is never reused.
	broken bool
	// userBound: a user's bind was tried on it and the service account's has not been
	// redone since; such a connection must not go back to the pool, or the next request would
	// search with the user's rights.
	userBound bool
	idleSince time.Time
}

// fail records a failed operation: a failure of the connection itself marks it broken.
// Every directory-side failure is the directory's problem, not the caller's: ErrUnavailable.
func (c *conn) fail(op string, err error) error {
	if isConnErr(err) || c.IsClosing() {
		c.broken = true
	}
	return unavailable(op, err)
}

// isConnErr tells connection failures (refused, reset, closed, timed out) from answers.
func isConnErr(err error) bool {
	var ne net.Error
	return goldap.IsErrorAnyOf(err, goldap.ErrorNetwork, goldap.LDAPResultServerDown, goldap.LDAPResultConnectError,
		goldap.LDAPResultTimeout) ||
		errors.As(err, &ne)
}

// dialer opens one connection and binds it as the service account.
type dialer struct {
	network, addr string
	ldaps         bool
	startTLS      bool
	tls           *tls.Config
	timeout       time.Duration
	bindDN        string
	bindPassword  string
}

func (d *dialer) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, d.network, d.addr)
	if err != nil {
		return nil, unavailable("dial", err)
	}
	// go-ldap puts no deadline on the TLS handshake after StartTLS: bound the whole
	// connect (TLS, StartTLS, bind) on the socket, and end it early when ctx ends.
	deadline, _ := ctx.Deadline()
	_ = raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	var nc net.Conn = raw
	if d.ldaps {
		tc := tls.Client(raw, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			stop()
			_ = raw.Close()
			return nil, unavailable("TLS handshake", err)
		}
		nc = tc
	}
	lc := goldap.NewConn(nc, d.ldaps)
	lc.Start()
	lc.SetTimeout(d.timeout)
	c := &conn{Conn: lc}
	err = func() error {
		if d.startTLS {
			if err := lc.StartTLS(d.tls); err != nil {
				return unavailable("StartTLS", err)
			}
		}
		if err := lc.Bind(d.bindDN, d.bindPassword); err != nil {
			if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
				return fmt.Errorf("%w: ldap: the directory refused the service account's bind (bind_dn, bind_password_file)", errServiceBind)
			}
			return unavailable("service account bind", err)
		}
		return nil
	}()
	if !stop() || err != nil {
		_ = lc.Close()
		if err == nil {
			err = unavailable("connect", ctx.Err())
		}
		return nil, err
	}
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// pool hands out service-bound connections, at most size at a time.
type pool struct {
	dial    func(context.Context) (*conn, error)
	now     func() time.Time
	maxIdle time.Duration
	slots   chan struct{}

	mu     sync.Mutex
	idle   []*conn
	closed bool
}

func newPool(size int, dial func(context.Context) (*conn, error), now func() time.Time) *pool {
	return &pool{dial: dial, now: now, maxIdle: maxIdle, slots: make(chan struct{}, size)}
}

// maxIdle: a connection idle longer is closed rather than reused. Firewalls and Active
// Directory drop idle connections silently, and a dropped one costs a timeout to notice.
const maxIdle = 2 * time.Minute

// get returns a connection and whether it was used before (only those are worth retrying
// on: a fresh connection that fails says the directory is in trouble).
func (p *pool) get(ctx context.Context) (*conn, bool, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	for {
		c, closed := p.pop()
		if closed {
			<-p.slots
			return nil, false, errClosed
		}
		if c == nil {
			break
		}
		if c.IsClosing() || p.now().Sub(c.idleSince) > p.maxIdle {
			_ = c.Close()
			continue
		}
		return c, true, nil
	}
	c, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, false, nil
}

func (p *pool) pop() (_ *conn, closed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if p.closed || n == 0 {
		return nil, p.closed
	}
	c := p.idle[n-1]
	p.idle = p.idle[:n-1]
	return c, false
}

var errClosed = fmt.Errorf("%w: ldap backend closed", authn.ErrUnavailable)

// put returns c to the pool, or closes it when it cannot be trusted.
func (p *pool) put(c *conn) {
	defer func() { <-p.slots }()
	if c.broken || c.userBound || c.IsClosing() {
		_ = c.Close()
		return
	}
	c.idleSince = p.now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// close closes the idle connections; those in use are closed when they come back.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}
