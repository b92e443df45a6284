package client_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
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
	"github.com/privyhq/privy/internal/store"
	"github.com/privyhq/privy/internal/store/memstore"
)

// node is one running privy server.
type node struct {
	sock      string
	auditPath string
	stop      func()
}

// fsMu keeps parallel tests from making directories while ListenUnix has
// changed the process umask.
var fsMu sync.Mutex

func tempDir(t *testing.T) string {
	t.Helper()
	fsMu.Lock()
	defer fsMu.Unlock()
	// Not t.TempDir: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "privy-fo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cluster is a store with its master key and root token, shared by the
// servers started on it, as privy servers sharing an etcd store are.
type cluster struct {
	st   store.Store
	raw  []byte
	root string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{st: memstore.New()}
	var err error
	if c.raw, err = seal.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if c.root, err = server.Init(context.Background(), c.st, server.InitOptions{RawKey: c.raw}); err != nil {
		t.Fatal(err)
	}
	return c
}

// start serves a server over the cluster's store on the unix socket sock
// (a new one if "") and on extra, until the test ends or stop is called.
func (c *cluster) start(t *testing.T, sock string, extra ...net.Listener) *node {
	t.Helper()
	dir := tempDir(t)
	if sock == "" {
		sock = filepath.Join(dir, "privy.sock")
	}
	n := &node{sock: sock, auditPath: filepath.Join(dir, "audit.log")}
	alog, err := audit.Open(n.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := seal.NewKey(c.raw)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(context.Background(), server.Config{
		Store: c.st, StoreName: "memory", Audit: alog, AuditFile: n.auditPath, KeySource: "env", Key: key,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	fsMu.Lock()
	ln, err := server.ListenUnix(sock)
	fsMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, append([]net.Listener{ln}, extra...)...) }()
	n.stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		alog.Close()
	})
	t.Cleanup(n.stop)
	return n
}

// ops returns the ops of n's audit lines, and how many are replays.
func (n *node) ops(t *testing.T) (ops []string, replays int) {
	t.Helper()
	b, err := os.ReadFile(n.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		ops = append(ops, e.Op)
		if e.Extra["replay"] == "true" {
			replays++
		}
	}
	return ops, replays
}

func newClient(t *testing.T, addr, tok string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(addr, append(opts, client.WithToken(tok))...)
	if err != nil {
		t.Fatalf("client.New(%q): %v", addr, err)
	}
	return c
}

// deadTCP returns an address nothing listens on.
func deadTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func versions(t *testing.T, c *client.Client, path string) int {
	t.Helper()
	h, err := c.History(context.Background(), path)
	if err != nil {
		t.Fatalf("History(%q): %v", path, err)
	}
	return len(h)
}

func TestFailoverStopFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := newCluster(t)
	a, b := cl.start(t, ""), cl.start(t, "")
	addr := a.sock + "," + b.sock
	c := newClient(t, addr, cl.root)
	if _, err := c.PutSecret(ctx, "app/db", []byte("v1")); err != nil {
		t.Fatalf("PutSecret with both up: %v", err)
	}
	if ops, _ := b.ops(t); len(ops) != 0 {
		t.Errorf("server B answered %v while A was up", ops)
	}

	a.stop()
	if _, err := c.PutSecret(ctx, "app/db", []byte("v2")); err != nil {
		t.Fatalf("PutSecret with A stopped: %v", err)
	}
	s, err := c.GetSecret(ctx, "app/db", 0)
	if err != nil || string(s.Value) != "v2" || s.Version != 2 {
		t.Fatalf("GetSecret with A stopped = %+v, %v; want version 2", s, err)
	}
	var lines int
	if err := c.AuditTail(ctx, 10, false, func([]byte) error { lines++; return nil }); err != nil || lines == 0 {
		t.Errorf("AuditTail with A stopped: %d lines, %v", lines, err)
	}
	if c.Addr() != addr {
		t.Errorf("Addr() = %q, want %q as given", c.Addr(), addr)
	}

	// The client stays with B: a server that comes back at A's address
	// (here one of another store, which does not know the token) is not
	// asked until B fails.
	other := newCluster(t)
	other.start(t, a.sock)
	if _, err := c.GetSecret(ctx, "app/db", 0); err != nil {
		t.Errorf("GetSecret after A's address came back: %v; want B's answer", err)
	}
	b.stop()
	if _, err := c.GetSecret(ctx, "app/db", 0); !errors.Is(err, client.ErrUnauthenticated) {
		t.Errorf("GetSecret with B stopped = %v, want A's new server's answer (unauthenticated)", err)
	}
}

func TestFailoverFirstDeadFromStart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := newCluster(t)
	b := cl.start(t, "")
	for _, dead := range []string{"http://" + deadTCP(t), filepath.Join(tempDir(t), "none.sock")} {
		c := newClient(t, dead+", "+b.sock, cl.root)
		if _, err := c.PutSecret(ctx, "app/db", []byte("v")); err != nil {
			t.Fatalf("PutSecret via %s,B: %v", dead, err)
		}
		if _, err := c.GetSecret(ctx, "app/db", 0); err != nil {
			t.Fatalf("GetSecret via %s,B: %v", dead, err)
		}
	}
}

func TestFailoverAllDead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	x, y := "http://"+deadTCP(t), filepath.Join(tempDir(t), "none.sock")
	c := newClient(t, x+","+y, "")
	for name, call := range map[string]func() error{
		"get": func() error { _, err := c.GetSecret(ctx, "app/db", 0); return err },
		"put": func() error { _, err := c.PutSecret(ctx, "app/db", []byte("v")); return err },
		"tail": func() error {
			return c.AuditTail(ctx, 1, false, func([]byte) error { return nil })
		},
	} {
		err := call()
		var ce *client.ConnectError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: got %v (%T), want a *client.ConnectError", name, err, err)
		}
		if len(ce.Tried) != 2 || ce.Tried[0].Addr != x || ce.Tried[1].Addr != y || ce.Addr != x+","+y {
			t.Errorf("%s: ConnectError = %+v, want both addresses tried in order", name, ce)
		}
		if msg := err.Error(); !strings.Contains(msg, x) || !strings.Contains(msg, y) {
			t.Errorf("%s: error %q does not name both addresses", name, msg)
		}
	}
	if _, err := client.New(x + ",," + y); err == nil {
		t.Error("an empty entry in the address list: got no error")
	}
}

// breakAfterSend forwards connections on a new unix socket to sock, but
// closes each as soon as the server starts answering: the server did the
// request and the client never hears of it.
func breakAfterSend(t *testing.T, sock string) string {
	t.Helper()
	path := filepath.Join(tempDir(t), "break.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer s.Close()
				go io.Copy(s, c)
				s.Read(make([]byte, 1))
			}()
		}
	}()
	return path
}

func TestFailoverAfterSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := newCluster(t)
	a, b := cl.start(t, ""), cl.start(t, "")
	c := newClient(t, breakAfterSend(t, a.sock)+","+b.sock, cl.root)

	// A write that A did is sent again to B with its request id, and B
	// answers with A's reply instead of writing again.
	m, err := c.PutSecret(ctx, "app/db", []byte("v"))
	if err != nil {
		t.Fatalf("PutSecret: %v", err)
	}
	if m.Version != 1 || versions(t, c, "app/db") != 1 {
		t.Errorf("PutSecret = version %d with %d versions kept, want one write", m.Version, versions(t, c, "app/db"))
	}
	if ops, replays := b.ops(t); replays != 1 {
		t.Errorf("server B audited %v with %d replays, want the PUT as a replay", ops, replays)
	}
	nt, err := c.CreateToken(ctx, api.CreateTokenRequest{Rules: []string{"read:app/**"}})
	if err != nil || nt.Token == "" {
		t.Fatalf("CreateToken: %+v, %v", nt, err)
	}
	if toks, _ := newClient(t, b.sock, cl.root).ListTokens(ctx); len(toks) != 2 {
		t.Errorf("tokens = %d, want 2 (root and one new)", len(toks))
	}
	if _, err := newClient(t, b.sock, nt.Token).GetSecret(ctx, "app/db", 0); err != nil {
		t.Errorf("the token B replayed does not work: %v", err)
	}
}

func TestNoFailoverAfterSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := newCluster(t)
	a, b := cl.start(t, ""), cl.start(t, "")
	proxy := breakAfterSend(t, a.sock)
	c := newClient(t, proxy+","+b.sock, cl.root)
	// A write without a request id may have been done: it is not sent
	// again, and the error says where it went.
	_, err := c.Unseal(ctx, api.UnsealRequest{})
	var ce *client.ConnectError
	if !errors.As(err, &ce) || len(ce.Tried) != 1 || ce.Addr != proxy {
		t.Fatalf("Unseal through a broken connection = %v, want a ConnectError for %s alone", err, proxy)
	}
	if ops, _ := b.ops(t); len(ops) != 0 {
		t.Errorf("server B answered %v, want nothing", ops)
	}
	// A read is asked again.
	if _, err := c.Status(ctx); err != nil {
		t.Errorf("Status through a broken connection: %v", err)
	}
}

// With one address nothing is sent twice, so writes carry no request id
// and the server keeps no record of them.
func TestRequestIDOnlyWithSeveralAddresses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl := newCluster(t)
	a, b := cl.start(t, ""), cl.start(t, "")
	for _, tt := range []struct {
		addr string
		want int
	}{{a.sock, 0}, {a.sock + "," + b.sock, 1}} {
		if _, err := newClient(t, tt.addr, cl.root).PutSecret(ctx, "app/db", []byte("v")); err != nil {
			t.Fatal(err)
		}
		recs, err := cl.st.ListRecords(ctx, "request")
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != tt.want {
			t.Errorf("client of %q: %d request records, want %d", tt.addr, len(recs), tt.want)
		}
	}
}

func TestFailoverTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	certFile, keyFile, pool := testPKI(t)
	cl := newCluster(t)
	var addrs []string
	var nodes []*node
	for range 2 {
		ln, err := server.ListenTCP("127.0.0.1:0", server.TLSOptions{CertFile: certFile, KeyFile: keyFile})
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, "https://"+ln.Addr().String())
		nodes = append(nodes, cl.start(t, "", ln))
	}
	c := newClient(t, strings.Join(addrs, ","), cl.root, client.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if _, err := c.PutSecret(ctx, "app/db", []byte("v")); err != nil {
		t.Fatalf("PutSecret over TLS: %v", err)
	}
	nodes[0].stop()
	if s, err := c.GetSecret(ctx, "app/db", 0); err != nil || string(s.Value) != "v" {
		t.Fatalf("GetSecret over TLS from the second server = %v, %v", s, err)
	}
	// Without the CA neither server is trusted, and the error names both.
	_, err := newClient(t, strings.Join(addrs, ","), cl.root).GetSecret(ctx, "app/db", 0)
	var ce *client.ConnectError
	if !errors.As(err, &ce) || len(ce.Tried) != 2 {
		t.Errorf("GetSecret without the CA = %v, want a ConnectError naming both addresses", err)
	}
}

// testPKI writes a certificate for 127.0.0.1, signed by a new CA, and its
// key, and returns their files and a pool trusting the CA.
func testPKI(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	dir := tempDir(t)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "privy test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "privy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool
}
