package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/paths"
)

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 15 * time.Second
)

// childEnv is the harness's environment without PRIVY_* variables, so that
// a PRIVY_MASTER_KEY or PRIVY_DATA_DIR of the developer's shell cannot change
// which store or key the privy under test uses.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PRIVY_") {
			env = append(env, kv)
		}
	}
	return env
}

// initDataDir runs `privy init` on a new data directory and returns the
// root token it prints.
func initDataDir(ctx context.Context, bin, dir string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "init", "--data-dir", dir)
	cmd.Env, cmd.Stdout, cmd.Stderr = childEnv(), &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("running privy init in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" {
		return "", fmt.Errorf("privy init in %s printed no root token", dir)
	}
	return tok, nil
}

// server is one server process under test: `privy server` or the baseline.
type server struct {
	cmd    *exec.Cmd
	socket string
	log    string // the file holding its stderr
	exited chan struct{}
	err    error // how it exited; valid once exited is closed
}

// privyArgs is the command line of `privy server` on dataDir with the given
// audit sync mode. The key file is named explicitly so that nothing in the
// environment can choose another key.
func privyArgs(bin, dataDir, socket, auditSync string) []string {
	return []string{bin, "server",
		"--data-dir", dataDir,
		"--key-file", paths.KeyFile(dataDir),
		"--socket", socket,
		"--audit-sync", auditSync}
}

// startServer runs argv, a server that listens on socket, and returns once
// it answers /v1/status there, unsealed.
func startServer(ctx context.Context, argv []string, socket, logPath string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating server log: %w", err)
	}
	defer logf.Close()
	// Not CommandContext: the server is stopped with SIGTERM by stop, so
	// that it closes its store and audit log as in production.
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = childEnv(), logf, logf
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	s := &server{cmd: cmd, socket: socket, log: logPath, exited: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady polls /v1/status until the server answers unsealed.
func (s *server) waitReady(ctx context.Context) error {
	c, err := client.New(s.socket)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		st, err := c.Status(ctx)
		if err == nil && !st.Sealed {
			return nil
		}
		if err == nil {
			err = errors.New("it is sealed")
		}
		select {
		case <-s.exited:
			return fmt.Errorf("the server exited before answering (%v); its log:\n%s", s.err, tail(s.log, 20))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the server did not answer on %s within %v: %w", s.socket, readyTimeout, err)
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM, waits for a graceful exit, and kills the server if it
// does not come. It reports an exit other than the clean one.
func (s *server) stop() error {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			s.cmd.Process.Kill()
			<-s.exited
			return fmt.Errorf("the server did not stop within %v of SIGTERM and was killed", stopTimeout)
		}
	}
	if s.err != nil {
		return fmt.Errorf("the server: %w; its log:\n%s", s.err, tail(s.log, 20))
	}
	return nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// memStatus is the memory of a process as /proc/PID/status reports it, in
// bytes. RSS is RssAnon (heap, stacks: memory the process owns) plus
// RssFile (pages of mapped files, here bbolt's mmap of the store: page cache
// that the kernel can drop and read again) plus RssShmem.
type memStatus struct {
	RSS, Anon, File, Shmem, HWM int64
}

// readMemStatus reads /proc/PID/status.
func readMemStatus(pid int) (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStatus{}, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	defer f.Close()
	var m memStatus
	fields := map[string]*int64{"VmRSS": &m.RSS, "RssAnon": &m.Anon, "RssFile": &m.File, "RssShmem": &m.Shmem, "VmHWM": &m.HWM}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("reading memory of process %d: field %s: %w", pid, name, err)
		}
		*dst = kb << 10
	}
	if err := sc.Err(); err != nil {
		return memStatus{}, fmt.Errorf("reading memory of process %d: %w", pid, err)
	}
	return m, nil
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100
// on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// procCounters are the counters of /proc/PID/stat a benchmark looks at.
type procCounters struct {
	cpu time.Duration // user plus system CPU time
	// Page faults: minor ones map a page already in the page cache (here,
	// mostly first touches of the store's mmap), major ones read it from
	// disk.
	minor, major int64
}

func (a procCounters) sub(b procCounters) procCounters {
	return procCounters{cpu: a.cpu - b.cpu, minor: a.minor - b.minor, major: a.major - b.major}
}

// readCounters reads /proc/PID/stat.
func readCounters(pid int) (procCounters, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCounters{}, fmt.Errorf("reading counters of process %d: %w", pid, err)
	}
	// The command name in parentheses may hold spaces; fields are counted
	// from after it, where state is field 3 of proc(5): minflt is field 10,
	// majflt 12, utime 14 and stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procCounters{}, fmt.Errorf("reading counters of process %d: unexpected /proc/%d/stat", pid, pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procCounters{}, fmt.Errorf("reading counters of process %d: unexpected /proc/%d/stat", pid, pid)
	}
	var n [4]int64
	for j, k := range []int{10, 12, 14, 15} {
		if n[j], err = strconv.ParseInt(f[k-3], 10, 64); err != nil {
			return procCounters{}, fmt.Errorf("reading counters of process %d: %w", pid, err)
		}
	}
	return procCounters{minor: n[0], major: n[1], cpu: time.Duration(n[2]+n[3]) * clockTick}, nil
}

// warmPageCache reads the file at path once, so that its pages are in the
// page cache when a server maps it, as they are for a server that has been
// running: a benchmark of reads should not measure the disk because someone
// else on the machine dropped the cache.
func warmPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(io.Discard, f); err != nil {
		return fmt.Errorf("reading %s into the page cache: %w", path, err)
	}
	return nil
}
