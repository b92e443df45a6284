// Package client is the Go client of privy's HTTP API. The privy CLI uses
// it for everything it asks of a server.
//
// A Client talks to a server address: a unix socket path (the default,
// "/run/privy/privy.sock" or "unix:///path"), "https://host:port", or
// "http://127.0.0.1:port" for a server started with --insecure-loopback;
// or to several such addresses, separated by commas, failing over from one
// to the next when a server cannot be reached.
// Errors from the server are *Error values; test them with errors.Is
// against ErrNotFound, ErrPermissionDenied, ErrUnauthenticated, ErrSealed
// and the other sentinels.
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
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

// ConnectError means no server could be reached: every address tried
// failed before it answered.
type ConnectError struct {
	Addr  string    // the addresses tried, comma-separated, in the order tried
	Err   error     // the error of the last address tried
	Tried []Attempt // one per address tried, in order
}

// Attempt is one address a call tried and why it failed.
type Attempt struct {
	Addr string
	Err  error
}

func (e *ConnectError) Error() string {
	if len(e.Tried) <= 1 {
		return fmt.Sprintf("cannot reach the privy server at %s: %v", e.Addr, e.Err)
	}
	parts := make([]string, len(e.Tried))
	for i, a := range e.Tried {
		parts[i] = fmt.Sprintf("%s (%v)", a.Addr, a.Err)
	}
	return "cannot reach a privy server at " + strings.Join(parts, " or ")
}

func (e *ConnectError) Unwrap() error { return e.Err }

// RequestIDHeader is api.RequestIDHeader.
const RequestIDHeader = api.RequestIDHeader

// dialTimeout bounds connecting to one address, so that a host that does
// not answer at all hands the call to the next address.
const dialTimeout = 5 * time.Second

// Client calls a privy server, failing over between the addresses it was
// given. It is safe for concurrent use.
type Client struct {
	addr    string   // as given, for messages
	targets []target // in the order given
	cur     atomic.Int32
	token   string
	build   string
	hc      *http.Client
}

// target is one server address.
type target struct {
	addr string // as given
	base string // URL prefix, e.g. "http://privy"
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
// private CA or a client certificate); it applies to every https address.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.tls = c } }

// WithHTTPClient replaces the HTTP client entirely (its transport must
// reach every address).
func WithHTTPClient(hc *http.Client) Option { return func(o *options) { o.hc = hc } }

// New returns a Client for addr: one server address, or several separated
// by commas ("https://a:8420,https://b:8420"). Each call goes to the
// address that answered last; when it cannot be reached the call moves on
// to the next address, in order. A read, or a write the server can
// recognise when it is repeated (see RequestIDHeader), moves on even when
// the connection broke after it was sent.
func New(addr string, opts ...Option) (*Client, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	c := &Client{addr: addr, token: o.token, build: o.build}
	socks := map[string]string{} // URL host:port → socket path
	for i, a := range strings.Split(addr, ",") {
		a = strings.TrimSpace(a)
		switch {
		case a == "" && strings.Contains(addr, ","):
			return nil, fmt.Errorf("server address list %q has an empty entry", addr)
		case strings.HasPrefix(a, "https://"), strings.HasPrefix(a, "http://"):
			u, err := url.Parse(a)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("server address %q is not a URL; use https://host:port or a socket path", a)
			}
			c.targets = append(c.targets, target{addr: a, base: strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/")})
		default:
			path := strings.TrimPrefix(a, "unix://")
			if path == "" {
				return nil, errors.New("empty server address; use a socket path or https://host:port")
			}
			// Each socket gets a host name of its own, which the dialer
			// maps back to the socket.
			host := "privy"
			if i > 0 {
				host = "privy-" + strconv.Itoa(i)
			}
			socks[host+":80"] = path
			c.targets = append(c.targets, target{addr: a, base: "http://" + host})
		}
	}
	c.hc = o.hc
	if c.hc == nil {
		d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
				if path, ok := socks[address]; ok {
					return d.DialContext(ctx, "unix", path)
				}
				return d.DialContext(ctx, network, address)
			},
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			TLSClientConfig:     o.tls,
		}}
	}
	return c, nil
}

// Addr returns the address (or addresses) the client was created with.
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

// deduplicated reports whether the server recognises a repeat of the
// request by its RequestIDHeader: the writes of secrets, tokens and
// profiles, and per-run files. Other writes (unseal, master-key rotation,
// render, which may spend a ticket) are never sent twice.
func deduplicated(method, path string) bool {
	switch method {
	case http.MethodPut, http.MethodDelete:
		return true
	case http.MethodPost:
		return path == "/v1/tokens" || strings.HasPrefix(path, "/v1/profiles/") && strings.HasSuffix(path, "/oneshot")
	}
	return false
}

// send performs a request and returns the response of a successful call;
// error statuses become *Error. It tries the addresses in order, starting
// with the one that answered last, until one answers. A request that may
// have reached a server is sent to the next one only if it is a GET or
// carries a request id.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("encoding request: %w", err)
		}
	}
	// One id for the logical call, kept on every address it goes to. With
	// one address nothing is ever sent twice, so the server is spared the
	// bookkeeping.
	var reqID string
	if len(c.targets) > 1 && deduplicated(method, path) {
		reqID = newRequestID()
	}
	retryAfterSend := method == http.MethodGet || reqID != ""
	first := int(c.cur.Load())
	ce := &ConnectError{}
	for n := range len(c.targets) {
		i := (first + n) % len(c.targets)
		t := c.targets[i]
		// Whether the request may have reached the server: not if the
		// dial or the TLS handshake failed.
		var sent atomic.Bool
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }})
		req, err := c.newRequest(tctx, t, method, path, body, reqID)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err == nil {
			c.cur.Store(int32(i))
			return c.check(resp)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		ce.Tried = append(ce.Tried, Attempt{Addr: t.addr, Err: unwrapURLError(err)})
		if sent.Load() && !retryAfterSend {
			break // the server may have acted on it
		}
	}
	addrs := make([]string, len(ce.Tried))
	for i, a := range ce.Tried {
		addrs[i] = a.Addr
	}
	ce.Addr, ce.Err = strings.Join(addrs, ","), ce.Tried[len(ce.Tried)-1].Err
	return nil, ce
}

// newRequest builds the request for one address.
func (c *Client) newRequest(ctx context.Context, t target, method, path string, body []byte, reqID string) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.build != "" {
		req.Header.Set(api.BuildHeader, c.build)
	}
	if reqID != "" {
		req.Header.Set(RequestIDHeader, reqID)
	}
	return req, nil
}

// check turns an error status into *Error.
func (c *Client) check(resp *http.Response) (*http.Response, error) {
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

// newRequestID returns 128 random bits in hex.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
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
