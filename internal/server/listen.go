package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// peerKey is the context key of the unix socket caller's credentials.
type peerKey struct{}

// Peer is the kernel-reported identity of a caller on the unix socket.
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

// PeerFrom returns the unix socket caller's credentials, if any.
func PeerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// connContext records SO_PEERCRED of unix socket connections in the
// request context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid})
}

// actorOf names the caller for the audit log before authentication.
func actorOf(r *http.Request) string {
	if p, ok := PeerFrom(r.Context()); ok {
		return "peer:uid=" + strconv.FormatUint(uint64(p.UID), 10) + ",pid=" + strconv.FormatInt(int64(p.PID), 10)
	}
	return "remote:" + r.RemoteAddr
}

// ListenUnix listens on a unix socket at path with mode 0660, creating its
// directory (0750) if needed. A stale socket file that no server answers on
// is replaced; a live one is an error.
func ListenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listening on %s: the path exists and is not a socket; remove it or choose another --socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listening on %s: another server is already answering there; stop it or choose another --socket", path)
		}
		os.Remove(path)
	}
	// The socket is created with the process umask (connecting needs write
	// permission, which the usual umask 022 withholds from group and other)
	// and set to 0660 at once. The umask is not changed here: it is
	// process-wide and would race with files other goroutines create.
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting mode of %s: %w", path, err)
	}
	return ln, nil
}

// TLSOptions configure the TCP listener.
type TLSOptions struct {
	CertFile, KeyFile string
	ClientCAFile      string // if set, clients must present a certificate it signed
	InsecureLoopback  bool   // allow plaintext on a loopback address
}

// ListenTCP listens on addr with TLS, or in plaintext only when addr is a
// loopback address and opts.InsecureLoopback is set.
func ListenTCP(addr string, opts TLSOptions) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w (want host:port)", addr, err)
	}
	if opts.CertFile == "" && opts.KeyFile == "" {
		if !opts.InsecureLoopback {
			return nil, fmt.Errorf("listen address %s needs TLS: give --tls-cert and --tls-key (or --insecure-loopback on 127.0.0.1 for local testing)", addr)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("--insecure-loopback allows only loopback addresses, not %q; give --tls-cert and --tls-key", host)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		return ln, nil
	}
	if opts.CertFile == "" || opts.KeyFile == "" {
		return nil, errors.New("TLS needs both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("loading TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if opts.ClientCAFile != "" {
		pem, err := os.ReadFile(opts.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("reading client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client CA %s holds no PEM certificate", opts.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	ln, err := tls.Listen("tcp", addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves the API on every listener until ctx is done, then shuts down
// gracefully, letting requests in flight finish for up to 10 seconds.
func (s *Server) Serve(ctx context.Context, lns ...net.Listener) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ConnContext:       connContext,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	hs.RegisterOnShutdown(s.stopStreams)
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- hs.Serve(ln) }()
	}
	select {
	case err := <-errc:
		hs.Close()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	return nil
}

// Harden marks the process non-dumpable, so that no core dump or ptrace by
// another user's process can read secrets from its memory.
func Harden() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("marking the process non-dumpable: %w", err)
	}
	return nil
}
