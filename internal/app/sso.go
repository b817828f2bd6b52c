package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/account"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
)

// CallbackPath is the gateway's path the IdP redirects people back to (the redirect_uri
// registered at the IdP is gateway.public_url + CallbackPath).
const CallbackPath = "/signin/callback"

// ssoListed says whether authn.backends lists the sso backend itself; otherwise sso.issuer
// adds it at the end of the chain, named "sso".
func (c *Config) ssoListed() bool {
	return slices.ContainsFunc(c.Authn.Backends, func(b backend.Spec) bool { return b.Type == sso.Backend })
}

// ssoBackendName is the chain's name of the sso backend: the listed one's, else "sso".
func (c *Config) ssoBackendName() string {
	for _, b := range c.Authn.Backends {
		if b.Type == sso.Backend {
			return b.Name
		}
	}
	return sso.Backend
}

// ssoParts is the IdP and the directory of its people, when sso.issuer is set.
type ssoParts struct {
	provider  *sso.Provider
	directory *ssoaccounts.Directory
	// ended is set once the account service exists: Directory's Ended calls it.
	ended func(ctx context.Context, subject, reason string)
}

// newSSO opens the relying party for the configured IdP and the directory over st's SSO
// accounts. It does not reach the IdP (discovery happens at the first sign-in).
func (a *App) newSSO(st storage.Store) (*ssoParts, error) {
	log := a.log.With("component", "sso")
	p, err := sso.New(a.cfg.SSO.Config, sso.Options{
		RedirectURL: strings.TrimSuffix(a.cfg.Gateway.PublicURL, "/") + CallbackPath,
		Now:         a.now, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	parts := &ssoParts{provider: p}
	parts.directory = ssoaccounts.NewDirectory(ssoaccounts.DirectoryOptions{
		Store: st.SSOAccounts(), IdP: p, Interval: p.Config().RevalidateInterval.D(), Now: a.now, Logger: log,
		Ended: func(ctx context.Context, subject, reason string) {
			if parts.ended != nil {
				parts.ended(ctx, subject, reason)
			}
		},
	})
	return parts, nil
}

// startAccount serves the device flow (DeviceAuthorizationService) and people's own
// accounts (AccountService) on the services' listener, for the gateway. password is the
// lockout-guarded chain (a sign-in on the pages is a login); ss is nil without sso.issuer.
func (a *App) startAccount(st storage.Store, ch *authn.Chain, password authn.Authenticator, patm *pats.Manager, ss *ssoParts) {
	log := a.log.With("component", "authn")
	ssoName := a.cfg.ssoBackendName()
	devices := device.NewManager(st.Devices(), device.Options{Now: a.now, Logger: log,
		KnownService: func(s string) bool { return slices.Contains(a.cfg.Gateway.Services, s) }})
	var ssoMaxTTL time.Duration
	if ss != nil {
		ssoMaxTTL = ss.provider.Config().SessionMaxTTL.D() // defaults applied
	}
	issue := func(ctx context.Context, d device.Authorization, remoteAddr string) (string, identity.Identity, error) {
		var maxTTL time.Duration
		if d.Backend == ssoName {
			maxTTL = ssoMaxTTL
		}
		return a.issueDeviceSession(ctx, ch, d, remoteAddr, maxTTL)
	}
	a.register("authn", &authnv1.DeviceAuthorizationService_ServiceDesc, device.NewServer(devices, issue, log))

	o := account.Options{Logger: log, Now: a.now, WebSessions: st.WebSessions(), Sessions: a.sessions,
		Devices: devices, Password: password, Resolver: ch, SSOBackend: ssoName, SessionEvent: a.sessionEvent}
	if patm != nil {
		o.PATs, o.PATMaxTTL = patm, a.cfg.SSO.PAT.MaxTTL.D()
	}
	if ss != nil {
		o.SSO, o.Directory = ss.provider, ss.directory
	}
	srv := account.NewServer(o)
	if ss != nil {
		ss.ended = srv.EndAccount
	}
	a.register("authn", &authnv1.AccountService_ServiceDesc, srv)
}

// issueDeviceSession turns an approved device flow into a refresh session of the person who
// approved it, re-read now: an account gone, disabled or with another credential since the
// approval gets none (device.ErrAccountEnded). maxTTL (sso.session_max_ttl for an IdP
// person, else 0) bounds the session.
func (a *App) issueDeviceSession(ctx context.Context, ch *authn.Chain, d device.Authorization, remoteAddr string, maxTTL time.Duration) (string, identity.Identity, error) {
	id, err := ch.Resolve(ctx, d.Backend, d.Subject)
	switch {
	case errors.Is(err, authn.ErrNoMatch), errors.Is(err, authn.ErrAccountDisabled):
		return "", identity.Identity{}, errors.Join(device.ErrAccountEnded, err)
	case err != nil:
		return "", identity.Identity{}, err
	}
	if id.Subject != d.Subject || subtle.ConstantTimeCompare([]byte(id.Fingerprint), []byte(d.Fingerprint)) != 1 {
		return "", identity.Identity{}, device.ErrAccountEnded
	}
	tok, _, err := a.sessions.IssueUntil(ctx, d.Subject, d.Backend, d.Fingerprint, d.Service, d.ClientID, remoteAddr, maxTTL)
	if err != nil {
		return "", identity.Identity{}, err
	}
	if a.sessionEvent != nil {
		a.sessionEvent(authn.EventCreated)
	}
	return tok, id, nil
}
