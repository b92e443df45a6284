// Package client is the Go client of privy's HTTP API. The privy CLI uses
// it for everything it asks of a server.
//
// A Client talks to one server address: a unix socket path (the default,
// "/run/privy/privy.sock" or "unix:///path"), "https://host:port", or
// "http://127.0.0.1:port" for a server started with --insecure-loopback.
// Errors from the server are *Error values; test them with errors.Is
// against ErrNotFound, ErrPermissionDenied, ErrUnauthenticated, ErrSealed
// and the other sentinels.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/privyhq/privy/api"
)

// Sentinels matched by *Error through errors.Is.
var (
	ErrInvalid          = errors.New("invalid request")
	ErrUnauthenticated  = errors.New("unauthenticated")
	ErrPermissionDenied = errors.New("permission denied")
	ErrNotFound         = errors.New("not found")
	ErrConflict         = errors.New("conflict")
	ErrTooLarge         = errors.New("too large")
	ErrSealed           = errors.New("sealed")
	ErrInternal         = errors.New("internal server error")
)

var codeErrors = map[string]error{
	api.CodeInvalid:          ErrInvalid,
	api.CodeUnauthenticated:  ErrUnauthenticated,
	api.CodePermissionDenied: ErrPermissionDenied,
	api.CodeNotFound:         ErrNotFound,
	api.CodeConflict:         ErrConflict,
	api.CodeTooLarge:         ErrTooLarge,
	api.CodeSealed:           ErrSealed,
	api.CodeInternal:         ErrInternal,
}

// Error is an error answered by the server.
type Error struct {
	Status     int    // HTTP status
	RequestID  string // the server's id for this request, for its log
	Code       string // one of the api.Code constants
	Message    string
	Hint       string // what to do about it, if the server knows
	Capability string // for permission_denied: the missing capability
	Path       string // for permission_denied: the path it was missing on
}

func (e *Error) Error() string { return e.Message }

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool { return codeErrors[e.Code] == target }

// ConnectError means the server could not be reached at all.
type ConnectError struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cannot reach the privy server at %s: %v", e.Addr, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Client calls one privy server. It is safe for concurrent use.
type Client struct {
	addr  string // as given, for messages
	base  string // URL prefix, e.g. "http://privy"
	token string
	build string
	hc    *http.Client
}

// Option configures a Client.
type Option func(*options)

type options struct {
	token string
	build string
	tls   *tls.Config
	hc    *http.Client
}

// WithToken sets the bearer token sent with every request.
func WithToken(tok string) Option { return func(o *options) { o.token = tok } }

// WithBuildID names the build the client's requests are made for; the
// server records it in their audit lines.
func WithBuildID(id string) Option { return func(o *options) { o.build = id } }

// WithTLSConfig sets the TLS configuration for https addresses (for a
// private CA or a client certificate).
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithHTTPClient replaces the HTTP client entirely (its transport must
// reach addr).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// New returns a Client for addr.
func New(addr string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{addr: addr, token: o.token, build: o.build}
	tr := &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		TLSClientConfig:     o.tls,
	}
	switch {
	case strings.HasPrefix(addr, "https://"), strings.HasPrefix(addr, "http://"):
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("server address %q is not a URL; use https://host:port or a socket path", addr)
		}
		c.base = strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")
	default:
		path := strings.TrimPrefix(addr, "unix://")
		if path == "" {
			return nil, errors.New("empty server address; use a socket path or https://host:port")
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
		c.base = "http://privy"
	}
	c.hc = o.hc
	if c.hc == nil {
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// Addr returns the address the client was created with.
func (c *Client) Addr() string { return c.addr }

// do sends a request with an optional JSON body and decodes a JSON reply
// into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the server's reply to %s %s: %w", method, path, err)
	}
	return nil
}

// send performs a request and returns the response of a successful call;
// error statuses become *Error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.build != "" {
		req.Header.Set(api.BuildHeader, c.build)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &ConnectError{Addr: c.addr, Err: unwrapURLError(err)}
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var eb api.ErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil || eb.Error.Code == "" {
		e.Code, e.Message = api.CodeInternal, fmt.Sprintf("server answered %s", resp.Status)
		return nil, e
	}
	x := eb.Error
	e.Code, e.Message, e.Hint, e.Capability, e.Path = x.Code, x.Message, x.Hint, x.Capability, x.Path
	return nil, e
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// escapePath escapes each segment of a secret path for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
