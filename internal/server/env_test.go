package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/seal"
	"github.com/privyhq/privy/internal/server"
	"github.com/privyhq/privy/internal/store/memstore"
)

// env is one real privy server: a memstore, a master key, an audit log file
// and a slog buffer, served on a unix socket until the test ends. It keeps
// every secret value, token and error text the test met, so that cleanup
// can prove no value reached an error, a log line or the audit log.
type env struct {
	t         testing.TB
	srv       *server.Server
	store     *memstore.Store
	dir       string
	sock      string
	root      string // the root token from server.Init
	rawKey    []byte
	keyFile   string // set with envOptions.keyFile
	auditPath string
	clock     *clock
	logs      *syncBuffer
	stop      func() // shuts the server down; cleanup does it too

	mu     sync.Mutex
	values [][]byte // secret values, tokens and keys used
	texts  []string // error messages and hints returned to clients
}

type envOptions struct {
	sealed       bool // start the server without its key
	keyFile      bool // the key comes from Config.KeyFile
	maxValueSize int
	maxVersions  int
	sync         audit.SyncMode
	// wrapAudit replaces the audit writer the server gets.
	wrapAudit func(audit.Writer) audit.Writer
	// listeners are served beside the unix socket.
	listeners []net.Listener
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	dir := shortDir(t)
	ctx := context.Background()
	var err error
	e := &env{
		t:         t,
		store:     memstore.New(),
		dir:       dir,
		sock:      filepath.Join(dir, "privy.sock"),
		auditPath: filepath.Join(dir, "audit.log"),
		clock:     &clock{now: time.Now().UTC().Truncate(time.Second)},
		logs:      &syncBuffer{},
	}
	if e.rawKey, err = seal.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	e.note(e.rawKey, []byte(seal.EncodeKey(e.rawKey)))
	if o.keyFile {
		e.keyFile = filepath.Join(dir, "master.key")
		if err := seal.WriteKeyFile(e.keyFile, e.rawKey); err != nil {
			t.Fatal(err)
		}
	}
	if e.root, err = server.Init(ctx, e.store, server.InitOptions{RawKey: e.rawKey, Now: e.clock.Now()}); err != nil {
		t.Fatalf("server.Init: %v", err)
	}
	e.note([]byte(e.root))

	alog, err := audit.Open(e.auditPath, audit.WithSync(o.sync))
	if err != nil {
		t.Fatal(err)
	}
	var aw audit.Writer = alog
	if o.wrapAudit != nil {
		aw = o.wrapAudit(alog)
	}
	cfg := server.Config{
		Store:        e.store,
		StoreName:    "memory",
		Audit:        aw,
		AuditFile:    e.auditPath,
		KeyFile:      e.keyFile,
		KeySource:    "env",
		MaxValueSize: o.maxValueSize,
		MaxVersions:  o.maxVersions,
		Logger:       newLogger(e.logs),
		Now:          e.clock.Now,
	}
	if o.keyFile {
		cfg.KeySource = "file"
	}
	if !o.sealed {
		if cfg.Key, err = seal.NewKey(e.rawKey); err != nil {
			t.Fatal(err)
		}
	}
	if e.srv, err = server.New(ctx, cfg); err != nil {
		t.Fatalf("server.New: %v", err)
	}

	t.Cleanup(func() {
		if err := alog.Close(); err != nil && o.wrapAudit == nil {
			t.Errorf("closing audit log: %v", err)
		}
		e.checkHygiene()
	})
	e.stop = serve(t, e.srv, e.sock, o.listeners...)
	return e
}

// shortDir returns a new directory removed when the test ends. Its path is
// short: unix socket paths are limited to 108 bytes, which t.TempDir's
// test-named paths can exceed.
func shortDir(t testing.TB) string {
	t.Helper()
	fsMu.Lock()
	defer fsMu.Unlock()
	dir, err := os.MkdirTemp("", "privy-srv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fsMu keeps parallel tests from making directories while ListenUnix has
// changed the process umask to 0177, which would leave them without their
// x bits. Tests make directories only with shortDir.
var fsMu sync.Mutex

// serve serves srv on a unix socket at sock and on extra until the test
// ends or stop is called, and checks that it shut down cleanly.
func serve(t testing.TB, srv *server.Server, sock string, extra ...net.Listener) (stop func()) {
	t.Helper()
	fsMu.Lock()
	ln, err := server.ListenUnix(sock)
	fsMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, append([]net.Listener{ln}, extra...)...) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(stop)
	return stop
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// client returns a client of the env's socket with token tok ("" for none).
func (e *env) client(tok string) *client.Client {
	e.t.Helper()
	var opts []client.Option
	if tok != "" {
		opts = append(opts, client.WithToken(tok))
	}
	c, err := client.New(e.sock, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// value returns a fresh, recognisable secret value and remembers it.
func (e *env) value() []byte {
	b := make([]byte, 8)
	rand.Read(b)
	v := []byte("s3cret-" + hex.EncodeToString(b))
	e.note(v)
	return v
}

// note remembers secret values (and tokens, keys) that must never show up
// in an error, a log line or the audit log.
func (e *env) note(vs ...[]byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, v := range vs {
		if len(v) >= 8 { // shorter ones would match by accident
			e.values = append(e.values, bytes.Clone(v))
			hygiene.addValue(v)
		}
	}
}

// noteErr remembers the text a client was shown for err.
func (e *env) noteErr(err error) {
	if err == nil {
		return
	}
	texts := []string{err.Error()}
	var ce *client.Error
	if errors.As(err, &ce) {
		texts = append(texts, ce.Hint)
	}
	e.mu.Lock()
	e.texts = append(e.texts, texts...)
	e.mu.Unlock()
	hygiene.addText(texts...)
}

// put stores value at path with c and fails the test on error.
func (e *env) put(t testing.TB, c *client.Client, path string, value []byte) *api.SecretMeta {
	t.Helper()
	e.note(value)
	m, err := c.PutSecret(context.Background(), path, value)
	if err != nil {
		e.noteErr(err)
		t.Fatalf("PutSecret(%q): %v", path, err)
	}
	return m
}

// get reads a version of path with c and fails the test on error.
func (e *env) get(t testing.TB, c *client.Client, path string, version int) *api.Secret {
	t.Helper()
	s, err := c.GetSecret(context.Background(), path, version)
	if err != nil {
		e.noteErr(err)
		t.Fatalf("GetSecret(%q, %d): %v", path, version, err)
	}
	return s
}

// wantErr checks that err is a *client.Error matching want and returns it.
func (e *env) wantErr(t testing.TB, what string, err, want error) *client.Error {
	t.Helper()
	e.noteErr(err)
	var ce *client.Error
	if !errors.Is(err, want) || !errors.As(err, &ce) {
		t.Fatalf("%s: got error %v (%T), want %v", what, err, err, want)
	}
	return ce
}

// token creates a token with rules (and the other fields of req) using the
// root token, and returns it.
func (e *env) token(t testing.TB, req api.CreateTokenRequest) *api.NewToken {
	t.Helper()
	nt, err := e.client(e.root).CreateToken(context.Background(), req)
	if err != nil {
		e.noteErr(err)
		t.Fatalf("CreateToken(%v): %v", req.Rules, err)
	}
	e.note([]byte(nt.Token))
	return nt
}

func (e *env) tokenWith(t testing.TB, rules ...string) string {
	t.Helper()
	return e.token(t, api.CreateTokenRequest{Rules: rules}).Token
}

// raw sends a request the client package would never send, and returns the
// status and body without following redirects.
func (e *env) raw(t testing.TB, method, target, tok string, body []byte) (int, []byte) {
	t.Helper()
	hc := &http.Client{
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", e.sock)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://privy"+target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	var eb api.ErrorBody
	if json.Unmarshal(buf.Bytes(), &eb) == nil && eb.Error.Code != "" {
		e.mu.Lock()
		e.texts = append(e.texts, eb.Error.Message, eb.Error.Hint)
		e.mu.Unlock()
		hygiene.addText(eb.Error.Message, eb.Error.Hint)
	}
	return resp.StatusCode, buf.Bytes()
}

// auditLog returns the audit file's bytes.
func (e *env) auditLog() []byte {
	e.t.Helper()
	b, err := os.ReadFile(e.auditPath)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// auditEntries parses every line of the audit file.
func (e *env) auditEntries() []audit.Entry {
	e.t.Helper()
	var out []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(e.auditLog()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var en audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &en); err != nil {
			e.t.Fatalf("audit line %q: %v", sc.Bytes(), err)
		}
		out = append(out, en)
	}
	return out
}

// peerActor is how the audit log names this process on the unix socket.
func peerActor() string {
	return fmt.Sprintf("peer:uid=%d,pid=%d", os.Getuid(), os.Getpid())
}

// checkHygiene fails the test if a secret value, token or key it used
// appears in an error text, the server's log or the audit log, or if a
// token string appears in the logs at all.
func (e *env) checkHygiene() {
	e.t.Helper()
	logs := e.logs.String()
	hygiene.addText(logs)
	auditLog, _ := os.ReadFile(e.auditPath)
	e.mu.Lock()
	defer e.mu.Unlock()
	places := map[string]string{"server log": logs, "audit log": string(auditLog)}
	for i, s := range e.texts {
		places[fmt.Sprintf("error text %d (%q)", i, s)] = s
	}
	for where, s := range places {
		for _, v := range e.values {
			if strings.Contains(s, string(v)) {
				e.t.Errorf("%s contains the secret value %q", where, v)
			}
		}
	}
	for _, where := range []string{"server log", "audit log"} {
		if strings.Contains(places[where], "pvt_") {
			e.t.Errorf("%s contains a token string (pvt_)", where)
		}
	}
}

// hygiene gathers every value and error text of the whole run; TestMain
// checks them against each other once all tests are done.
var hygiene collector

type collector struct {
	mu     sync.Mutex
	values [][]byte
	texts  []string
}

func (c *collector) addValue(v []byte) {
	c.mu.Lock()
	c.values = append(c.values, bytes.Clone(v))
	c.mu.Unlock()
}

func (c *collector) addText(s ...string) {
	c.mu.Lock()
	c.texts = append(c.texts, s...)
	c.mu.Unlock()
}

// leaks returns a description of every text that contains a value.
func (c *collector) leaks() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, s := range c.texts {
		for _, v := range c.values {
			if strings.Contains(s, string(v)) {
				out = append(out, fmt.Sprintf("secret value %q appears in %q", v, s))
			}
		}
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if leaks := hygiene.leaks(); len(leaks) > 0 {
		fmt.Fprintln(os.Stderr, "FAIL: secret values leaked into error texts or server logs:")
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "\t"+l)
		}
		code = 1
	}
	os.Exit(code)
}

// clock is a Config.Now the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a bytes.Buffer for a logger shared by server goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
