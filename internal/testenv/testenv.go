// Package testenv gives privy's tests the real things they run against: the
// Docker CLI and Engine, the local test base image, other programs such as
// etcd and sshd, and a way to run commands with a timeout.
//
// It promises one rule for anything missing: the test is skipped with a hint
// (run scripts/test-env.sh), except in CI (CI=true) or when
// PRIVY_REQUIRE_ENGINE=1, where a missing part fails the test, so that CI
// never passes by skipping what it was meant to test.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// DefaultDocker is the Docker CLI the tests use unless PRIVY_TEST_DOCKER
	// names another. It is Debian's client, matching the engine; the first
	// docker on PATH may be a newer client that refuses BuildKit builds.
	DefaultDocker = "/usr/bin/docker"

	// Image is the minimal busybox image scripts/test-env.sh builds locally;
	// nothing can be pulled on the test machines.
	Image = "privy-test/busybox:latest"

	// SetupHint tells a developer how to get what a skipped test needed.
	SetupHint = "run scripts/test-env.sh"

	// CommandTimeout bounds each command run by Run and RunEnv.
	CommandTimeout = 5 * time.Minute

	probeTimeout = 30 * time.Second
)

// Docker returns the path of the Docker CLI to use after checking that an
// engine answers it, or skips (fails, in CI) the test if none does.
func Docker(t testing.TB) string {
	t.Helper()
	p := probeDocker()
	if p.err != nil {
		Unavailable(t, "Docker Engine", SetupHint, p.err)
	}
	return p.path
}

// DockerVersion returns the version of the engine Docker found.
func DockerVersion(t testing.TB) string {
	t.Helper()
	Docker(t)
	return probeDocker().version
}

// BusyboxImage returns the tag of the local busybox test image after checking
// that it exists, or skips (fails, in CI) the test if it does not.
func BusyboxImage(t testing.TB) string {
	t.Helper()
	docker := Docker(t)
	imageOnce.Do(func() {
		_, imageErr = output(context.Background(), probeTimeout, nil, docker,
			"image", "inspect", "--format", "{{.Id}}", Image)
	})
	if imageErr != nil {
		Unavailable(t, "image "+Image, SetupHint, imageErr)
	}
	return Image
}

// Require checks that the program what (a name looked up in PATH, or a path)
// can be run, or skips (fails, in CI) the test with hint.
func Require(t testing.TB, what, hint string) {
	t.Helper()
	if _, err := exec.LookPath(what); err != nil {
		Unavailable(t, what, hint, err)
	}
}

// Unavailable ends the test because what it needs is missing: it skips with
// hint, or fails in CI (CI=true) or when PRIVY_REQUIRE_ENGINE=1. cause may
// be nil. Use it when a part exists but does not work (an etcd that does not
// start), where Require's check cannot tell.
func Unavailable(t testing.TB, what, hint string, cause error) {
	t.Helper()
	fail, msg := verdict(os.Getenv, what, hint, cause)
	if fail {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// verdict decides, from the environment getenv reads, what a test does when
// what is missing: fail reports whether it fails rather than skips, and msg
// says why and what to do.
func verdict(getenv func(string) string, what, hint string, cause error) (fail bool, msg string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s not available", what)
	if cause != nil {
		fmt.Fprintf(&b, ": %v", cause)
	}
	if hint != "" {
		fmt.Fprintf(&b, " (hint: %s)", hint)
	}
	// CI must not pass by skipping what it was meant to test.
	for _, key := range []string{"CI", "PRIVY_REQUIRE_ENGINE"} {
		if v := getenv(key); isTrue(v) {
			fmt.Fprintf(&b, "; %s=%s: a missing %s is a failure, not a skip", key, v, what)
			return true, b.String()
		}
	}
	return false, b.String()
}

// isTrue accepts the spellings CI systems use for true ("true", "1", …).
func isTrue(v string) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return err == nil && b
}

// Run runs the command name with args, bounded by CommandTimeout, and returns its standard output. It fails the test,
// showing standard error, if the command fails. Secret values never go in
// args, which are shown on failure: pass them with RunEnv.
func Run(t testing.TB, name string, args ...string) (stdout string) {
	t.Helper()
	return RunEnv(t, nil, name, args...)
}

// RunEnv is Run with env ("KEY=value" entries) added to the test's
// environment. Only the keys of env are shown on failure, never the values.
func RunEnv(t testing.TB, env []string, name string, args ...string) (stdout string) {
	t.Helper()
	// Not t.Context(): it is canceled before cleanups run, and cleanups
	// use Run to remove containers and images.
	out, err := output(context.Background(), CommandTimeout, env, name, args...)
	if err != nil {
		t.Fatalf("%s", err)
	}
	return out
}

// commandError describes a failed command without the values of its
// environment, which may hold secrets.
type commandError struct {
	argv   []string
	keys   []string
	err    error
	stderr string
}

func (e *commandError) Error() string {
	var b strings.Builder
	b.WriteString("running")
	if len(e.keys) > 0 {
		fmt.Fprintf(&b, " (with %s set)", strings.Join(e.keys, ", "))
	}
	fmt.Fprintf(&b, " %q: %v", e.argv, e.err)
	if s := strings.TrimSpace(e.stderr); s != "" {
		fmt.Fprintf(&b, "\nstderr:\n%s", s)
	}
	return b.String()
}

func (e *commandError) Unwrap() error { return e.err }

// output runs a command with env added to this process's environment and
// returns its standard output.
func output(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// A child that keeps our pipes open (a daemon it started) must not
	// hang the test past the timeout.
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.String(), nil
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return stdout.String(), &commandError{
		argv:   append([]string{name}, args...),
		keys:   envKeys(env),
		err:    err,
		stderr: stderr.String(),
	}
}

func envKeys(env []string) []string {
	keys := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	return keys
}

type dockerProbe struct {
	path, version string
	err           error
}

var (
	dockerOnce   sync.Once
	dockerResult dockerProbe

	imageOnce sync.Once
	imageErr  error
)

// probeDocker asks the engine for its version once per test binary.
func probeDocker() dockerProbe {
	dockerOnce.Do(func() {
		path := os.Getenv("PRIVY_TEST_DOCKER")
		if path == "" {
			path = DefaultDocker
		}
		dockerResult.path = path
		out, err := output(context.Background(), probeTimeout, nil, path,
			"version", "--format", "{{.Server.Version}}")
		switch v := strings.TrimSpace(out); {
		case err != nil:
			dockerResult.err = err
		case v == "":
			dockerResult.err = fmt.Errorf("%s version: no server version", path)
		default:
			dockerResult.version = v
		}
	})
	return dockerResult
}
