package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestGracefulShutdown proves that SIGTERM stops a server that has a
// streaming client attached (`privy audit tail -f`): it exits 0 within the
// shutdown bound, removes its socket, and the streaming client ends too.
func TestGracefulShutdown(t *testing.T) {
	s := startServer(t)

	cmd := exec.Command(privyBin, "audit", "tail", "-f", "-n", "5")
	cmd.Env = childEnv(t, s.env(s.root)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var tailErr error
	tailDone := make(chan struct{})
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody is waiting for more lines
			}
		}
		close(lines)
		tailErr = cmd.Wait()
		close(tailDone)
	}()
	t.Cleanup(func() {
		select {
		case <-tailDone:
		default:
			cmd.Process.Kill()
			<-tailDone
		}
	})

	// The stream shows its own request first, then, being followed, lines
	// written later: wait for both so the client is surely attached.
	waitLine(t, lines, `"op":"audit.tail"`)
	if _, err := s.client(s.root).Status(context.Background()); err != nil {
		t.Fatalf("status: %v", err)
	}
	waitLine(t, lines, `"op":"sys.status"`)

	took := s.stop(20 * time.Second)
	t.Logf("server exited %v after SIGTERM with `privy audit tail -f` attached", took.Round(time.Millisecond))
	if took > 12*time.Second {
		t.Errorf("server took %v to exit after SIGTERM; want under 12s", took)
	}
	if _, err := os.Lstat(s.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket %s still there after shutdown (lstat: %v)", s.socket, err)
	}

	select {
	case <-tailDone:
		t.Logf("`privy audit tail -f` ended with %v; stderr: %q", tailErr, strings.TrimSpace(stderr.String()))
		if strings.Contains(stderr.String(), "panic") {
			t.Errorf("`privy audit tail -f` panicked: %s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("`privy audit tail -f` still running 10s after the server exited")
	}
}

// waitLine waits up to 10s for a line containing want.
func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended before a line with %s", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no line with %s within 10s", want)
		}
	}
}
