package regclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/portcullis-dev/portcullis/internal/jwsshape"
)

// The names RFC 8693 gives the token exchange grant and the token types used with it.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken       = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
)

// MaxSubjectTokenBytes bounds what ReadSubjectToken reads: workload JWTs are one to a few
// kilobytes, and a token endpoint bounds its form too (Portcullis: gateway.max_query_bytes).
const MaxSubjectTokenBytes = 64 << 10

// ErrNotJWT: what was given as a subject token is not a compact JWS.
var ErrNotJWT = errors.New("not a JWT (three base64url parts separated by dots)")

// ReadSubjectToken reads a workload's JWT from r (a file a CI platform wrote, or standard
// input), with surrounding white space removed, for Request.SubjectToken. It refuses an empty
// input, one above MaxSubjectTokenBytes, and anything that is not shaped like a JWT, without
// saying what it read: the input may be a secret in the wrong place.
func ReadSubjectToken(r io.Reader) (string, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSubjectTokenBytes+1))
	if err != nil {
		return "", err
	}
	if len(data) > MaxSubjectTokenBytes {
		return "", fmt.Errorf("the subject token is longer than %d bytes", MaxSubjectTokenBytes)
	}
	tok := string(bytes.TrimSpace(data))
	switch {
	case tok == "":
		return "", errors.New("no subject token: the input is empty")
	case !jwsshape.Compact(tok):
		return "", fmt.Errorf("the subject token is %w", ErrNotJWT)
	}
	return tok, nil
}

// exchange is FetchToken's token exchange (RFC 8693): one POST of the subject token, no
// fallback. A GET with Basic would send the token as a password to a realm that did not
// say it takes one, and a realm that does not know the grant should say so (400
// unsupported_grant_type) rather than be talked round.
func (c *Client) exchange(ctx context.Context, res *Result, req Request) (tokenAnswer, error) {
	if !req.Credentials.Empty() {
		return tokenAnswer{}, errors.New("a subject token excludes other credentials: the token alone says who is asking")
	}
	if !jwsshape.Compact(req.SubjectToken) {
		return tokenAnswer{}, fmt.Errorf("the subject token is %w", ErrNotJWT)
	}
	tt := req.SubjectTokenType
	if tt == "" {
		tt = TokenTypeJWT
	}
	res.Grant = "token_exchange"
	return c.post(ctx, res, url.Values{"grant_type": {GrantTypeTokenExchange}, "subject_token": {req.SubjectToken},
		"subject_token_type": {tt}, "requested_token_type": {TokenTypeAccessToken}})
}
