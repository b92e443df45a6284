package testenv

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestVerdict(t *testing.T) {
	cause := errors.New("connection refused")
	tests := []struct {
		name     string
		env      map[string]string
		wantFail bool
		wantMsg  []string
	}{
		{"no env skips", nil, false, []string{"Docker Engine not available: connection refused", "hint: run scripts/test-env.sh"}},
		{"CI=true fails", map[string]string{"CI": "true"}, true, []string{"CI=true: a missing Docker Engine is a failure, not a skip", "hint: run scripts/test-env.sh"}},
		{"CI=1 fails", map[string]string{"CI": "1"}, true, []string{"CI=1: a missing Docker Engine is a failure"}},
		{"CI=TRUE fails", map[string]string{"CI": "TRUE"}, true, []string{"failure, not a skip"}},
		{"CI=false skips", map[string]string{"CI": "false"}, false, nil},
		{"CI=0 skips", map[string]string{"CI": "0"}, false, nil},
		{"CI=yes is not true", map[string]string{"CI": "yes"}, false, nil},
		{"PRIVY_REQUIRE_ENGINE=1 fails", map[string]string{"PRIVY_REQUIRE_ENGINE": "1"}, true, []string{"PRIVY_REQUIRE_ENGINE=1: a missing Docker Engine is a failure"}},
		{"PRIVY_REQUIRE_ENGINE=1 fails outside CI", map[string]string{"CI": "false", "PRIVY_REQUIRE_ENGINE": "1"}, true, nil},
		{"PRIVY_REQUIRE_ENGINE=0 skips", map[string]string{"PRIVY_REQUIRE_ENGINE": "0"}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			fail, msg := verdict(getenv, "Docker Engine", SetupHint, cause)
			if fail != tt.wantFail {
				t.Errorf("fail = %v, want %v (msg %q)", fail, tt.wantFail, msg)
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("msg = %q, want it to contain %q", msg, want)
				}
			}
			if !fail && strings.Contains(msg, "failure") {
				t.Errorf("skip msg = %q, want no mention of failure", msg)
			}
		})
	}
}

func TestVerdictWithoutCauseOrHint(t *testing.T) {
	_, got := verdict(func(string) string { return "" }, "etcd", "", nil)
	if want := "etcd not available"; got != want {
		t.Errorf("msg = %q, want %q", got, want)
	}
}

// recorder is a testing.TB whose Fatal and Skip end only the goroutine that
// calls them and record what happened, so the helpers' failure paths can be
// tested.
type recorder struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recorder) Fatal(args ...any) { r.failed = true; r.msg = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = true
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Skip(args ...any) { r.skipped = true; r.msg = fmt.Sprint(args...); runtime.Goexit() }
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// record runs f with a recorder in its own goroutine and returns the record.
func record(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r
}

func TestUnavailable(t *testing.T) {
	tests := []struct {
		ci, require        string
		wantFail, wantSkip bool
	}{
		{"", "", false, true},
		{"true", "", true, false},
		{"", "1", true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("CI=%q,PRIVY_REQUIRE_ENGINE=%q", tt.ci, tt.require), func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("PRIVY_REQUIRE_ENGINE", tt.require)
			r := record(t, func(tb testing.TB) { Unavailable(tb, "etcd", SetupHint, nil) })
			if r.failed != tt.wantFail || r.skipped != tt.wantSkip {
				t.Errorf("failed, skipped = %v, %v; want %v, %v (msg %q)", r.failed, r.skipped, tt.wantFail, tt.wantSkip, r.msg)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("PRIVY_REQUIRE_ENGINE", "")
	if r := record(t, func(tb testing.TB) { Require(tb, "sh", "install a shell") }); r.failed || r.skipped {
		t.Errorf("Require(sh): failed, skipped = %v, %v (msg %q); want neither", r.failed, r.skipped, r.msg)
	}
	r := record(t, func(tb testing.TB) { Require(tb, "privy-no-such-program", "install it") })
	if !r.skipped || !strings.Contains(r.msg, "privy-no-such-program not available") || !strings.Contains(r.msg, "hint: install it") {
		t.Errorf("Require(missing): skipped = %v, msg %q; want a skip naming it with the hint", r.skipped, r.msg)
	}
}

func TestRun(t *testing.T) {
	got := Run(t, "sh", "-c", "echo out; echo noise >&2")
	if want := "out\n"; got != want {
		t.Errorf("Run stdout = %q, want %q", got, want)
	}
}

func TestRunEnv(t *testing.T) {
	got := RunEnv(t, []string{"PRIVY_TESTENV_VALUE=v1"}, "sh", "-c", `printf %s "$PRIVY_TESTENV_VALUE"`)
	if want := "v1"; got != want {
		t.Errorf("RunEnv stdout = %q, want %q", got, want)
	}
}

func TestRunEnvFailureHidesValues(t *testing.T) {
	const secret = "hunter2-do-not-print"
	r := record(t, func(tb testing.TB) {
		RunEnv(tb, []string{"PRIVY_TESTENV_SECRET=" + secret}, "sh", "-c", "echo boom >&2; exit 3")
	})
	if !r.failed {
		t.Fatal("RunEnv of a failing command did not fail the test")
	}
	for _, want := range []string{"exit status 3", "boom", "PRIVY_TESTENV_SECRET"} {
		if !strings.Contains(r.msg, want) {
			t.Errorf("failure msg = %q, want it to contain %q", r.msg, want)
		}
	}
	if strings.Contains(r.msg, secret) {
		t.Errorf("failure msg = %q, contains the secret value", r.msg)
	}
}

// TestEngineBuildsWithSecret checks the engine does what the project's tests
// rely on: a BuildKit build from the local image, with no network, that
// mounts a secret passed by environment.
func TestEngineBuildsWithSecret(t *testing.T) {
	docker := Docker(t)
	image := BusyboxImage(t)
	dir := t.TempDir()
	dockerfile := fmt.Sprintf(`FROM %s AS step
RUN --mount=type=secret,id=x,required=true cat /run/secrets/x | sha256sum | cut -c1-64 > /digest
FROM scratch
COPY --from=step /digest /
`, image)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret"
	out := filepath.Join(dir, "out")
	RunEnv(t, []string{"DOCKER_BUILDKIT=1", "PRIVY_TESTENV_SECRET=" + secret},
		docker, "build", "--quiet", "--no-cache", "--network", "none",
		"--secret", "id=x,env=PRIVY_TESTENV_SECRET", "--output", "type=local,dest="+out, dir)
	got, err := os.ReadFile(filepath.Join(out, "digest"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x", sha256.Sum256([]byte(secret))); strings.TrimSpace(string(got)) != want {
		t.Errorf("digest of the mounted secret = %q, want %q", got, want)
	}
}

func TestBusyboxImageRuns(t *testing.T) {
	docker := Docker(t)
	got := Run(t, docker, "run", "--rm", "--network", "none", BusyboxImage(t), "sh", "-c", "echo hello; id -u")
	if want := "hello\n0\n"; got != want {
		t.Errorf("docker run stdout = %q, want %q", got, want)
	}
	if DockerVersion(t) == "" {
		t.Error("DockerVersion is empty")
	}
}
