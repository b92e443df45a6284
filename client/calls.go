package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/privyhq/privy/api"
)

// Status reports the server's version and whether it is sealed. It needs
// no token.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// PutSecret stores value as the next version of the secret at path.
func (c *Client) PutSecret(ctx context.Context, path string, value []byte) (*api.SecretMeta, error) {
	var m api.SecretMeta
	return &m, c.do(ctx, http.MethodPut, "/v1/secrets/"+escapePath(path), api.PutSecretRequest{Value: value}, &m)
}

// GetSecret returns a version of a secret; version 0 means the latest.
func (c *Client) GetSecret(ctx context.Context, path string, version int) (*api.Secret, error) {
	p := "/v1/secrets/" + escapePath(path)
	if version > 0 {
		p += "?version=" + strconv.Itoa(version)
	}
	var s api.Secret
	return &s, c.do(ctx, http.MethodGet, p, nil, &s)
}

// ListSecrets lists the secrets under prefix that the token may list.
func (c *Client) ListSecrets(ctx context.Context, prefix string) ([]api.SecretMeta, error) {
	var l api.SecretList
	err := c.do(ctx, http.MethodGet, "/v1/secrets?prefix="+url.QueryEscape(prefix), nil, &l)
	return l.Secrets, err
}

// History lists the kept versions of a secret, oldest first.
func (c *Client) History(ctx context.Context, path string) ([]api.SecretMeta, error) {
	var h api.History
	err := c.do(ctx, http.MethodGet, "/v1/history/"+escapePath(path), nil, &h)
	return h.Versions, err
}

// DeleteSecret hides a secret, or with destroy erases all its versions.
func (c *Client) DeleteSecret(ctx context.Context, path string, destroy bool) error {
	p := "/v1/secrets/" + escapePath(path)
	if destroy {
		p += "?destroy=true"
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// CreateToken creates a token; the returned Token field is shown only once.
func (c *Client) CreateToken(ctx context.Context, req api.CreateTokenRequest) (*api.NewToken, error) {
	var t api.NewToken
	return &t, c.do(ctx, http.MethodPost, "/v1/tokens", req, &t)
}

// ListTokens lists the live tokens (without their secret parts).
func (c *Client) ListTokens(ctx context.Context) ([]api.TokenInfo, error) {
	var l api.TokenList
	err := c.do(ctx, http.MethodGet, "/v1/tokens", nil, &l)
	return l.Tokens, err
}

// TokenSelf describes the client's own token.
func (c *Client) TokenSelf(ctx context.Context) (*api.TokenInfo, error) {
	var t api.TokenInfo
	return &t, c.do(ctx, http.MethodGet, "/v1/tokens/self", nil, &t)
}

// RevokeToken revokes the token with the given accessor at once.
func (c *Client) RevokeToken(ctx context.Context, accessor string) error {
	return c.do(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(accessor), nil, nil)
}

// Unseal gives a sealed server its master key (base64) or passphrase.
func (c *Client) Unseal(ctx context.Context, req api.UnsealRequest) (*api.Status, error) {
	var s api.Status
	return &s, c.do(ctx, http.MethodPost, "/v1/sys/unseal", req, &s)
}

// RotateMasterKey replaces the master key, rewrapping every data key.
func (c *Client) RotateMasterKey(ctx context.Context, req api.RotateRequest) (*api.RotateResult, error) {
	var r api.RotateResult
	return &r, c.do(ctx, http.MethodPost, "/v1/sys/rotate-master-key", req, &r)
}

// AuditVerify asks the server to verify its audit log's hash chain.
func (c *Client) AuditVerify(ctx context.Context) (*api.AuditVerifyResult, error) {
	var r api.AuditVerifyResult
	return &r, c.do(ctx, http.MethodGet, "/v1/audit/verify", nil, &r)
}

// AuditTail calls fn with each of the last n audit lines, and with follow
// keeps calling it with new lines until ctx is done or fn fails.
func (c *Client) AuditTail(ctx context.Context, n int, follow bool, fn func(line []byte) error) error {
	p := "/v1/audit?n=" + strconv.Itoa(n)
	if follow {
		p += "&follow=true"
	}
	resp, err := c.send(ctx, http.MethodGet, p, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 1 {
			if err := fn(line[:len(line)-1]); err != nil {
				return err
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// SSHPublicKey returns the public half of the OpenSSH private key stored at
// path. The private key stays in the server.
func (c *Client) SSHPublicKey(ctx context.Context, path string) (*api.SSHPublicKey, error) {
	var k api.SSHPublicKey
	return &k, c.do(ctx, http.MethodGet, "/v1/ssh/"+escapePath(path), nil, &k)
}

// SSHSign signs data with the private key stored at path, as an ssh-agent
// would (flags as in the agent protocol). The server audits each signature.
func (c *Client) SSHSign(ctx context.Context, path string, data []byte, flags uint32) (*api.SSHSignature, error) {
	var s api.SSHSignature
	return &s, c.do(ctx, http.MethodPost, "/v1/ssh/"+escapePath(path), api.SSHSignRequest{Data: data, Flags: flags}, &s)
}
