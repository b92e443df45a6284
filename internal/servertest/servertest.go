// Package servertest starts a real privy server in the test process, on a
// unix socket, with an in-memory store and an audit log in a temporary
// directory, for the tests of packages that talk to one (build, and later
// the volume plugin and privy exec).
package servertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/store/memstore"
)

// Server is a running privy server.
type Server struct {
	Sock      string // the unix socket to reach it on
	Root      string // an admin token
	AuditPath string
	// Srv is the server itself, for in-process users such as the volume
	// plugin (Render, Subscribe).
	Srv *server.Server
}

// fsMu keeps directories from being made while ListenUnix has the umask
// changed (see server.ListenUnix).
var fsMu sync.Mutex

// Start starts a server that stops when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is Start with a chance to adjust the server's configuration
// (for example its container Identifier) before it starts.
func StartWith(t testing.TB, configure func(*server.Config)) *Server {
	t.Helper()
	ctx := context.Background()
	fsMu.Lock()
	dir, err := os.MkdirTemp("", "privy-st-")
	fsMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &Server{Sock: filepath.Join(dir, "privy.sock"), AuditPath: filepath.Join(dir, "audit.log")}
	raw, err := seal.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	if s.Root, err = server.Init(ctx, st, server.InitOptions{RawKey: raw}); err != nil {
		t.Fatalf("server.Init: %v", err)
	}
	alog, err := audit.Open(s.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{
		Store: st, StoreName: "memory", Audit: alog, AuditFile: s.AuditPath,
		KeySource: "env", Key: key,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	s.Srv = srv
	fsMu.Lock()
	ln, err := server.ListenUnix(s.Sock)
	fsMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, []net.Listener{ln}...) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		alog.Close()
	})
	return s
}

// Client returns a client with token tok ("" for none) and options.
func (s *Server) Client(t testing.TB, tok string, opts ...client.Option) *client.Client {
	t.Helper()
	if tok != "" {
		opts = append(opts, client.WithToken(tok))
	}
	c, err := client.New(s.Sock, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Put stores value at path as the admin.
func (s *Server) Put(t testing.TB, path string, value []byte) *api.SecretMeta {
	t.Helper()
	m, err := s.Client(t, s.Root).PutSecret(context.Background(), path, value)
	if err != nil {
		t.Fatalf("storing %s: %v", path, err)
	}
	return m
}

// Token creates a token with rules such as "read:app/**".
func (s *Server) Token(t testing.TB, rules ...string) string {
	t.Helper()
	nt, err := s.Client(t, s.Root).CreateToken(context.Background(), api.CreateTokenRequest{Rules: rules})
	if err != nil {
		t.Fatalf("creating a token: %v", err)
	}
	return nt.Token
}

// Audit returns the audit log's entries.
func (s *Server) Audit(t testing.TB) []audit.Entry {
	t.Helper()
	b, err := os.ReadFile(s.AuditPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Bytes(), err)
		}
		out = append(out, e)
	}
	return out
}
