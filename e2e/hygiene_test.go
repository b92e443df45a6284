package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"github.com/privyhq/privy/internal/testenv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
)

// TestHygiene proves rule 1 of the design for the server and the CLI: a
// value stored and read through `privy secret put/get`, and sent along with
// every kind of bad request, never shows up in the argv or environment of
// any process, in the server's log, in the audit log, in an error the CLI
// prints or the API answers, or in plaintext in the data directory.
func TestHygiene(t *testing.T) {
	s := startServer(t)
	value := newValue("hygiene")
	forms := leakForms([]byte(value))
	const path = "hyg/app/token"

	var errTexts []string // every error text a client was shown
	serverSamples := []procSample{sampleProc(s.pid())}
	cli := func(name string, tok string, stdin []byte, wantCode int, args ...string) *cliResult {
		t.Helper()
		res := observedCLI(t, s.env(tok), stdin, args...)
		serverSamples = append(serverSamples, sampleProc(s.pid()))
		if res.code != wantCode {
			t.Errorf("%s: exit %d, want %d\n%s", name, res.code, wantCode, res)
		}
		for i, smp := range res.samples {
			assertProcClean(t, fmt.Sprintf("%s (sample %d)", name, i), smp, forms)
		}
		if res.code != 0 {
			errTexts = append(errTexts, res.stdout, res.stderr)
			if !strings.HasPrefix(res.stderr, "privy: error: ") {
				t.Errorf("%s: stderr %q, want a `privy: error: …` line", name, redact(res.stderr))
			}
		} else {
			errTexts = append(errTexts, res.stderr)
		}
		return res
	}

	// The value goes in on stdin and comes back on stdout.
	res := cli("secret put", s.root, []byte(value), 0, "secret", "put", path)
	// observedCLI runs the command again when it exited before its /proc
	// entry was read, so the put may have made more than one version.
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(path) + ` version [1-9][0-9]?\n$`).MatchString(res.stdout) {
		t.Errorf("secret put printed %q, want %q", res.stdout, path+" version N\n")
	}
	res = cli("secret get", s.root, nil, 0, "secret", "get", path)
	if res.stdout != value {
		t.Errorf("secret get printed %d bytes that are not the value put (%d bytes)", len(res.stdout), len(value))
	}

	// A control for the /proc checks: `--from-env` is the documented way to
	// hand the CLI a value in its environment, and the sample must show it.
	ctl := observedCLI(t, append(s.env(s.root), "PRIVY_E2E_VALUE="+value), nil, "secret", "put", "--from-env", "PRIVY_E2E_VALUE", "hyg/app/from-env")
	if ctl.code != 0 {
		t.Errorf("secret put --from-env: %s", ctl)
	}
	if _, _, ok := findLeak(ctl.samples[0].environ, forms); !ok {
		t.Errorf("control: /proc/PID/environ of `privy secret put --from-env` does not show the value it was given")
	}
	serverSamples = append(serverSamples, sampleProc(s.pid()))

	// Errors, each with the value somewhere in the request.
	cli("secret get of a missing version", s.root, []byte(value), 3, "secret", "get", "--version", "99", path)
	cli("secret put to an invalid path", s.root, []byte(value), 2, "secret", "put", "hyg/Bad Path")
	cli("secret put to a path that is a dir", s.root, []byte(value), 2, "secret", "put", "hyg/app/")
	ro, err := s.client(s.root).CreateToken(context.Background(), api.CreateTokenRequest{
		Name: "e2e-read-only", Rules: []string{"read,list:hyg/**"},
	})
	if err != nil {
		t.Fatalf("creating a read-only token: %v", err)
	}
	cli("secret put with a read-only token", ro.Token, []byte(value), 4, "secret", "put", path)
	cli("secret put with an unknown token", "privy_"+randHex(20), []byte(value), 4, "secret", "put", path)
	res = cli("secret get with the read-only token", ro.Token, nil, 0, "secret", "get", path)
	if res.stdout != value {
		t.Errorf("secret get with the read-only token did not print the value put")
	}

	errTexts = append(errTexts, rawBadRequests(t, s, value, forms)...)
	serverSamples = append(serverSamples, sampleProc(s.pid()))

	for i, smp := range serverSamples {
		if !smp.alive() {
			t.Fatalf("server /proc sample %d was taken after it exited", i)
		}
		assertProcClean(t, fmt.Sprintf("server (sample %d)", i), smp, forms)
	}
	for i, txt := range errTexts {
		assertAbsent(t, fmt.Sprintf("error text %d shown to a client", i), []byte(txt), forms)
	}

	s.stop(15 * time.Second)

	for _, l := range s.logs {
		assertFileAbsent(t, l, forms)
	}
	audit, err := os.ReadFile(filepath.Join(s.dataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	assertAbsent(t, "audit log", audit, forms)
	// Prove the audit log is the one these requests went to.
	for _, want := range []string{`"op":"secret.put"`, `"outcome":"denied"`, `"outcome":"not_found"`, `"outcome":"invalid"`} {
		if !bytes.Contains(audit, []byte(want)) {
			t.Errorf("audit log has no line with %s", want)
		}
	}
	db, err := os.ReadFile(filepath.Join(s.dataDir, "privy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(db, []byte(path)) {
		t.Errorf("privy.db does not hold the path %q: is this the store the server used?", path)
	}
	assertAbsent(t, "privy.db (bbolt)", db, forms)
	n := assertTreeAbsent(t, s.dir, forms) // data dir, server logs, CLI config
	t.Logf("checked %d server /proc samples, %d error texts, %d files", len(serverSamples), len(errTexts), n)

	t.Run("NonDumpable", testNonDumpable)
}

// observedCLI runs the CLI until /proc was sampled while it ran (a command
// that does not read stdin may finish before the first sample). Every
// command it is given may be repeated.
func observedCLI(t *testing.T, env []string, stdin []byte, args ...string) *cliResult {
	t.Helper()
	for range 10 {
		res := runCLI(t, env, stdin, args...)
		if res.alive() {
			return res
		}
	}
	t.Fatalf("privy %s exited before /proc/PID could be read, 10 times", args[0])
	return nil
}

// rawBadRequests sends malformed requests that carry the value straight to
// the socket, checks each is refused, and returns the response bodies.
func rawBadRequests(t *testing.T, s *server, value string, forms []form) []string {
	b64 := base64.StdEncoding.EncodeToString([]byte(value))
	tests := []struct {
		name, target, body string
		status             int
	}{
		{"value of the wrong type (array)", "/v1/secrets/hyg/raw", `{"value":["` + value + `"]}`, 400},
		{"value of the wrong type (object)", "/v1/secrets/hyg/raw", `{"value":{"` + value + `":1}}`, 400},
		{"value not base64", "/v1/secrets/hyg/raw", `{"value":"` + value + `"}`, 400},
		{"value as an unknown field's name", "/v1/secrets/hyg/raw", `{"` + value + `":"aGk="}`, 400},
		{"value in an unknown field", "/v1/secrets/hyg/raw", `{"value":"aGk=","note":"` + value + `"}`, 400},
		{"not JSON", "/v1/secrets/hyg/raw", value, 400},
		{"invalid path, valid body", "/v1/secrets/hyg/Bad%20Path", `{"value":"` + b64 + `"}`, 400},
	}
	hc := s.rawHTTP()
	var bodies []string
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodPut, "http://privy"+tt.target, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.root)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		body, err := readAllLimit(resp.Body, 1<<20)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading the answer: %v", tt.name, err)
		}
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d; body %s", tt.name, resp.StatusCode, tt.status, redact(string(body)))
		}
		if !bytes.Contains(body, []byte(`"code":"invalid"`)) {
			t.Errorf("%s: body %s, want code invalid", tt.name, redact(string(body)))
		}
		assertAbsent(t, tt.name+": response", body, forms)
		bodies = append(bodies, string(body))
	}
	// None of them may have stored anything.
	if _, err := s.client(s.root).GetSecret(context.Background(), "hyg/raw", 0); err == nil {
		t.Errorf("a malformed PUT stored a secret at hyg/raw")
	}
	return bodies
}

const nobody = 65534

// testNonDumpable checks that `privy server` makes itself non-dumpable
// (PR_SET_DUMPABLE 0), so no process of the same user can read its memory
// or environment through /proc or ptrace.
//
// As root nothing of that is observable: root reads every /proc file, and
// /proc/PID/status has no "dumpable" field. So this starts a second server
// as an unprivileged user. For a non-dumpable process the kernel makes
// /proc/PID/{environ,mem,...} owned by root instead of the process's user,
// and the process's own user cannot open them. A control process of the
// same user (sleep) shows the opposite.
func testNonDumpable(t *testing.T) {
	if os.Geteuid() != 0 {
		// Skips on a developer's machine, fails in CI.
		testenv.Unavailable(t, "root", "run the e2e tests as root (make test does) to check the server is non-dumpable", nil)
	}
	dir, err := os.MkdirTemp("", "pe2e-nd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	asNobody := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		cmd.Env = childEnv(t, "HOME="+dir)
		return cmd
	}
	dataDir, socket := filepath.Join(dir, "data"), filepath.Join(dir, "s.sock")
	if out, err := asNobody(exec.Command(privyBin, "init", "--data-dir", dataDir)).CombinedOutput(); err != nil {
		t.Fatalf("privy init as uid %d: %v\n%s", nobody, err, redact(string(out)))
	}
	var srvLog bytes.Buffer
	srv := asNobody(exec.Command(privyBin, "server", "--data-dir", dataDir, "--socket", socket))
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan struct{})
	go func() { srv.Wait(); close(srvDone) }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-srvDone:
		case <-time.After(15 * time.Second):
			srv.Process.Kill()
			<-srvDone
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for runCLI(t, []string{"PRIVY_ADDR=" + socket}, nil, "status").code != 0 {
		select {
		case <-srvDone:
			t.Fatalf("server as uid %d exited while starting:\n%s", nobody, redact(srvLog.String()))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server as uid %d did not answer within 30s", nobody)
		}
		time.Sleep(50 * time.Millisecond)
	}

	ctl := asNobody(exec.Command("sleep", "60"))
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Process.Kill(); ctl.Wait() })

	for _, p := range []struct {
		name        string
		pid         int
		wantOwner   uint32
		wantReadErr bool
	}{
		{"privy server", srv.Process.Pid, 0, true},
		{"control (sleep, dumpable)", ctl.Process.Pid, nobody, false},
	} {
		for _, f := range []string{"environ", "mem"} {
			fi, err := os.Stat(fmt.Sprintf("/proc/%d/%s", p.pid, f))
			if err != nil {
				t.Fatal(err)
			}
			if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != p.wantOwner {
				t.Errorf("%s runs as uid %d; /proc/PID/%s is owned by uid %d, want %d", p.name, nobody, f, uid, p.wantOwner)
			}
		}
		out, err := asNobody(exec.Command("cat", fmt.Sprintf("/proc/%d/environ", p.pid))).CombinedOutput()
		if gotErr := err != nil; gotErr != p.wantReadErr {
			t.Errorf("%s: reading /proc/PID/environ as its own uid %d: err %v (%s), want error %v",
				p.name, nobody, err, strings.TrimSpace(redact(string(out))), p.wantReadErr)
		}
	}
}
