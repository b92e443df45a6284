// Package server implements privy's HTTP API under /v1/: secrets, tokens,
// master-key administration and the audit log, over a unix socket or TLS.
//
// Every request is authenticated (bearer token), authorized against the
// token's policy, and recorded as one audit line before its response is
// sent; a request whose audit line cannot be written fails. Secret values
// are sealed by package seal before they reach the store and appear in no
// log line and no error.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/store"
)

// Version is the server's version, reported by /v1/status.
var Version = "0.1.0-dev"

// Size limits for secret values.
const (
	DefaultMaxValueSize = 1 << 20
	MaxMaxValueSize     = 64 << 20
)

// Config is what a Server needs. Store and Audit are required.
type Config struct {
	Store     store.Store
	StoreName string // shown by /v1/status, e.g. "bolt:/var/lib/privy/privy.db"

	// Audit receives one entry per request. AuditFile, if set, is the file
	// behind it, which /v1/audit and /v1/audit/verify read.
	Audit     audit.Writer
	AuditFile string

	// Key is the master key; nil starts the server sealed.
	Key *seal.Key
	// KeyFile is where the key came from, if it came from a file; rotation
	// writes the new key there.
	KeyFile string
	// KeySource names where the key came from ("file", "env", "passphrase",
	// "dev"); shown by /v1/status.
	KeySource string

	// Containers identifies tokenless callers on the unix socket by their
	// peer credentials; nil serves tokens only.
	Containers Identifier

	MaxValueSize int // default DefaultMaxValueSize
	MaxVersions  int // default store.DefaultMaxVersions

	Logger *slog.Logger
	Now    func() time.Time
}

// Server serves the API. Create it with New.
type Server struct {
	cfg     Config
	started time.Time
	log     *slog.Logger
	now     func() time.Time

	// keyMu guards key. Requests that seal or open hold it for reading;
	// unseal and rotation hold it for writing, so no value is sealed with a
	// key that a concurrent rotation is replacing.
	keyMu sync.RWMutex
	key   *seal.Key

	tokens tokenCache
	subs   subscribers

	// streams is cancelled when Serve starts shutting down, to end
	// responses that would otherwise never finish (audit tail -f), which
	// a graceful shutdown waits for.
	streams     context.Context
	stopStreams context.CancelFunc
}

// New returns a Server for cfg. If cfg.Key is set it is checked against the
// store's key-check record, so a wrong key fails here with seal.ErrWrongKey.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if cfg.Audit == nil {
		return nil, errors.New("server: no audit log")
	}
	if cfg.MaxValueSize == 0 {
		cfg.MaxValueSize = DefaultMaxValueSize
	}
	if cfg.MaxValueSize < 0 || cfg.MaxValueSize > MaxMaxValueSize {
		return nil, fmt.Errorf("max value size %d out of range: use 1 to %d bytes", cfg.MaxValueSize, MaxMaxValueSize)
	}
	if cfg.MaxVersions == 0 {
		cfg.MaxVersions = store.DefaultMaxVersions
	}
	if cfg.MaxVersions < 0 {
		return nil, fmt.Errorf("max versions %d: must be at least 1", cfg.MaxVersions)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, started: cfg.Now()}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	if cfg.Key != nil {
		if err := checkKey(ctx, cfg.Store, cfg.Key); err != nil {
			return nil, err
		}
		s.key = cfg.Key
	}
	return s, nil
}

// Sealed reports whether the server still lacks its master key.
func (s *Server) Sealed() bool {
	s.keyMu.RLock()
	defer s.keyMu.RUnlock()
	return s.key == nil
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.handle("sys.status", s.status))
	mux.HandleFunc("POST /v1/sys/unseal", s.handle("sys.unseal", s.unseal))
	mux.HandleFunc("POST /v1/sys/rotate-master-key", s.handle("sys.rotate-master-key", s.rotate))

	mux.HandleFunc("PUT /v1/secrets/{path...}", s.handle("secret.put", s.putSecret))
	mux.HandleFunc("GET /v1/secrets/{path...}", s.handle("secret.get", s.getSecret))
	mux.HandleFunc("DELETE /v1/secrets/{path...}", s.handle("secret.delete", s.deleteSecret))
	mux.HandleFunc("GET /v1/secrets", s.handle("secret.list", s.listSecrets))
	mux.HandleFunc("GET /v1/history/{path...}", s.handle("secret.history", s.history))

	mux.HandleFunc("GET /v1/ssh/{path...}", s.handle("ssh.public-key", s.sshPublicKey))
	mux.HandleFunc("POST /v1/ssh/{path...}", s.handle("ssh.sign", s.sshSign))

	mux.HandleFunc("GET /v1/profiles", s.handle("profile.list", s.listProfiles))
	mux.HandleFunc("PUT /v1/profiles/{name}", s.handle("profile.put", s.putProfile))
	mux.HandleFunc("GET /v1/profiles/{name}", s.handle("profile.get", s.getProfile))
	mux.HandleFunc("DELETE /v1/profiles/{name}", s.handle("profile.delete", s.deleteProfile))
	mux.HandleFunc("POST /v1/profiles/{name}/render", s.handle("profile.render", s.renderProfile))
	mux.HandleFunc("POST /v1/profiles/{name}/oneshot", s.handle("profile.oneshot", s.createOneshot))
	mux.HandleFunc("GET /v1/profiles/{name}/watch", s.handle("profile.watch", s.watchProfile))

	mux.HandleFunc("POST /v1/tokens", s.handle("token.create", s.createToken))
	mux.HandleFunc("GET /v1/tokens", s.handle("token.list", s.listTokens))
	mux.HandleFunc("GET /v1/tokens/self", s.handle("token.self", s.tokenSelf))
	mux.HandleFunc("DELETE /v1/tokens/{accessor}", s.handle("token.revoke", s.revokeToken))

	mux.HandleFunc("GET /v1/audit", s.handle("audit.tail", s.auditTail))
	mux.HandleFunc("GET /v1/audit/verify", s.handle("audit.verify", s.auditVerify))

	mux.HandleFunc("/", s.handle("unknown", func(rq *request) (any, error) {
		return nil, badRequest(fmt.Sprintf("no such endpoint: %s %s", rq.r.Method, rq.r.URL.Path),
			"see docs/api.md for the endpoints under /v1/")
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux answers a path with an empty, "." or ".." segment with a
		// redirect to the cleaned path, unaudited, and clients follow it by
		// sending the same PUT or DELETE there: to another secret.
		if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && p != cleanPath(p) {
			s.handle(uncleanOp(r), s.refuseUncleanPath)(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanPath is the path ServeMux would redirect p to (as net/http's own
// cleanPath: path.Clean, keeping a trailing slash).
func cleanPath(p string) string {
	if p == "" || p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// uncleanOp names the operation a request with an unclean path asked for.
func uncleanOp(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/v1/history/") && r.Method == http.MethodGet:
		return "secret.history"
	case !strings.HasPrefix(r.URL.Path, "/v1/secrets/"):
		return "unknown"
	case r.Method == http.MethodGet:
		return "secret.get"
	case r.Method == http.MethodPut:
		return "secret.put"
	case r.Method == http.MethodDelete && r.URL.Query().Get("destroy") == "true":
		return "secret.destroy"
	case r.Method == http.MethodDelete:
		return "secret.delete"
	}
	return "unknown"
}

// refuseUncleanPath fails a request whose URL path has an empty, "." or
// ".." segment, naming the secret path when there is one.
func (s *Server) refuseUncleanPath(rq *request) (any, error) {
	if rq.entry.Op != "unknown" {
		_, p, _ := strings.Cut(strings.TrimPrefix(rq.r.URL.Path, "/v1/"), "/")
		rq.entry.Path = p
		if err := store.ValidatePath(p); err != nil {
			return nil, err
		}
	}
	return nil, badRequest(fmt.Sprintf("URL path %q has an empty, '.' or '..' segment", rq.r.URL.Path),
		"see docs/api.md for the endpoints under /v1/")
}

// currentKey returns the master key or errSealed. The caller must hold keyMu.
func (s *Server) currentKey() (*seal.Key, error) {
	if s.key == nil {
		return nil, errSealed
	}
	return s.key, nil
}
