package sso

import (
	"errors"
	"slices"
)

var (
	// ErrUnavailable: the IdP could not be asked (unreachable, a 5xx, an unusable discovery
	// document or key set, a refusal that is not about the account). A session is kept and
	// revalidated later.
	ErrUnavailable = errors.New("sso: identity provider unavailable")
	// ErrAccountEnded: the IdP refused the refresh token (invalid_grant: the account was
	// disabled, the consent or session revoked), or the person no longer meets the claims.
	// The session ends.
	ErrAccountEnded = errors.New("sso: account ended at the identity provider")
	// ErrInvalidToken: an ID token or logout token failed a check (see TokenError).
	ErrInvalidToken = errors.New("sso: invalid token")
	// ErrNotAllowed: a valid ID token whose person may not sign in here (the claims
	// requirements, the subject claim missing, a subject holding ':').
	ErrNotAllowed = errors.New("sso: not allowed to sign in")
	// ErrExchange: the IdP refused the authorization code (see OAuthError).
	ErrExchange = errors.New("sso: authorization code refused")
	// ErrNoRefreshToken: the IdP gave no refresh token, so the session could not be
	// revalidated; the IdP needs offline_access granted to the client.
	ErrNoRefreshToken = errors.New("sso: the identity provider gave no refresh token (is offline_access among the scopes and allowed for the client?)")
	// ErrState: the callback's state is not the one this sign-in sent.
	ErrState = errors.New("sso: state mismatch")
)

// TokenError says which check a token failed. Reason is our own text (never the token's
// contents or the IdP's words), safe to log.
type TokenError struct{ Reason string }

func (e *TokenError) Error() string { return "sso: invalid token: " + e.Reason }
func (e *TokenError) Unwrap() error { return ErrInvalidToken }

func tokenErr(reason string) error { return &TokenError{Reason: reason} }

// OAuthError is an error answer of the IdP's token endpoint. Only its RFC 6749 §5.2 code is
// kept (one of the registered codes, else "other"): error_description may quote what the
// client sent, so it is never read.
type OAuthError struct {
	Code   string
	Status int
}

func (e *OAuthError) Error() string { return "identity provider answered " + e.Code }

var oauthCodes = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope", "access_denied", "server_error", "temporarily_unavailable"}

func oauthCode(s string) string {
	if slices.Contains(oauthCodes, s) {
		return s
	}
	return "other"
}
