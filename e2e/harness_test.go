// Package e2e tests privy as users run it: a real `privy server` process
// with its own data directory and unix socket, driven by the privy CLI, the
// public client package and raw HTTP, and a real Docker Engine for builds.
//
// What it promises: every test starts the processes it needs and ends only
// those; values under test reach processes only through stdin or the
// environment, never argv; and no failure message ever prints a value (see
// redact).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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

	"github.com/privyhq/privy/client"
)

// privyBin is the privy binary TestMain builds once for the whole package.
var privyBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "privy-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// Servers started as another user (the non-dumpable check) must be
	// able to run the binary.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	privyBin = filepath.Join(dir, "privy")
	if err := buildPrivy(privyBin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building privy:", err)
		return 1
	}
	return m.Run()
}

// buildPrivy builds ./cmd/privy of the module this package belongs to.
func buildPrivy(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "" {
		return errors.New("not inside a Go module (go env GOMOD is empty)")
	}
	// Static, as `make build` makes it: containers run it as privy exec.
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/privy")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/privy: %w\n%s", err, b)
	}
	return nil
}

// --- values under test -------------------------------------------------

// redactions holds every value a test made, so failure messages (which may
// quote process output) can hide them.
var redactions struct {
	sync.Mutex
	values [][]byte
}

// newValue returns a random, distinctive secret value and registers it and
// its encodings for redaction. It never appears in argv or a log line of a
// test.
func newValue(kind string) string {
	v := "privy-e2e-" + kind + "-" + randHex(16)
	redactions.Lock()
	defer redactions.Unlock()
	for _, f := range leakForms([]byte(v)) {
		redactions.values = append(redactions.values, f.data)
	}
	return v
}

// redact replaces every registered value (and encoding) in s.
func redact(s string) string {
	redactions.Lock()
	defer redactions.Unlock()
	for _, v := range redactions.values {
		s = strings.ReplaceAll(s, string(v), "[REDACTED]")
	}
	return s
}

// hasValue reports whether any of args holds a registered value or
// encoding: tests use it to prove the argv they built is clean.
func hasValue(args []string) bool {
	redactions.Lock()
	defer redactions.Unlock()
	for _, a := range args {
		for _, v := range redactions.values {
			if strings.Contains(a, string(v)) {
				return true
			}
		}
	}
	return false
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// form is one way a value can be written down.
type form struct {
	name string
	data []byte
}

// leakForms returns value and the encodings a leak usually takes: base64
// (standard and URL, padded or not, and the part of each that does not
// depend on where the value starts inside a longer base64 text) and hex.
func leakForms(value []byte) []form {
	fs := []form{
		{"raw", value},
		{"base64", []byte(base64.StdEncoding.EncodeToString(value))},
		{"base64url", []byte(base64.URLEncoding.EncodeToString(value))},
		{"hex", []byte(hex.EncodeToString(value))},
		{"HEX", []byte(strings.ToUpper(hex.EncodeToString(value)))},
	}
	for shift := 0; shift < 3; shift++ {
		s := base64.StdEncoding.EncodeToString(append(make([]byte, shift), value...))
		// Drop the first quantum (it mixes in the bytes before the value)
		// and the last (it mixes in the bytes after it, or padding).
		if core := s[4 : len(s)-4]; len(core) >= 16 {
			fs = append(fs,
				form{fmt.Sprintf("base64 core at offset %d", shift), []byte(core)},
				form{fmt.Sprintf("base64url core at offset %d", shift), []byte(strings.NewReplacer("+", "-", "/", "_").Replace(core))})
		}
	}
	return fs
}

// findLeak returns the name of the first form of value found in data and
// its offset, or ok false.
func findLeak(data []byte, forms []form) (name string, offset int, ok bool) {
	for _, f := range forms {
		if i := bytes.Index(data, f.data); i >= 0 {
			return f.name, i, true
		}
	}
	return "", 0, false
}

// assertAbsent fails the test if any form of the value is in data. The
// message names the place and the form, never the value.
func assertAbsent(t testing.TB, where string, data []byte, forms []form) {
	t.Helper()
	if name, off, ok := findLeak(data, forms); ok {
		t.Errorf("%s holds the secret value (%s form, at byte %d)", where, name, off)
	}
}

// assertFileAbsent reads a file and checks it with assertAbsent.
func assertFileAbsent(t testing.TB, path string, forms []form) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("reading %s: %v", path, err)
		return
	}
	assertAbsent(t, path, b, forms)
}

// assertTreeAbsent checks every regular file under dir.
func assertTreeAbsent(t testing.TB, dir string, forms []form) (files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files++
			assertFileAbsent(t, p, forms)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", dir, err)
	}
	return files
}

// --- processes -----------------------------------------------------------

// procSample is what /proc showed of a process at one moment.
type procSample struct {
	environ, cmdline []byte
}

// alive reports whether the sample was taken while the process ran its
// program: a process that exited (a zombie) has an empty cmdline.
func (s procSample) alive() bool { return len(s.cmdline) > 0 }

// sampleProc reads /proc/pid/environ and then /proc/pid/cmdline. Both are
// fixed by execve, so a sample whose cmdline is not empty was taken while
// the program ran, and its environ is complete.
func sampleProc(pid int) procSample {
	var s procSample
	s.environ, _ = os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	s.cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return s
}

// assertProcClean checks a sample: the value must be in neither argv nor
// the environment.
func assertProcClean(t testing.TB, what string, s procSample, forms []form) {
	t.Helper()
	assertAbsent(t, what+" /proc cmdline", s.cmdline, forms)
	assertAbsent(t, what+" /proc environ", s.environ, forms)
}

// childEnv is the environment of every privy process the tests start: the
// test's own, without privy's variables, and with a config folder of the
// test's so that no token file of the machine is used.
func childEnv(t testing.TB, extra ...string) []string {
	cfg := filepath.Join(tempDir(t), "config")
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PRIVY_") || k == "XDG_CONFIG_HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "XDG_CONFIG_HOME="+cfg)
	return append(env, extra...)
}

var tempDirs sync.Map // testing.TB -> string

// tempDir is one short temporary folder per test, under os.TempDir so that
// socket paths stay well under the 108-byte limit. It is removed at the end
// of the test.
func tempDir(t testing.TB) string {
	if d, ok := tempDirs.Load(t); ok {
		return d.(string)
	}
	d, err := os.MkdirTemp("", "pe2e-")
	if err != nil {
		t.Fatal(err)
	}
	tempDirs.Store(t, d)
	t.Cleanup(func() {
		tempDirs.Delete(t)
		os.RemoveAll(d)
	})
	return d
}

// cliResult is the outcome of one privy CLI run.
type cliResult struct {
	args           []string
	stdout, stderr string
	code           int
	samples        []procSample
}

// alive reports whether /proc was sampled while the command ran.
func (r *cliResult) alive() bool {
	for _, s := range r.samples {
		if s.alive() {
			return true
		}
	}
	return false
}

func (r *cliResult) String() string {
	return redact(fmt.Sprintf("privy %q: exit %d\nstdout: %s\nstderr: %s", r.args, r.code, r.stdout, r.stderr))
}

// runCLI runs the privy CLI with args, extra environment and stdin. Its
// stdin is a pipe that is closed only after /proc/PID was sampled, so a
// command that reads stdin is observed while it runs; one that does not
// is sampled right after it started.
func runCLI(t testing.TB, env []string, stdin []byte, args ...string) *cliResult {
	t.Helper()
	if hasValue(args) {
		t.Fatalf("test bug: a secret value in the argv of privy %s", args[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, privyBin, args...)
	cmd.Env = childEnv(t, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting privy %s: %v", args[0], err)
	}
	res := &cliResult{args: args}
	res.samples = append(res.samples, sampleProc(cmd.Process.Pid))
	if len(stdin) > 0 {
		in.Write(stdin) // an EPIPE means it did not read stdin: fine
		res.samples = append(res.samples, sampleProc(cmd.Process.Pid))
	}
	in.Close()
	err = cmd.Wait()
	res.stdout, res.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("running privy %s: %v", args[0], err)
	}
	return res
}

// server is a `privy server` process with its own data directory.
type server struct {
	t       testing.TB
	dir     string // temporary folder: data/, the socket, logs
	dataDir string
	socket  string
	root    string   // root token
	args    []string // extra server flags
	starts  int
	logs    []string // stderr files, one per start

	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error
}

// newServer initialises a data directory with `privy init` and returns a
// server for it, not yet started. extra are additional server flags.
func newServer(t testing.TB, extra ...string) *server {
	t.Helper()
	// A folder of its own, so that a test can run several servers.
	dir, err := os.MkdirTemp(tempDir(t), "s")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{
		t:       t,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		socket:  filepath.Join(dir, "s.sock"),
		args:    extra,
	}
	if n := len(s.socket); n >= 100 {
		t.Fatalf("socket path %s is %d bytes; want < 100", s.socket, n)
	}
	res := runCLI(t, nil, nil, "init", "--data-dir", s.dataDir)
	if res.code != 0 {
		t.Fatalf("privy init failed:\n%s", res)
	}
	s.root = strings.TrimSpace(res.stdout)
	if s.root == "" || strings.ContainsAny(s.root, " \n") {
		t.Fatalf("privy init printed %q on stdout; want one root token", res.stdout)
	}
	t.Cleanup(s.cleanup)
	return s
}

// startServer is newServer and start.
func startServer(t testing.TB, extra ...string) *server {
	t.Helper()
	s := newServer(t, extra...)
	s.start()
	return s
}

// start runs `privy server` and waits until `privy status` answers.
func (s *server) start() {
	t := s.t
	t.Helper()
	if s.running() {
		t.Fatal("test bug: server already running")
	}
	s.starts++
	logPath := filepath.Join(s.dir, fmt.Sprintf("server-%d.log", s.starts))
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.logs = append(s.logs, logPath)
	args := append([]string{"server", "--data-dir", s.dataDir, "--socket", s.socket}, s.args...)
	s.cmd = exec.Command(privyBin, args...)
	s.cmd.Env = childEnv(t)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting privy server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		s.waitErr = cmd.Wait()
		close(done)
	}(s.cmd, s.done)

	deadline := time.Now().Add(30 * time.Second)
	for {
		res := runCLI(t, []string{"PRIVY_ADDR=" + s.socket}, nil, "status")
		if res.code == 0 {
			return
		}
		select {
		case <-s.done:
			t.Fatalf("privy server exited while starting (%v); its log:\n%s", s.waitErr, s.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("privy server did not answer `privy status` within 30s; last answer:\n%s\nserver log:\n%s", res, s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// log returns the server's stderr (all starts), redacted.
func (s *server) log() string {
	var b strings.Builder
	for _, p := range s.logs {
		data, _ := os.ReadFile(p)
		fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(p), data)
	}
	return redact(b.String())
}

// stop sends SIGTERM, waits, and fails the test unless the server exits 0
// (a graceful shutdown) within limit. It returns how long it took.
func (s *server) stop(limit time.Duration) time.Duration {
	t := s.t
	t.Helper()
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling privy server: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(limit):
		s.cmd.Process.Kill()
		<-s.done
		t.Fatalf("privy server did not exit within %v of SIGTERM; killed it. Log:\n%s", limit, s.log())
	}
	took := time.Since(start)
	if s.waitErr != nil {
		t.Errorf("privy server exited with %v after SIGTERM, want exit 0 (graceful shutdown); log:\n%s", s.waitErr, s.log())
	}
	return took
}

// kill ends the server with SIGKILL, as a crash would, and waits for it.
func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatalf("killing privy server: %v", err)
	}
	<-s.done
}

func (s *server) cleanup() {
	if s.running() {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// client returns a client of the server's API with token tok.
func (s *server) client(tok string) *client.Client {
	s.t.Helper()
	c, err := client.New(s.socket, client.WithToken(tok))
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// env is the environment a CLI run needs to reach the server with tok.
func (s *server) env(tok string) []string {
	return []string{"PRIVY_ADDR=" + s.socket, "PRIVY_TOKEN=" + tok}
}

// rawHTTP is an HTTP client that talks to the server's socket directly.
func (s *server) rawHTTP() *http.Client {
	var d net.Dialer
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", s.socket)
		}},
	}
}

// readAllLimit reads at most n bytes of r.
func readAllLimit(r io.Reader, n int64) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, n))
}
