package build

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/servertest"
)

// testKey is an OpenSSH private key as privy stores it, and its public key.
type testKey struct {
	pem []byte
	pub ssh.PublicKey
}

// newTestKey makes an ed25519 or rsa key.
func newTestKey(t testing.TB, kind string) testKey {
	t.Helper()
	var priv any
	switch kind {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "rsa":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	default:
		t.Fatalf("unknown key kind %q", kind)
	}
	block, err := ssh.MarshalPrivateKey(priv, "privy test key")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{pem: pem.EncodeToMemory(block), pub: signer.PublicKey()}
}

// agentSockDir returns a short directory for unix sockets, whose paths are
// limited to 108 bytes (t.TempDir's are often longer).
func agentSockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pa-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// agentFixture is a server holding an ed25519 and an rsa key, and a
// keyAgent over both served on a socket.
type agentFixture struct {
	srv     *servertest.Server
	ed, rsa testKey
	sock    string
	as      *agentServer
	buildID string
	closed  bool // as was closed by the test
}

func startAgent(t *testing.T) *agentFixture {
	t.Helper()
	f := &agentFixture{srv: servertest.Start(t), ed: newTestKey(t, "ed25519"), rsa: newTestKey(t, "rsa"), buildID: "b-agenttest"}
	f.srv.Put(t, "git/ed", f.ed.pem)
	f.srv.Put(t, "git/rsa", f.rsa.pem)
	c := f.srv.Client(t, f.srv.Token(t, "read:git/**"), client.WithBuildID(f.buildID))
	ka, err := newKeyAgent(context.Background(), c, []SSHKey{{Path: "git/ed"}, {Path: "git/rsa"}})
	if err != nil {
		t.Fatalf("newKeyAgent: %v", err)
	}
	f.sock = filepath.Join(agentSockDir(t), "agent.sock")
	if f.as, err = serveAgent(f.sock, ka); err != nil {
		t.Fatalf("serveAgent: %v", err)
	}
	t.Cleanup(func() {
		if !f.closed {
			f.as.close()
		}
	})
	return f
}

func (f *agentFixture) dial(t *testing.T) agent.ExtendedAgent {
	t.Helper()
	conn, err := net.Dial("unix", f.sock)
	if err != nil {
		t.Fatalf("dialing the agent: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return agent.NewClient(conn)
}

// signs returns the ssh.sign audit lines.
func (f *agentFixture) signs(t *testing.T) []audit.Entry {
	var out []audit.Entry
	for _, e := range f.srv.Audit(t) {
		if e.Op == "ssh.sign" {
			out = append(out, e)
		}
	}
	return out
}

func TestAgentList(t *testing.T) {
	f := startAgent(t)
	keys, err := f.dial(t).List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []struct {
		pub     ssh.PublicKey
		comment string
	}{{f.ed.pub, "privy:git/ed"}, {f.rsa.pub, "privy:git/rsa"}}
	if len(keys) != len(want) {
		t.Fatalf("List: got %d keys, want %d", len(keys), len(want))
	}
	for i, w := range want {
		if got := string(keys[i].Marshal()); got != string(w.pub.Marshal()) {
			t.Errorf("key %d: got %s, want %s", i, ssh.FingerprintSHA256(keys[i]), ssh.FingerprintSHA256(w.pub))
		}
		if keys[i].Format != w.pub.Type() {
			t.Errorf("key %d: got format %q, want %q", i, keys[i].Format, w.pub.Type())
		}
		if keys[i].Comment != w.comment {
			t.Errorf("key %d: got comment %q, want %q", i, keys[i].Comment, w.comment)
		}
	}
}

func TestAgentSign(t *testing.T) {
	f := startAgent(t)
	ac := f.dial(t)
	tests := []struct {
		name       string
		key        testKey
		path       string
		flags      agent.SignatureFlags
		wantFormat string
	}{
		{"ed25519", f.ed, "git/ed", 0, ssh.KeyAlgoED25519},
		{"rsa sha1", f.rsa, "git/rsa", 0, ssh.KeyAlgoRSA},
		{"rsa-sha2-256", f.rsa, "git/rsa", agent.SignatureFlagRsaSha256, ssh.KeyAlgoRSASHA256},
		{"rsa-sha2-512", f.rsa, "git/rsa", agent.SignatureFlagRsaSha512, ssh.KeyAlgoRSASHA512},
		{"ed25519 ignores rsa flags", f.ed, "git/ed", agent.SignatureFlagRsaSha512, ssh.KeyAlgoED25519},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte("session data " + tt.name)
			var sig *ssh.Signature
			var err error
			// Flags 0 through Sign and through SignWithFlags.
			if tt.flags == 0 && i%2 == 0 {
				sig, err = ac.Sign(tt.key.pub, data)
			} else {
				sig, err = ac.SignWithFlags(tt.key.pub, data, tt.flags)
			}
			if err != nil {
				t.Fatalf("signing: %v", err)
			}
			if sig.Format != tt.wantFormat {
				t.Errorf("got signature format %q, want %q", sig.Format, tt.wantFormat)
			}
			if err := tt.key.pub.Verify(data, sig); err != nil {
				t.Errorf("the signature does not verify: %v", err)
			}
			if err := tt.key.pub.Verify([]byte("other data"), sig); err == nil {
				t.Errorf("the signature verifies other data")
			}
		})
	}

	// Each signature is one audit line, with the build's id.
	signs := f.signs(t)
	if len(signs) != len(tests) {
		t.Fatalf("got %d ssh.sign audit lines, want %d", len(signs), len(tests))
	}
	for i, e := range signs {
		if e.Path != tests[i].path || e.Outcome != audit.OutcomeOK || e.Extra["build"] != f.buildID {
			t.Errorf("audit line %d: got path %q, outcome %q, build %q; want %q, %q, %q",
				i, e.Path, e.Outcome, e.Extra["build"], tests[i].path, audit.OutcomeOK, f.buildID)
		}
	}
}

func TestAgentUnknownKey(t *testing.T) {
	f := startAgent(t)
	ac := f.dial(t)
	other := newTestKey(t, "ed25519")
	if sig, err := ac.Sign(other.pub, []byte("data")); err == nil {
		t.Errorf("Sign with a key the agent does not hold: got %v, want an error", sig)
	}
	if sig, err := ac.SignWithFlags(other.pub, []byte("data"), agent.SignatureFlagRsaSha256); err == nil {
		t.Errorf("SignWithFlags with a key the agent does not hold: got %v, want an error", sig)
	}
	if n := len(f.signs(t)); n != 0 {
		t.Errorf("got %d ssh.sign audit lines, want none: the agent must not ask the server", n)
	}
}

func TestAgentReadOnly(t *testing.T) {
	f := startAgent(t)
	ac := f.dial(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Add", func() error { return ac.Add(agent.AddedKey{PrivateKey: priv, Comment: "x"}) }},
		{"Remove", func() error { return ac.Remove(f.ed.pub) }},
		{"RemoveAll", ac.RemoveAll},
		{"Lock", func() error { return ac.Lock([]byte("pass")) }},
		{"Unlock", func() error { return ac.Unlock([]byte("pass")) }},
		{"Extension", func() error { _, err := ac.Extension("session-bind@openssh.com", nil); return err }},
	}
	for _, c := range calls {
		if err := c.call(); err == nil {
			t.Errorf("%s: got no error, want one", c.name)
		}
	}
	// The keys are still there, and still sign.
	keys, err := ac.List()
	if err != nil || len(keys) != 2 {
		t.Fatalf("List after the refused changes: got %d keys, %v; want 2", len(keys), err)
	}
	if _, err := ac.Sign(f.ed.pub, []byte("data")); err != nil {
		t.Errorf("Sign after Lock: got %v, want a signature", err)
	}
}

func TestAgentConcurrentClients(t *testing.T) {
	f := startAgent(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ac := f.dial(t)
		key := f.ed
		if i%2 == 1 {
			key = f.rsa
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := []byte{byte(i)}
			sig, err := ac.SignWithFlags(key.pub, data, agent.SignatureFlagRsaSha256)
			if err == nil {
				err = key.pub.Verify(data, sig)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent signature: %v", err)
		}
	}
	if got := len(f.signs(t)); got != n {
		t.Errorf("got %d ssh.sign audit lines, want %d", got, n)
	}
}

func TestAgentSocket(t *testing.T) {
	f := startAgent(t)
	fi, err := os.Stat(f.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: got mode %v, want a socket with mode 0600", fi.Mode())
	}

	ac := f.dial(t) // a connection left open over close
	if _, err := ac.List(); err != nil {
		t.Fatalf("List: %v", err)
	}
	done := make(chan struct{})
	go func() {
		f.as.close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("close did not return with a client connected")
	}
	f.closed = true

	if _, err := os.Stat(f.sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after close: stat %s: got %v, want it gone", f.sock, err)
	}
	if keys, err := ac.List(); err == nil {
		t.Errorf("List on a connection open over close: got %d keys, want an error", len(keys))
	}
	if conn, err := net.Dial("unix", f.sock); err == nil {
		conn.Close()
		t.Errorf("dialing after close: got a connection, want an error")
	}
}

// TestAgentCloseWhileDialing closes servers while clients keep connecting
// and hold their connections open: close must end every connection it
// accepted, including one accepted just as it closes (otherwise that one
// is served until the client hangs up, and close waits for it).
func TestAgentCloseWhileDialing(t *testing.T) {
	srv := servertest.Start(t)
	key := newTestKey(t, "ed25519")
	srv.Put(t, "git/ed", key.pem)
	ka, err := newKeyAgent(context.Background(), srv.Client(t, srv.Root), []SSHKey{{Path: "git/ed"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := agentSockDir(t)
	for round := range 100 {
		sock := filepath.Join(dir, "a.sock")
		as, err := serveAgent(sock, ka)
		if err != nil {
			t.Fatalf("round %d: serveAgent: %v", round, err)
		}
		// Each dialer keeps its connections open and goes on dialing
		// until the server is closed, which happens while they dial.
		stop := make(chan struct{})
		var dialers sync.WaitGroup
		var dialed atomic.Int64
		for range 4 {
			dialers.Add(1)
			go func() {
				defer dialers.Done()
				var open []net.Conn
				defer func() {
					for _, c := range open {
						c.Close()
					}
				}()
				for len(open) < 1000 {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.Dial("unix", sock)
					if err != nil {
						continue
					}
					open = append(open, c)
					dialed.Add(1)
				}
				<-stop
			}()
		}
		for dialed.Load() < 100 {
			time.Sleep(100 * time.Microsecond)
		}
		done := make(chan struct{})
		go func() { as.close(); close(done) }()
		select {
		case <-done:
			close(stop)
			dialers.Wait()
		case <-time.After(5 * time.Second):
			close(stop)
			dialers.Wait() // hanging up lets close return
			<-done
			t.Fatalf("round %d: close did not return while a client held a connection it had accepted", round)
		}
	}
}

func TestNewKeyAgentErrors(t *testing.T) {
	srv := servertest.Start(t)
	key := newTestKey(t, "ed25519")
	srv.Put(t, "git/ed", key.pem)
	srv.Put(t, "git/plain", []byte("PLAIN-VALUE-not-a-key"))
	srv.Put(t, "other/key", key.pem)
	c := srv.Client(t, srv.Token(t, "read:git/**"))
	tests := []struct {
		name string
		path string
		want error // nil: any error
	}{
		{"missing", "git/none", client.ErrNotFound},
		{"denied", "other/key", client.ErrPermissionDenied},
		{"not a key", "git/plain", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newKeyAgent(context.Background(), c, []SSHKey{{Path: "git/ed"}, {Path: tt.path}})
			if err == nil {
				t.Fatalf("newKeyAgent with %s: got no error", tt.path)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("newKeyAgent with %s: got %v, want %v", tt.path, err, tt.want)
			}
			checkNoValues(t, [][]byte{[]byte("PLAIN-VALUE-not-a-key"), key.pem}, err.Error())
		})
	}
}
