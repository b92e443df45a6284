package testenv

import (
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
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultEtcd is the etcd server Etcd runs unless PRIVY_TEST_ETCD names
// another: Debian's etcd-server (3.4).
const DefaultEtcd = "/usr/bin/etcd"

// etcdHint tells a developer how to get what Etcd needs.
const etcdHint = SetupHint + " (it installs etcd-server)"

// etcdStartTimeout bounds how long a cluster may take to become healthy.
const etcdStartTimeout = 30 * time.Second

// EtcdCluster is a real etcd cluster of one or three members on 127.0.0.1,
// each with its own client and peer port and a data directory under the
// test's temporary folder. Its members are stopped, by their pids, when the
// test ends.
type EtcdCluster struct {
	Members []*EtcdMember
	// ClientTLS is the client configuration (CA and client certificate)
	// of a cluster started by EtcdTLS; nil otherwise.
	ClientTLS *tls.Config
}

// EtcdMember is one etcd process of a cluster. Stop, Kill, Start, Pause and
// Resume act on this process only.
type EtcdMember struct {
	Name      string
	ClientURL string // http://127.0.0.1:PORT (https with EtcdTLS)
	PeerURL   string // http://127.0.0.1:PORT
	DataDir   string

	bin, logPath string
	args         []string
	http         *http.Client // for /health and status; its timeout keeps a paused member from hanging a caller

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil when not running
	exited chan struct{} // closed when cmd has been waited for
	paused bool
}

// Etcd starts an etcd cluster of members (1 or 3) members and waits until
// every member answers as healthy. It runs DefaultEtcd, or the etcd that
// PRIVY_TEST_ETCD names, and skips (fails, in CI) the test if that is
// missing or does not start. The members use etcd's defaults otherwise
// (fsync on, --max-txn-ops 128, --max-request-bytes 1.5 MiB, elections
// after 1s without a heartbeat).
func Etcd(t testing.TB, members int) *EtcdCluster {
	t.Helper()
	return etcd(t, members, false)
}

// EtcdTLS is Etcd with clients served over TLS only: the members present a
// certificate for 127.0.0.1 from a new CA and require client certificates
// from it. ClientTLS holds what a client needs.
func EtcdTLS(t testing.TB, members int) *EtcdCluster {
	t.Helper()
	return etcd(t, members, true)
}

func etcd(t testing.TB, members int, withTLS bool) *EtcdCluster {
	t.Helper()
	if members != 1 && members != 3 {
		t.Fatalf("testenv.Etcd: got %d members, want 1 or 3", members)
	}
	bin := os.Getenv("PRIVY_TEST_ETCD")
	if bin == "" {
		bin = DefaultEtcd
	}
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, bin, etcdHint, err)
	}
	var lastErr error
	// Another process may take a free port before etcd binds it: retry
	// with new ports and new data directories.
	for range 3 {
		c, err := startEtcd(t, bin, members, withTLS)
		if err == nil {
			return c
		}
		lastErr = err
	}
	Unavailable(t, "etcd", etcdHint, lastErr)
	return nil
}

// startEtcd starts a new cluster and waits for it; on failure it stops
// what it started.
func startEtcd(t testing.TB, bin string, n int, withTLS bool) (*EtcdCluster, error) {
	t.Helper()
	c := &EtcdCluster{}
	dir := t.TempDir()
	scheme, client, tlsArgs := "http", &http.Client{Timeout: 2 * time.Second}, []string(nil)
	if withTLS {
		files, err := writeEtcdCerts(dir)
		if err != nil {
			return nil, fmt.Errorf("making certificates for etcd: %w", err)
		}
		c.ClientTLS = files.client
		client.Transport = &http.Transport{TLSClientConfig: files.client.Clone()}
		scheme = "https"
		tlsArgs = []string{"--cert-file", files.cert, "--key-file", files.key, "--trusted-ca-file", files.ca, "--client-cert-auth"}
	}
	token := fmt.Sprintf("privy-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	var initial []string
	for i := range n {
		cport, err := freePort()
		if err != nil {
			return nil, err
		}
		pport, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &EtcdMember{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, cport),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", pport),
			DataDir:   filepath.Join(dir, fmt.Sprintf("m%d", i)),
			bin:       bin,
			logPath:   filepath.Join(dir, fmt.Sprintf("m%d.log", i)),
			http:      client,
		}
		initial = append(initial, m.Name+"="+m.PeerURL)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.args = append([]string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--logger", "zap",
			"--log-outputs", "stderr",
		}, tlsArgs...)
	}
	t.Cleanup(c.stopAll)
	for _, m := range c.Members {
		if err := m.start(); err != nil {
			c.stopAll()
			return nil, err
		}
	}
	if err := c.waitHealthy(etcdStartTimeout); err != nil {
		c.stopAll()
		return nil, err
	}
	return c, nil
}

// Endpoints returns the client URLs of every member.
func (c *EtcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL)
	}
	return eps
}

// Leader waits up to 15 seconds for a running member that reports itself as
// the leader and returns its index in Members. It fails t if none does.
func (c *EtcdCluster) Leader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for {
		for i, m := range c.Members {
			if !m.Running() {
				continue
			}
			st, err := m.status()
			if err != nil {
				lastErr = err
				continue
			}
			if st.Leader != "" && st.Leader != "0" && st.Leader == st.Header.MemberID {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no etcd member reports itself as the leader within 15s (last error: %v)\n%s", lastErr, c.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitHealthy waits up to timeout until every running, unpaused member
// answers as healthy, and fails t otherwise.
func (c *EtcdCluster) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	if err := c.waitHealthy(timeout); err != nil {
		t.Fatalf("%v\n%s", err, c.LogTail())
	}
}

func (c *EtcdCluster) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, m := range c.Members {
		for {
			running, crashed, paused := m.state()
			if crashed {
				return fmt.Errorf("etcd member %s exited on its own\n%s", m.Name, m.LogTail())
			}
			if !running || paused {
				break // stopped or paused on purpose
			}
			err := m.health()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("etcd member %s not healthy within %v: %v\n%s", m.Name, timeout, err, m.LogTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// LogTail returns the last lines of every member's log, for failure
// messages.
func (c *EtcdCluster) LogTail() string {
	var b strings.Builder
	for _, m := range c.Members {
		b.WriteString(m.LogTail())
		b.WriteByte('\n')
	}
	return b.String()
}

// stopAll stops every member; it runs when the test ends.
func (c *EtcdCluster) stopAll() {
	for _, m := range c.Members {
		m.stop(10 * time.Second)
	}
}

// Start starts the member again with its data directory, on its ports. It
// fails the test if the member is running or does not start.
func (m *EtcdMember) Start(t testing.TB) {
	t.Helper()
	if err := m.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop ends the member with SIGTERM (SIGKILL after 10 seconds) and waits
// for it to exit.
func (m *EtcdMember) Stop() { m.stop(10 * time.Second) }

// Kill ends the member with SIGKILL, as a crash would, and waits for it.
func (m *EtcdMember) Kill() { m.stop(0) }

// Pause stops the member's process with SIGSTOP: it holds its ports but
// answers nothing, as a partitioned or hung machine would.
func (m *EtcdMember) Pause(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		t.Fatalf("pausing etcd member %s: it is not running", m.Name)
	}
	if err := m.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("pausing etcd member %s: %v", m.Name, err)
	}
	m.paused = true
}

// Resume continues a paused member with SIGCONT.
func (m *EtcdMember) Resume(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		t.Fatalf("resuming etcd member %s: it is not running", m.Name)
	}
	if err := m.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("resuming etcd member %s: %v", m.Name, err)
	}
	m.paused = false
}

// Running reports whether the member's process is alive (paused or not).
func (m *EtcdMember) Running() bool {
	running, _, _ := m.state()
	return running
}

// state reports whether the process runs, whether it exited without being
// stopped through m, and whether it is paused.
func (m *EtcdMember) state() (running, crashed, paused bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false, false, false
	}
	select {
	case <-m.exited:
		return false, true, false
	default:
		return true, false, m.paused
	}
}

// Pid returns the member's process id, or 0 if it is not running.
func (m *EtcdMember) Pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

// LogTail returns the last lines of the member's log.
func (m *EtcdMember) LogTail() string {
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return fmt.Sprintf("(no log of etcd member %s: %v)", m.Name, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "etcd member " + m.Name + " log (" + m.logPath + "):\n" + strings.Join(lines, "\n")
}

func (m *EtcdMember) start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		select {
		case <-m.exited:
		default:
			return fmt.Errorf("starting etcd member %s: it is already running", m.Name)
		}
	}
	logFile, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(m.bin, m.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group keeps a terminal's ^C from reaching it before
	// the test's cleanup does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting etcd member %s: %w", m.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	m.cmd, m.exited, m.paused = cmd, exited, false
	return nil
}

// stop sends SIGTERM to the member's own process (after SIGCONT, should it
// be paused), then SIGKILL after grace, and waits for it to exit. A zero
// grace kills at once.
func (m *EtcdMember) stop(grace time.Duration) {
	m.mu.Lock()
	cmd, exited := m.cmd, m.exited
	m.cmd, m.exited, m.paused = nil, nil, false
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	if grace > 0 {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return
		case <-time.After(grace):
		}
	}
	_ = cmd.Process.Kill()
	<-exited
}

// health asks the member's /health endpoint, which answers true once the
// member has a leader and can serve requests.
func (m *EtcdMember) health() error {
	resp, err := m.http.Get(m.ClientURL + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var h struct {
		Health string `json:"health"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Health != "true" {
		return fmt.Errorf("etcd member %s: /health answered %s %s", m.Name, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// etcdStatus is the part of etcd's maintenance status the tests use; the
// JSON gateway spells 64-bit ids as strings.
type etcdStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

// status asks the member for its status through etcd's JSON gateway, which
// keeps the etcd client library out of every test that uses testenv.
func (m *EtcdMember) status() (etcdStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.ClientURL+"/v3/maintenance/status", strings.NewReader("{}"))
	if err != nil {
		return etcdStatus{}, err
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return etcdStatus{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return etcdStatus{}, fmt.Errorf("etcd member %s status: %s %s", m.Name, resp.Status, bytes.TrimSpace(body))
	}
	var st etcdStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return etcdStatus{}, fmt.Errorf("etcd member %s status: %w", m.Name, err)
	}
	if st.Header.MemberID == "" {
		return etcdStatus{}, errors.New("etcd member " + m.Name + " status: no member id")
	}
	return st, nil
}

// etcdCerts are the files an etcd serving TLS reads and the client
// configuration that trusts it.
type etcdCerts struct {
	ca, cert, key string
	client        *tls.Config
}

// writeEtcdCerts makes a CA, a server certificate for 127.0.0.1 and a
// client certificate, writes the CA and the server's pair to dir and
// returns them with a client configuration using the client's pair.
func writeEtcdCerts(dir string) (etcdCerts, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return etcdCerts{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "privy test etcd CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return etcdCerts{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return etcdCerts{}, err
	}
	leaf := func(serial int64, name string, usage ...x509.ExtKeyUsage) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  usage,
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
	}
	// etcd's JSON gateway connects to its own gRPC port with the server's
	// pair, so that must be good for clients too.
	serverCert, serverKey, err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return etcdCerts{}, err
	}
	clientCert, clientKey, err := leaf(3, "privy", x509.ExtKeyUsageClientAuth)
	if err != nil {
		return etcdCerts{}, err
	}
	files := etcdCerts{
		ca:   filepath.Join(dir, "ca.pem"),
		cert: filepath.Join(dir, "server.pem"),
		key:  filepath.Join(dir, "server-key.pem"),
	}
	for path, b := range map[string][]byte{
		files.ca:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		files.cert: serverCert,
		files.key:  serverKey,
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return etcdCerts{}, err
		}
	}
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		return etcdCerts{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	files.client = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	return files, nil
}
