package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/server"
)

// TestListenUnix is not parallel: ListenUnix changes the process umask for
// a moment, and this test checks the modes it leaves.
func TestListenUnix(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "run", "privy.sock")
	ln, err := server.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
	// 0750 less the umask.
	if fi, err := os.Stat(filepath.Dir(sock)); err != nil || fi.Mode().Perm()&0o727 != 0o700 {
		t.Errorf("socket directory mode = %v, %v; want 0750 or less for group, nothing for others", fi.Mode(), err)
	}
	if _, err := server.ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "another server") {
		t.Errorf("second ListenUnix on a live socket: got %v, want an error naming another server", err)
	}

	// A socket left behind by a dead server is replaced.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket gone: %v", err)
	}
	ln, err = server.ListenUnix(sock)
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	ln.Close()

	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.ListenUnix(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("ListenUnix on a regular file: got %v, want an error", err)
	}
}

func TestListenTCPInsecureLoopback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := server.ListenTCP("127.0.0.1:0", server.TLSOptions{}); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Errorf("plaintext TCP without --insecure-loopback: got %v, want an error asking for TLS", err)
	}
	if _, err := server.ListenTCP("127.0.0.1:0", server.TLSOptions{CertFile: "c.pem"}); err == nil {
		t.Error("a certificate without its key: got no error")
	}
	if _, err := server.ListenTCP("127.0.0.1", server.TLSOptions{InsecureLoopback: true}); err == nil {
		t.Error("an address without a port: got no error")
	}
	ln, err := server.ListenTCP("127.0.0.1:0", server.TLSOptions{InsecureLoopback: true})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{listeners: []net.Listener{ln}})
	c, err := client.New("http://"+ln.Addr().String(), client.WithToken(e.root))
	if err != nil {
		t.Fatal(err)
	}
	v := e.value()
	if _, err := c.PutSecret(ctx, "app/tcp", v); err != nil {
		t.Fatal(err)
	}
	if s, err := c.GetSecret(ctx, "app/tcp", 0); err != nil || !bytes.Equal(s.Value, v) {
		t.Errorf("GetSecret over TCP = %v, %v; want %q", s, err, v)
	}
	anon, _ := client.New("http://" + ln.Addr().String())
	_, err = anon.GetSecret(ctx, "app/tcp", 0)
	e.wantErr(t, "no token over TCP", err, client.ErrUnauthenticated)
	entries := e.auditEntries()
	if got := entries[len(entries)-1].Actor; !strings.HasPrefix(got, "remote:127.0.0.1:") {
		t.Errorf("actor over TCP = %q, want remote:127.0.0.1:PORT", got)
	}
}

func TestListenTCPTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pki := newPKI(t)
	tests := []struct {
		name     string
		clientCA bool // the server asks for client certificates
		trust    bool // the client trusts the server's CA
		cert     bool // the client presents a certificate
		wantErr  bool
	}{
		{"tls", false, true, false, false},
		{"untrusted server", false, false, false, true},
		{"mtls", true, true, true, false},
		{"mtls without client cert", true, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := server.TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey}
			if tt.clientCA {
				opts.ClientCAFile = pki.caCert
			}
			ln, err := server.ListenTCP("127.0.0.1:0", opts)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, envOptions{listeners: []net.Listener{ln}})
			cfg := &tls.Config{MinVersion: tls.VersionTLS12}
			if tt.trust {
				cfg.RootCAs = pki.pool
			}
			if tt.cert {
				cfg.Certificates = []tls.Certificate{pki.client}
			}
			c, err := client.New("https://"+ln.Addr().String(), client.WithToken(e.root), client.WithTLSConfig(cfg))
			if err != nil {
				t.Fatal(err)
			}
			before := len(e.auditEntries())
			v := e.value()
			_, err = c.PutSecret(ctx, "app/tls", v)
			if tt.wantErr {
				var ce *client.ConnectError
				if !errors.As(err, &ce) {
					t.Fatalf("PutSecret: got %v (%T), want a *client.ConnectError", err, err)
				}
				e.noteErr(err)
				if n := len(e.auditEntries()); n != before {
					t.Errorf("a refused connection wrote %d audit lines", n-before)
				}
				return
			}
			if err != nil {
				t.Fatalf("PutSecret: %v", err)
			}
			if s, err := c.GetSecret(ctx, "app/tls", 0); err != nil || !bytes.Equal(s.Value, v) {
				t.Errorf("GetSecret over TLS = %v, %v; want %q", s, err, v)
			}
		})
	}
	if _, err := server.ListenTCP("127.0.0.1:0", server.TLSOptions{CertFile: pki.serverCert, KeyFile: pki.serverKey, ClientCAFile: pki.serverKey}); err == nil {
		t.Error("a client CA file without certificates: got no error")
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	caCert, serverCert, serverKey string
	pool                          *x509.CertPool
	client                        tls.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := shortDir(t)
	now := time.Now()
	caKey := newECKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "privy test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := newECKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: "privy test"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	p := &pki{
		caCert:     filepath.Join(dir, "ca.pem"),
		serverCert: filepath.Join(dir, "server.pem"),
		serverKey:  filepath.Join(dir, "server-key.pem"),
		pool:       x509.NewCertPool(),
	}
	p.pool.AddCert(ca)
	writePEM(t, p.caCert, "CERTIFICATE", caDER)
	der, k := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	writePEM(t, p.serverCert, "CERTIFICATE", der)
	writePEM(t, p.serverKey, "PRIVATE KEY", marshalKey(t, k))
	der, k = issue(3, x509.ExtKeyUsageClientAuth, nil)
	p.client = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
	return p
}

func newECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func marshalKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
