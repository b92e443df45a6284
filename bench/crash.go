package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"
)

// crashTimeout bounds the crash-recovery run, so that a hung test cannot
// hold `make bench` past its time budget.
const crashTimeout = 6 * time.Minute

// crashResult is how the crash-recovery long run went.
type crashResult struct {
	state  string // "passed", "failed", "skipped" or "not run"
	detail string
	took   time.Duration
}

// The test's verdict lines in `go test -v` output.
var (
	crashPass = regexp.MustCompile(`(?m)^--- PASS: TestCrashRecovery\b`)
	crashSkip = regexp.MustCompile(`(?m)^--- SKIP: TestCrashRecovery\b.*$`)
)

// runCrashTest runs `go test -count=1 -run TestCrashRecovery ./e2e/` with
// PRIVY_CRASH_ROUNDS=rounds in the module at repo, keeping its output in
// logPath. A skipped test is reported as skipped, never as passed.
func runCrashTest(ctx context.Context, repo string, rounds int, logPath string, log io.Writer) crashResult {
	if _, err := os.Stat(filepath.Join(repo, "e2e")); err != nil {
		return crashResult{state: "not run", detail: "./e2e/ does not exist yet"}
	}
	ctx, cancel := context.WithTimeout(ctx, crashTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-v", "-timeout", crashTimeout.String(),
		"-run", "TestCrashRecovery", "./e2e/")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "PRIVY_CRASH_ROUNDS="+strconv.Itoa(rounds))
	cmd.Stdout, cmd.Stderr = &out, &out
	// The test binary and the servers it starts share go's process group:
	// on cancellation all of them are asked to stop, and whatever is left
	// once go has exited is killed.
	cmd.SysProcAttr = groupProcAttr()
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	if cmd.Process != nil {
		signalGroup(cmd.Process.Pid, syscall.SIGKILL)
	}
	r := crashResult{took: time.Since(start)}
	os.WriteFile(logPath, out.Bytes(), 0o644)
	switch {
	case err != nil:
		r.state, r.detail = "failed", err.Error()
		fmt.Fprintf(log, "bench: TestCrashRecovery failed; the end of its output:\n%s\n", tail(logPath, 30))
	case crashSkip.Match(out.Bytes()):
		r.state, r.detail = "skipped", string(bytes.TrimSpace(crashSkip.Find(out.Bytes())))
	case crashPass.Match(out.Bytes()):
		r.state = "passed"
	default:
		r.state, r.detail = "not run", "./e2e/ has no TestCrashRecovery yet"
	}
	return r
}
