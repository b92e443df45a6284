package e2e

// Issue 4's tests 3, 4 and 7 for privy exec and privy run --init: a
// container whose entrypoint is privy exec gets its profile from the
// server with no token, clones its configuration repository over ssh from
// an sshd on 127.0.0.1, and refuses to start when anything fails; and
// afterwards no value is in docker inspect, /proc or the engine's data
// root.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/sys/unix"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/testenv"
)

// Where privy run --init mounts the binary and the socket; the tests'
// containers use the same places.
const (
	ctrPrivy  = "/usr/local/bin/privy"
	ctrSocket = "/run/privy/privy.sock"
)

// execEnv is what the container tests share: an engine, the base image, a
// server reachable by the engine's containers, and every value stored, for
// the sweeps.
type execEnv struct {
	t          *testing.T
	docker     string
	image      string
	srv        *server
	forms      []form
	containers []string // ids of the test's containers, for docker inspect
}

func newExecEnv(t *testing.T) *execEnv {
	t.Helper()
	e := &execEnv{t: t, docker: testenv.Docker(t), image: testenv.BusyboxImage(t)}
	// No --docker flag: the server finds the engine at its default socket
	// and identifies tokenless containers by their label.
	e.srv = startServer(t)
	return e
}

// secret stores value at path; a sensitive value joins the sweeps.
func (e *execEnv) secret(path string, value []byte, sensitive bool) {
	e.t.Helper()
	if _, err := e.srv.client(e.srv.root).PutSecret(context.Background(), path, value); err != nil {
		e.t.Fatalf("storing %s: %v", path, err)
	}
	if sensitive {
		e.forms = append(e.forms, leakForms(value)...)
	}
}

// profile stores p as a user would: privy profile put NAME --file F.json.
func (e *execEnv) profile(p api.Profile) {
	e.t.Helper()
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	f := filepath.Join(tempDir(e.t), "profile-"+p.Name+"-"+randHex(4)+".json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	res := runCLI(e.t, e.srv.env(e.srv.root), nil, "profile", "put", p.Name, "--file", f)
	if res.code != 0 || !strings.Contains(res.stdout, "profile "+p.Name+": version ") {
		e.t.Fatalf("privy profile put %s:\n%s", p.Name, res)
	}
}

// dockerResult is one run of the docker CLI.
type dockerResult struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r dockerResult) String() string {
	return redact(fmt.Sprintf("docker %q: exit %d\nstdout: %s\nstderr: %s", r.args, r.code, r.stdout, r.stderr))
}

// execDocker runs the docker CLI; only a docker that cannot be started
// fails the test.
func execDocker(t testing.TB, docker string, args ...string) dockerResult {
	t.Helper()
	if hasValue(args) {
		t.Fatal("test bug: a secret value in docker's argv")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := dockerResult{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("running docker %s: %v", args[0], err)
	}
	return res
}

// ctr is a container whose entrypoint is privy exec, with the static
// privy binary and the server's socket bind-mounted and a tmpfs at
// /run/secrets, as privy run --init makes it.
type ctr struct {
	label   string   // its privy.profile label; "" for none
	profile string   // privy exec --profile
	host    bool     // --network host, to reach the sshd on 127.0.0.1 (else none)
	detach  bool     // docker run -d
	flags   []string // more privy exec flags
	script  string   // the command, run by sh -c
}

// cidFile returns a path for docker run --cidfile; the container whose
// id docker writes there is removed, by that id, when the test ends.
func (e *execEnv) cidFile() string {
	f := filepath.Join(tempDir(e.t), "cid-"+randHex(6))
	e.t.Cleanup(func() {
		if b, err := os.ReadFile(f); err == nil {
			exec.Command(e.docker, "rm", "--force", "--volumes", strings.TrimSpace(string(b))).Run()
		}
	})
	return f
}

// run starts c and returns its id and docker run's result. The container
// is removed when the test ends.
func (e *execEnv) run(c ctr) (string, dockerResult) {
	t := e.t
	t.Helper()
	cidFile := e.cidFile()
	network := "none"
	if c.host {
		network = "host"
	}
	args := []string{"run", "--cidfile", cidFile, "--network", network, "--tmpfs", "/run/secrets",
		"--mount", "type=bind,src=" + privyBin + ",dst=" + ctrPrivy + ",readonly",
		"--mount", "type=bind,src=" + e.srv.socket + ",dst=" + ctrSocket,
		"--entrypoint", ctrPrivy}
	if c.label != "" {
		args = append(args, "--label", "privy.profile="+c.label)
	}
	if c.detach {
		args = append(args, "-d")
	}
	args = append(args, e.image, "exec", "--profile", c.profile, "--addr", ctrSocket)
	args = append(args, c.flags...)
	args = append(args, "--", "sh", "-c", c.script)
	res := execDocker(t, e.docker, args...)
	b, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatalf("docker run wrote no container id (%v):\n%s", err, res)
	}
	id := strings.TrimSpace(string(b))
	e.containers = append(e.containers, id)
	return id, res
}

// cat returns a file of a running container, and whether it exists. The
// content comes through docker exec's stream: nothing is logged.
func (e *execEnv) cat(id, path string) (string, bool) {
	e.t.Helper()
	res := execDocker(e.t, e.docker, "exec", id, "cat", path)
	if res.code != 0 {
		if strings.Contains(res.stderr, "No such file") {
			return "", false
		}
		e.t.Fatalf("reading %s in the container:\n%s", path, res)
	}
	return res.stdout, true
}

// want checks files of a running container: name -> content, "" for a
// file that must not exist.
func (e *execEnv) want(id string, files map[string]string) {
	e.t.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		want := files[name]
		got, ok := e.cat(id, name)
		switch {
		case want == "" && ok:
			e.t.Errorf("%s exists in the container; want it gone", name)
		case want != "" && !ok:
			e.t.Errorf("%s is missing in the container", name)
		case want != "" && got != want:
			e.t.Errorf("%s in the container = %q, want %q", name, redact(got), redact(want))
		}
	}
}

// inspect returns a field of docker inspect of a container.
func (e *execEnv) inspect(id, format string) string {
	e.t.Helper()
	return strings.TrimSpace(testenv.Run(e.t, e.docker, "inspect", "--format", format, id))
}

// logs returns a container's stdout and stderr so far.
func (e *execEnv) logs(id string) string {
	e.t.Helper()
	res := execDocker(e.t, e.docker, "logs", id)
	return res.stdout + res.stderr
}

// waitLogs waits until a container's logs hold want n times.
func (e *execEnv) waitLogs(id, want string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		logs := e.logs(id)
		if strings.Count(logs, want) >= n {
			return
		}
		if e.inspect(id, "{{.State.Running}}") != "true" || time.Now().After(deadline) {
			e.t.Fatalf("container %.12s: %q not printed %d times (running %s, exit %s); logs:\n%s",
				id, want, n, e.inspect(id, "{{.State.Running}}"), e.inspect(id, "{{.State.ExitCode}}"), redact(logs))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitExit waits until a container has stopped and returns its exit code.
func (e *execEnv) waitExit(id string) int {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for e.inspect(id, "{{.State.Running}}") == "true" {
		if time.Now().After(deadline) {
			e.t.Fatalf("container %.12s still runs after 60s; logs:\n%s", id, redact(e.logs(id)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, err := strconv.Atoi(e.inspect(id, "{{.State.ExitCode}}"))
	if err != nil {
		e.t.Fatal(err)
	}
	return code
}

// sweepProcs checks the argv and environment of every process on the
// machine, the containers' included: no value may be in either.
func (e *execEnv) sweepProcs() {
	e.t.Helper()
	res := &buildResult{environHeld: map[string]bool{}}
	(&buildEnv{t: e.t}).sweepProc(res, e.forms)
	for prog := range res.environHeld {
		t := e.t
		t.Errorf("the environment of %s holds a value; privy exec delivers files only", prog)
	}
}

// sweep is test 7 for the test's containers: docker inspect of each, and
// every file under the engine's data root.
func (e *execEnv) sweep() {
	e.t.Helper()
	if len(e.forms) == 0 {
		e.t.Fatal("test bug: no values to sweep for")
	}
	for _, id := range e.containers {
		assertAbsent(e.t, "docker inspect "+id[:12], []byte(testenv.Run(e.t, e.docker, "inspect", id)), e.forms)
		assertAbsent(e.t, "docker logs "+id[:12], []byte(e.logs(id)), e.forms)
	}
	(&buildEnv{t: e.t, docker: e.docker}).sweepDataRoot(e.forms)
}

// closedPort returns a port of 127.0.0.1 nothing listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// ageEncrypt encrypts plaintext to r, armored or binary.
func ageEncrypt(t testing.TB, r age.Recipient, plaintext string, armored bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var out io.Writer = &buf
	var aw io.WriteCloser
	if armored {
		aw = armor.NewWriter(&buf)
		out = aw
	}
	w, err := age.Encrypt(out, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, plaintext); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// keyForms are the forms of an OpenSSH private key, with the lines of its
// PEM body (what a leaked key file looks like).
func keyForms(pemKey []byte) []form {
	forms := leakForms(pemKey)
	for _, l := range strings.Split(string(pemKey), "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
			forms = append(forms, form{"PEM line", []byte(l)})
		}
	}
	return forms
}

// redactBytes registers a value that did not come from newValue.
func redactBytes(v []byte) {
	redactions.Lock()
	defer redactions.Unlock()
	for _, f := range leakForms(v) {
		redactions.values = append(redactions.values, f.data)
	}
}

// TestExecConfigRepo is issue test 3, seed 000: a container whose
// entrypoint is privy exec pulls its configuration from a git repository
// on an sshd on 127.0.0.1 with a key held in privy, decrypts the
// repository's age file with an identity held in privy, places a secret
// beside them, runs the post hook and becomes PID 1. After a commit,
// docker restart shows the new content and none of the old; with the
// repository unreachable or the key refused, the container exits non-zero
// naming the repository, and its command never runs.
func TestExecConfigRepo(t *testing.T) {
	e := newExecEnv(t)
	keyFile, authorized := testenv.SSHKey(t)
	git := testenv.SSHGitServer(t, authorized)
	pemKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	redactBytes(pemKey)
	e.secret("dns/ssh-key", pemKey, false)
	e.forms = append(e.forms, keyForms(pemKey)...)
	e.secret("dns/known-hosts", []byte(git.HostKey+"\n"), false)
	ageID, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	redactBytes([]byte(ageID.String()))
	e.secret("dns/age-identity", []byte(ageID.String()), true)
	apiKey, dbPass1, dbPass2 := newValue("exec-api"), newValue("exec-age1"), newValue("exec-age2")
	e.forms = append(e.forms, append(leakForms([]byte(dbPass1)), leakForms([]byte(dbPass2))...)...)
	e.secret("dns/api-key", []byte(apiKey), true)

	conf1 := "# dnsmasq configuration, first commit " + randHex(8) + "\ndomain=lan\n"
	pxe := "DEFAULT linux " + randHex(8) + "\n"
	old := "only in the first commit " + randHex(8) + "\n"
	git.Commit(t, map[string][]byte{
		"dnsmasq.conf":              []byte(conf1),
		"tftp/pxelinux.cfg/default": []byte(pxe),
		"old.conf":                  []byte(old),
		"db.password.age":           ageEncrypt(t, ageID.Recipient(), dbPass1, true),
	})
	repo := api.ProfileRepo{URL: git.RepoURL, Dir: "conf",
		SSHKey: "dns/ssh-key", KnownHosts: "dns/known-hosts", AgeIdentity: "dns/age-identity"}
	dns := api.Profile{
		Name:  "dns",
		Files: []api.ProfileFile{{Name: "api.key", Secret: "dns/api-key"}},
		Repos: []api.ProfileRepo{repo},
		Post:  []string{"/bin/sh", "-c", "cat /run/secrets/conf/dnsmasq.conf > /run/secrets/post-ran"},
	}
	e.profile(dns)

	// The command proves it is PID 1 and exits 42 on SIGTERM, so the
	// engine's signals reach it.
	const script = `echo "pid=$$"; trap 'exit 42' TERM; sleep 3600 & wait`
	id, res := e.run(ctr{label: "dns", profile: "dns", host: true, detach: true, script: script})
	if res.code != 0 {
		t.Fatalf("docker run:\n%s", res)
	}
	e.waitLogs(id, "pid=1", 1)
	if cmdline, _ := e.cat(id, "/proc/1/cmdline"); !strings.HasPrefix(cmdline, "sh\x00-c\x00") {
		t.Errorf("PID 1 runs %q; want the command itself (privy exec replaced by it)", strings.ReplaceAll(cmdline, "\x00", " "))
	}
	if mounts, _ := e.cat(id, "/proc/mounts"); !strings.Contains(mounts, " /run/secrets tmpfs ") {
		t.Errorf("/run/secrets is not a tmpfs in the container:\n%s", mounts)
	}
	first := map[string]string{
		"/run/secrets/api.key":                        apiKey,
		"/run/secrets/conf/dnsmasq.conf":              conf1,
		"/run/secrets/conf/tftp/pxelinux.cfg/default": pxe,
		"/run/secrets/conf/old.conf":                  old,
		"/run/secrets/conf/db.password":               dbPass1,
		"/run/secrets/conf/db.password.age":           "",
		"/run/secrets/conf/README.md":                 git.Content["README.md"],
		"/run/secrets/post-ran":                       conf1,
	}
	e.want(id, first)
	for name, want := range map[string]string{"api.key": "400", "conf/dnsmasq.conf": "644", "conf/db.password": "400"} {
		if got := strings.TrimSpace(execDocker(t, e.docker, "exec", id, "stat", "-c", "%a", "/run/secrets/"+name).stdout); got != want {
			t.Errorf("/run/secrets/%s has mode %s, want %s", name, got, want)
		}
	}
	e.sweepProcs()

	// A new commit: docker restart shows it, and nothing of the old one.
	conf2 := "# dnsmasq configuration, second commit " + randHex(8) + "\ndomain=lan\n"
	git.Commit(t, map[string][]byte{
		"dnsmasq.conf":    []byte(conf2),
		"db.password.age": ageEncrypt(t, ageID.Recipient(), dbPass2, false),
	}, "old.conf")
	if r := execDocker(t, e.docker, "restart", "--time", "20", id); r.code != 0 {
		t.Fatalf("docker restart:\n%s", r)
	}
	e.waitLogs(id, "pid=1", 2)
	second := map[string]string{
		"/run/secrets/api.key":                        apiKey,
		"/run/secrets/conf/dnsmasq.conf":              conf2,
		"/run/secrets/conf/tftp/pxelinux.cfg/default": pxe,
		"/run/secrets/conf/old.conf":                  "",
		"/run/secrets/conf/db.password":               dbPass2,
		"/run/secrets/post-ran":                       conf2,
	}
	e.want(id, second)

	// privy exec run again in the same container, on the same tmpfs,
	// wipes what the last run placed: the directory removed from the
	// repository is gone, and so is the post hook's file (--no-post).
	git.Commit(t, nil, "tftp")
	r := execDocker(t, e.docker, "exec", id, ctrPrivy, "exec", "--profile", "dns", "--addr", ctrSocket, "--no-post", "--", "ls", "-A", "/run/secrets", "/run/secrets/conf")
	if r.code != 0 {
		t.Fatalf("privy exec again in the container:\n%s", r)
	}
	if strings.Contains(r.stdout, "tftp") || strings.Contains(r.stdout, "post-ran") || !strings.Contains(r.stdout, "dnsmasq.conf") {
		t.Errorf("after a second privy exec the directory holds:\n%s\nwant dnsmasq.conf and neither tftp nor post-ran", r.stdout)
	}

	// docker stop reaches the command: it exits with its trap's status.
	if r := execDocker(t, e.docker, "stop", "--time", "20", id); r.code != 0 {
		t.Fatalf("docker stop:\n%s", r)
	}
	if code := e.waitExit(id); code != 42 {
		t.Errorf("after docker stop the command exited %d, want 42 (its SIGTERM trap)", code)
	}

	// The repository unreachable at the next start: the container exits
	// non-zero, naming the repository, before its command runs.
	// The server's host key is known for the closed port too, so that what
	// fails is the connection.
	port := closedPort(t)
	_, hostKey, _ := strings.Cut(git.HostKey, " ")
	e.secret("dns/known-hosts-down", []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", port, hostKey)), false)
	down := dns
	down.Repos = []api.ProfileRepo{repo}
	down.Repos[0].URL = fmt.Sprintf("ssh://%s@127.0.0.1:%d%s", git.User, port, git.RepoDir)
	down.Repos[0].KnownHosts = "dns/known-hosts-down"
	e.profile(down)
	if r := execDocker(t, e.docker, "start", id); r.code != 0 {
		t.Fatalf("docker start:\n%s", r)
	}
	if code := e.waitExit(id); code == 0 {
		t.Errorf("with the repository unreachable the container exited 0")
	}
	logs := e.logs(id)
	if n := strings.Count(logs, "pid=1"); n != 2 {
		t.Errorf("the command ran %d times, want 2: not after the repository became unreachable", n)
	}
	for _, want := range []string{"cloning repo ssh://", "127.0.0.1:" + strconv.Itoa(port), "unreachable"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the container's message does not say %q:\n%s", want, redact(logs))
		}
	}

	// A fresh container, each way the repository can fail: the same.
	otherKey, _ := testenv.SSHKey(t)
	otherPem, err := os.ReadFile(otherKey)
	if err != nil {
		t.Fatal(err)
	}
	redactBytes(otherPem)
	e.secret("dns/other-key", otherPem, false)
	e.forms = append(e.forms, keyForms(otherPem)...)
	badKey := dns
	badKey.Name = "dns-badkey"
	badKey.Repos = []api.ProfileRepo{repo}
	badKey.Repos[0].SSHKey = "dns/other-key"
	e.profile(badKey)
	down.Name = "dns-down"
	e.profile(down)
	for _, tt := range []struct {
		profile string
		want    []string
	}{
		{"dns-down", []string{"cloning repo ssh://", "127.0.0.1:" + strconv.Itoa(port), "unreachable"}},
		{"dns-badkey", []string{"cloning repo ssh://", "127.0.0.1:" + strconv.Itoa(git.Port), "authentication failed"}},
	} {
		_, r := e.run(ctr{label: tt.profile, profile: tt.profile, host: true, script: "echo command-ran"})
		if r.code == 0 {
			t.Errorf("%s: the container exited 0", tt.profile)
		}
		if strings.Contains(r.stdout+r.stderr, "command-ran") {
			t.Errorf("%s: the command ran although the repository failed", tt.profile)
		}
		for _, want := range tt.want {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: the message does not say %q:\n%s", tt.profile, want, r)
			}
		}
		if strings.Contains(r.stderr, "goroutine ") {
			t.Errorf("%s: privy exec panicked:\n%s", tt.profile, r)
		}
	}
	e.sweep()
}

// TestIdentity is issue test 4: with no token, a container labelled
// privy.profile=web gets the web profile through the socket it has
// mounted; an unlabelled container, one labelled for another profile and a
// process on the host are denied with a message saying why; and the audit
// log names each container and its image.
func TestIdentity(t *testing.T) {
	e := newExecEnv(t)
	web, db := newValue("id-web"), newValue("id-db")
	e.secret("id/web", []byte(web), true)
	e.secret("id/db", []byte(db), true)
	e.profile(api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "x", Secret: "id/web"}}})
	e.profile(api.Profile{Name: "db", Files: []api.ProfileFile{{Name: "y", Secret: "id/db"}}})

	ok, res := e.run(ctr{label: "web", profile: "web", detach: true, script: `echo "pid=$$"; trap 'exit 0' TERM; sleep 3600 & wait`})
	if res.code != 0 {
		t.Fatalf("docker run:\n%s", res)
	}
	e.waitLogs(ok, "pid=1", 1)
	e.want(ok, map[string]string{"/run/secrets/x": web, "/run/secrets/y": ""})
	e.sweepProcs()

	// The served container may not ask for another profile.
	r := execDocker(t, e.docker, "exec", ok, ctrPrivy, "exec", "--profile", "db", "--addr", ctrSocket, "--dir", "/run/secrets/other", "--", "echo", "command-ran")
	if r.code == 0 || strings.Contains(r.stdout, "command-ran") || !strings.Contains(r.stderr, `labelled for profile "web", not "db"`) {
		t.Errorf("the web container asking for db: want a denial naming both profiles:\n%s", r)
	}

	unlabelled, r := e.run(ctr{profile: "web", script: "echo command-ran"})
	if r.code == 0 || strings.Contains(r.stdout+r.stderr, "command-ran") {
		t.Errorf("an unlabelled container was served, or ran its command:\n%s", r)
	}
	for _, want := range []string{`fetching profile "web"`, "has no privy.profile label", "--label privy.profile="} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the unlabelled container's message does not say %q:\n%s", want, r)
		}
	}
	other, r := e.run(ctr{label: "db", profile: "web", script: "echo command-ran"})
	if r.code == 0 || strings.Contains(r.stdout+r.stderr, "command-ran") {
		t.Errorf("a container labelled db was served web, or ran its command:\n%s", r)
	}
	if !strings.Contains(r.stderr, `labelled for profile "db", not "web"`) {
		t.Errorf("the db container's message does not name both profiles:\n%s", r)
	}

	// A process on the host, with no token and the socket at hand.
	dir := shmDir(t)
	marker := filepath.Join(tempDir(t), "host-ran")
	h := runCLI(t, []string{"PRIVY_ADDR=" + e.srv.socket}, nil, "exec", "--profile", "web", "--dir", dir, "--", "/bin/sh", "-c", "echo > "+marker)
	if h.code != 4 || !strings.Contains(h.stderr, "no token given") {
		t.Errorf("a host process without a token: want exit 4 and \"no token given\":\n%s", h)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the host process's command ran although it was denied")
	}

	entries := waitAudit(t, filepath.Join(e.srv.dataDir, "audit.log"), func(es []audit.Entry) bool {
		return findEntry(es, "profile.render", "container:"+other[:12], audit.OutcomeDenied) != nil
	})
	image := e.inspect(ok, "{{.Config.Image}}")
	for _, tt := range []struct {
		what, id, outcome string
	}{
		{"the labelled container", ok, audit.OutcomeOK},
		{"the unlabelled container", unlabelled, audit.OutcomeDenied},
		{"the container labelled db", other, audit.OutcomeDenied},
	} {
		actor := "container:" + tt.id[:12]
		l := findEntry(entries, "profile.render", actor, tt.outcome)
		if l == nil {
			t.Errorf("no profile.render line for %s with actor %s and outcome %s in the audit log:\n%s", tt.what, actor, tt.outcome, auditSummary(entries))
			continue
		}
		if l.Path != ":profiles/web" || l.Extra["image"] != image {
			t.Errorf("the audit line of %s: path %q, image %q; want :profiles/web and %q", tt.what, l.Path, l.Extra["image"], image)
		}
		if tt.outcome == audit.OutcomeDenied && l.Reason == "" {
			t.Errorf("the denial of %s gives no reason in the audit log: %+v", tt.what, *l)
		}
	}
	if l := findEntry(entries, "secret.read", "container:"+ok[:12], audit.OutcomeOK); l == nil || l.Path != "id/web" {
		t.Errorf("no secret.read of id/web by the labelled container in the audit log:\n%s", auditSummary(entries))
	}
	for _, l := range entries {
		if l.Op == "secret.read" && (l.Path == "id/db" || l.Actor != "container:"+ok[:12]) {
			t.Errorf("a secret was read for a denied caller: %+v", l)
		}
	}
	e.sweep()
}

// findEntry returns the first audit entry with op, actor and outcome.
func findEntry(es []audit.Entry, op, actor, outcome string) *audit.Entry {
	for i, l := range es {
		if l.Op == op && l.Actor == actor && l.Outcome == outcome {
			return &es[i]
		}
	}
	return nil
}

// waitAudit reads an audit log until done accepts it (the server may still
// be writing its last line), or for 10s.
func waitAudit(t testing.TB, path string, done func([]audit.Entry) bool) []audit.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		es := readAuditEntries(t, path)
		if done(es) || time.Now().After(deadline) {
			return es
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func auditSummary(es []audit.Entry) string {
	var b strings.Builder
	for _, l := range es {
		fmt.Fprintf(&b, "  %s %s %s %s %s %v\n", l.Op, l.Actor, l.Path, l.Outcome, l.Reason, l.Extra)
	}
	return b.String()
}

// shmDir returns a new directory on a tmpfs of the host, removed when the
// test ends.
func shmDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "pe2e-exec-")
	if err != nil {
		t.Fatalf("a tmpfs directory for privy exec: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// diskDir returns a new directory on a filesystem that is not a tmpfs,
// removed when the test ends.
func diskDir(t testing.TB) string {
	t.Helper()
	wd, _ := os.Getwd() // the package's folder, in the module's tree
	for _, parent := range []string{tempDir(t), wd} {
		var st unix.Statfs_t
		if parent == "" || unix.Statfs(parent, &st) != nil || st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
			continue
		}
		dir, err := os.MkdirTemp(parent, "pe2e-disk-")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		return dir
	}
	t.Fatalf("no folder off tmpfs to test privy exec's refusal (tried %s and %s)", os.TempDir(), wd)
	return ""
}

// TestExecRefuses is the rest of privy exec's promise, on the host: it
// refuses a directory that is not a tmpfs (unless --allow-disk); a missing
// profile, a server that is down or a failing post hook stop it with a
// message naming what failed, its directory emptied, before the command
// runs; and the command never sees privy's token.
func TestExecRefuses(t *testing.T) {
	srv := startServer(t)
	value := newValue("exec-host")
	forms := leakForms([]byte(value))
	if _, err := srv.client(srv.root).PutSecret(context.Background(), "host/x", []byte(value)); err != nil {
		t.Fatal(err)
	}
	put := func(p api.Profile) {
		t.Helper()
		if _, err := srv.client(srv.root).PutProfile(context.Background(), p); err != nil {
			t.Fatalf("storing profile %s: %v", p.Name, err)
		}
	}
	put(api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "x", Secret: "host/x"}}})
	put(api.Profile{Name: "failing-post", Files: []api.ProfileFile{{Name: "x", Secret: "host/x"}},
		Post: []string{"/bin/sh", "-c", "echo post hook says no >&2; exit 3"}})
	marker := filepath.Join(tempDir(t), "command-ran")
	envDump := filepath.Join(tempDir(t), "command-env")
	command := []string{"--", "/bin/sh", "-c", "echo ran > " + marker + "; env > " + envDump}
	ran := func() bool {
		_, err := os.Stat(marker)
		return err == nil
	}
	stale := func(dir string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "stale"), []byte("from an earlier run\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	empty := func(what, dir string) {
		t.Helper()
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if len(ents) > 0 {
			t.Errorf("%s: the directory still holds %d entries (%s …); want it emptied", what, len(ents), ents[0].Name())
		}
	}

	disk := diskDir(t)
	stale(disk)
	for _, tt := range []struct {
		name    string
		env     []string
		args    []string
		code    int
		want    []string
		checkFn func(dir string)
	}{
		{"disk dir", srv.env(srv.root), []string{"--profile", "web", "--dir", disk}, 1,
			[]string{"checking " + disk, "is not on a tmpfs", "--allow-disk"},
			func(dir string) {
				// Refused before anything: not even wiped.
				if _, err := os.Stat(filepath.Join(dir, "stale")); err != nil {
					t.Errorf("the refused disk directory was touched: %v", err)
				}
			}},
		{"missing profile", srv.env(srv.root), []string{"--profile", "nope"}, 3,
			[]string{`fetching profile "nope" from ` + srv.socket, `no profile named "nope"`}, nil},
		{"server down", []string{"PRIVY_ADDR=" + filepath.Join(tempDir(t), "down.sock"), "PRIVY_TOKEN=" + srv.root}, []string{"--profile", "web"}, 5,
			[]string{`fetching profile "web" from ` + filepath.Join(tempDir(t), "down.sock"), "privy server"}, nil},
		{"failing post hook", srv.env(srv.root), []string{"--profile", "failing-post"}, 1,
			[]string{"post hook /bin/sh -c", "exit status 3", "post hook says no"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := disk
			if !slices.Contains(tt.args, "--dir") {
				dir = shmDir(t)
				stale(dir)
				tt.args = append(tt.args, "--dir", dir)
			}
			res := runCLI(t, tt.env, nil, append(append([]string{"exec"}, tt.args...), command...)...)
			if res.code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", res.code, tt.code, res)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, res)
				}
			}
			if ran() {
				t.Error("the command ran")
			}
			if tt.checkFn != nil {
				tt.checkFn(dir)
			} else {
				empty("after the failure", dir)
			}
			assertAbsent(t, "privy exec's output", []byte(res.stdout+res.stderr), forms)
		})
	}

	// --allow-disk accepts the disk directory: the stale file goes, the
	// secret is placed, and the command runs without privy's token.
	res := runCLI(t, srv.env(srv.root), nil, append([]string{"exec", "--profile", "web", "--dir", disk, "--allow-disk"}, command...)...)
	if res.code != 0 || !ran() {
		t.Fatalf("privy exec --allow-disk did not run the command:\n%s", res)
	}
	if b, err := os.ReadFile(filepath.Join(disk, "x")); err != nil || string(b) != value {
		t.Errorf("--allow-disk: x holds %q (%v), want the secret", redact(string(b)), err)
	}
	if _, err := os.Stat(filepath.Join(disk, "stale")); err == nil {
		t.Error("--allow-disk: the stale file of an earlier run is still there")
	}
	env, err := os.ReadFile(envDump)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(env, []byte("PRIVY_TOKEN=")) || bytes.Contains(env, []byte(srv.root)) {
		t.Error("the command's environment holds PRIVY_TOKEN")
	}
	assertAbsent(t, "the command's environment", env, forms)
	for _, s := range res.samples {
		assertProcClean(t, "privy exec", s, forms)
	}
}

// TestPrivyRunInit is issue 4's privy run --init end to end: privy adds
// to the docker run command the label, the mounts, the tmpfs and privy
// exec as entrypoint, and the image's command then reads the profile's
// file as PID 1. The profile's value is in neither docker inspect nor the
// engine's data root.
func TestPrivyRunInit(t *testing.T) {
	e := newExecEnv(t)
	value := newValue("run-init")
	e.secret("app/x", []byte(value), true)
	e.profile(api.Profile{Name: "app", Files: []api.ProfileFile{{Name: "x", Secret: "app/x"}}})
	cidFile := e.cidFile()
	// No --rm, so the container can be inspected afterwards; no log
	// driver, as the command prints the value.
	res := runCLI(t, []string{"PRIVY_ADDR=" + e.srv.socket}, nil, "run", "--init", "--profile", "app", "--",
		e.docker, "run", "--cidfile", cidFile, "--log-driver", "none", "--network", "none", e.image,
		"sh", "-c", `cat /run/secrets/x; echo; echo "pid=$$"`)
	if res.code != 0 {
		t.Fatalf("privy run --init:\n%s", res)
	}
	if want := value + "\npid=1\n"; res.stdout != want {
		t.Errorf("the command printed %q, want %q", redact(res.stdout), redact(want))
	}
	b, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(b))
	e.containers = append(e.containers, id)
	for format, want := range map[string]string{
		`{{index .Config.Labels "privy.profile"}}`: "app",
		`{{json .Config.Entrypoint}}`:              `["` + ctrPrivy + `"]`,
		`{{json .Config.Cmd}}`:                     `["exec","--profile","app","--dir","/run/secrets","--addr","` + ctrSocket + `","--","sh","-c","cat /run/secrets/x; echo; echo \"pid=$$\""]`,
		`{{json .HostConfig.Tmpfs}}`:               `{"/run/secrets":"rw,noexec,nosuid,nodev,mode=0700"}`,
		`{{.State.ExitCode}}`:                      "0",
	} {
		if got := e.inspect(id, format); got != want {
			t.Errorf("docker inspect %s = %s, want %s", format, got, want)
		}
	}

	mounts := e.inspect(id, `{{range .Mounts}}{{.Type}}:{{.Source}}:{{.Destination}}:{{.RW}} {{end}}`)
	for _, want := range []string{"bind:" + privyBin + ":" + ctrPrivy + ":false", "bind:" + e.srv.socket + ":" + ctrSocket + ":true"} {
		if !strings.Contains(mounts, want) {
			t.Errorf("the container's mounts %q lack %q", mounts, want)
		}
	}

	// Without a command after the image, privy run --init runs the
	// image's (the test image's is /bin/sh, which reads stdin here).
	res = runCLI(t, []string{"PRIVY_ADDR=" + e.srv.socket}, []byte(`echo "pid=$$"; test -s /run/secrets/x && echo placed`+"\n"),
		"run", "--init", "--profile", "app", "--", e.docker, "run", "-i", "--rm", "--cidfile", e.cidFile(), "--log-driver", "none", "--network", "none", e.image)
	if res.code != 0 || res.stdout != "pid=1\nplaced\n" {
		t.Errorf("privy run --init without a command: want the image's shell as PID 1 with the file placed:\n%s", res)
	}
	e.sweep()
}
