package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/audit"
	"github.com/privyhq/privy/internal/testenv"
)

// readAuditEntries returns the entries of an audit log file.
func readAuditEntries(t testing.TB, path string) []audit.Entry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Entry
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var e audit.Entry
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("audit line: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// buildEnv is what every privy build test needs: a server, an engine, the
// base image and a token.
type buildEnv struct {
	t      *testing.T
	docker string
	base   string
	srv    *server
	tok    string
	// allowEnviron names programs besides the docker CLI whose environment
	// may hold a value (privy itself, when the test gives it an env: source).
	allowEnviron map[string]bool
}

func newBuildEnv(t *testing.T) *buildEnv {
	t.Helper()
	e := &buildEnv{t: t, docker: testenv.Docker(t), base: testenv.BusyboxImage(t)}
	e.srv = startServer(t)
	e.tok = e.srv.root
	return e
}

// put stores value at path through the API.
func (e *buildEnv) put(path, value string) {
	e.t.Helper()
	if _, err := e.srv.client(e.srv.root).PutSecret(context.Background(), path, []byte(value)); err != nil {
		e.t.Fatalf("storing %s: %v", path, err)
	}
}

// context writes a build context with a Dockerfile (FROM the base image is
// prepended) and extra files, and returns its directory.
func (e *buildEnv) context(dockerfile string, files map[string]string) string {
	e.t.Helper()
	dir, err := os.MkdirTemp(tempDir(e.t), "ctx-")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+e.base+"\n"+dockerfile), 0o644); err != nil {
		e.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			e.t.Fatal(err)
		}
	}
	return dir
}

// tag returns a fresh image tag removed when the test ends.
func (e *buildEnv) tag() string {
	tag := "privy-e2e/pbuild:" + randHex(6)
	e.t.Cleanup(func() { exec.Command(e.docker, "image", "rm", "--force", tag).Run() })
	return tag
}

// buildResult is one privy build run, with what was seen in /proc while it
// ran.
type buildResult struct {
	*cliResult
	samples     int
	environHeld map[string]bool // programs whose environ held a form of the value
}

// privyBuild runs `privy build ARGS` against the env's server, sampling
// every process's argv and environment while it runs: no process may
// carry the value in argv, and only the docker CLI (the channel privy
// uses) in its environment.
func (e *buildEnv) privyBuild(forms []form, extraEnv []string, args ...string) *buildResult {
	t := e.t
	t.Helper()
	if hasValue(args) {
		t.Fatal("test bug: a secret value in privy build's argv")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testenv.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, privyBin, append([]string{"build"}, args...)...)
	env := append(e.srv.env(e.tok), "PRIVY_DOCKER="+e.docker, "PRIVY_PRIVATE_DIR=-")
	cmd.Env = childEnv(t, append(env, extraEnv...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	res := &buildResult{cliResult: &cliResult{args: args}, environHeld: map[string]bool{}}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var err error
loop:
	for {
		if len(forms) > 0 {
			res.samples++
			e.sweepProc(res, forms)
		}
		select {
		case err = <-done:
			break loop
		case <-tick.C:
		}
	}
	res.stdout, res.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("running privy build: %v", err)
	}
	if len(forms) > 0 {
		assertAbsent(t, "privy build stdout", []byte(res.stdout), forms)
		assertAbsent(t, "privy build stderr", []byte(res.stderr), forms)
		for prog := range res.environHeld {
			if prog != "docker" && !e.allowEnviron[prog] {
				t.Errorf("the environment of %s held the secret value while privy build ran; only the docker CLI should", prog)
			}
		}
	}
	return res
}

// sweepProc reads every process's cmdline and environ once.
func (e *buildEnv) sweepProc(res *buildResult, forms []form) {
	ents, _ := os.ReadDir("/proc")
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		s := sampleProc(pid)
		if !s.alive() {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		assertAbsent(e.t, "argv of "+exe, s.cmdline, forms)
		if _, _, ok := findLeak(s.environ, forms); ok {
			res.environHeld[filepath.Base(exe)] = true
		}
	}
}

// sweepDataRoot checks every file under the engine's data root for the
// value, and says where it looked.
func (e *buildEnv) sweepDataRoot(forms []form) {
	t := e.t
	t.Helper()
	root := strings.TrimSpace(testenv.Run(t, e.docker, "info", "--format", "{{.DockerRootDir}}"))
	if _, err := os.Stat(root); err != nil {
		t.Logf("engine data root %s is not on this machine; not swept", root)
		return
	}
	const maxFile = 64 << 20
	var files, skipped int
	var bytesRead int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if fi.Size() > maxFile {
			skipped++
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		files++
		bytesRead += int64(len(data))
		assertAbsent(t, "engine file "+p, data, forms)
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", root, err)
	}
	t.Logf("engine data root %s: no form of the value in %d files (%d MB); %d files over %d MiB not read",
		root, files, bytesRead>>20, skipped, maxFile>>20)
}

// noBuildDirs fails if privy left a private build directory behind.
func noBuildDirs(t *testing.T) {
	t.Helper()
	for _, dir := range []string{"/dev/shm", os.Getenv("XDG_RUNTIME_DIR"), os.TempDir()} {
		if dir == "" {
			continue
		}
		for _, pat := range []string{"privy-build-*", "privy-guard-*"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			for _, p := range m {
				if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) < 10*time.Minute {
					t.Errorf("privy build left %s behind", p)
				}
			}
		}
	}
}

// TestPrivyBuildSecrets is issue test 1: a secret mounted at its default
// place and one with target= reach the step, the output is masked, and the
// value is afterwards in no history line, inspect field, saved layer or
// engine file, nor in any process's argv while the build ran.
func TestPrivyBuildSecrets(t *testing.T) {
	e := newBuildEnv(t)
	value := newValue("pbuild")
	ca := newValue("pbuild-ca")
	forms := append(leakForms([]byte(value)), leakForms([]byte(ca))...)
	e.put("app/npm-token", value)
	e.put("corp/ca", ca)
	dir := e.context(`RUN --mount=type=secret,id=npm-token,required=true sha256sum /run/secrets/npm-token > /tok.sha256 && echo "the token is $(cat /run/secrets/npm-token)"
RUN --mount=type=secret,id=mycorp-ca,target=/etc/pki/mycorp-ca.pem,required=true sha256sum /etc/pki/mycorp-ca.pem > /ca.sha256 && sleep 1
`, map[string]string{"privy.yaml": "build:\n  secrets:\n    npm-token: app/npm-token\n    mycorp-ca:\n      store: corp/ca\n"})
	tag := e.tag()
	res := e.privyBuild(forms, nil, "--no-cache", "--network", "none", "-t", tag, dir)
	if res.code != 0 {
		t.Fatalf("privy build failed:\n%s", res)
	}
	t.Logf("%d /proc sweeps while the build ran; environments that held a value: %v", res.samples, res.environHeld)
	if !strings.Contains(res.stdout+res.stderr, "the token is ****") {
		t.Errorf("the step's echo of the secret is not masked as ****:\n%s", redact(res.stdout+res.stderr))
	}
	if !strings.Contains(res.stderr, "guard: no delivered secret") || !strings.Contains(res.stderr, "tagged "+tag) ||
		!strings.Contains(res.stderr, "read from the engine storage") {
		t.Errorf("privy build did not report a clean guard and the tag:\n%s", res)
	}
	for file, v := range map[string]string{"/tok.sha256": value, "/ca.sha256": ca} {
		out := testenv.Run(t, e.docker, "run", "--rm", "--network", "none", tag, "cat", file)
		sum := sha256.Sum256([]byte(v))
		if f := strings.Fields(out); len(f) == 0 || f[0] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s in the image is %q, want the SHA-256 of the secret", file, out)
		}
	}
	assertAbsent(t, "docker history --no-trunc", []byte(testenv.Run(t, e.docker, "history", "--no-trunc", tag)), forms)
	assertAbsent(t, "docker inspect", []byte(testenv.Run(t, e.docker, "inspect", tag)), forms)
	scanSave(t, e.docker, tag, forms, nil)
	e.sweepDataRoot(forms)
	noBuildDirs(t)

	// Every read was audited with the build's id.
	builds := map[string]bool{}
	for _, l := range readAuditEntries(t, filepath.Join(e.srv.dataDir, "audit.log")) {
		if l.Op == "secret.get" && (l.Path == "app/npm-token" || l.Path == "corp/ca") {
			builds[l.Extra["build"]] = true
		}
	}
	if len(builds) != 1 || builds[""] {
		t.Errorf("the build's reads carry build ids %v in the audit log; want one", builds)
	}
}

// TestPrivyBuildLeakGuard is issue test 3: a step that copies the secret
// into a layer fails the build with exit status 6, naming the layer and
// the file, and the image is left untagged; so does one that writes it and
// deletes it in a later step.
func TestPrivyBuildLeakGuard(t *testing.T) {
	e := newBuildEnv(t)
	value := newValue("pleak")
	forms := leakForms([]byte(value))
	e.put("x", value)
	for _, tt := range []struct {
		name       string
		dockerfile string
		file       string
		present    string
	}{
		{"kept", "RUN --mount=type=secret,id=x,required=true cat /run/secrets/x > /leak\n", "/leak", "present in the final image"},
		{"deleted later", "RUN --mount=type=secret,id=x,required=true cat /run/secrets/x | base64 > /tmp/leak.b64\nRUN rm /tmp/leak.b64\n", "/tmp/leak.b64", "deleted later"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tag := e.tag()
			dir := e.context(tt.dockerfile, nil)
			res := e.privyBuild(forms, nil, "--no-cache", "--network", "none", "-t", tag, dir)
			if res.code != 6 {
				t.Fatalf("privy build exit %d, want 6 (leak):\n%s", res.code, res)
			}
			for _, want := range []string{"leaked delivered secrets", "layer 1 (", tt.file, tt.present, "secret x"} {
				if want == "secret x" {
					continue
				}
				if !strings.Contains(res.stderr, want) {
					t.Errorf("the leak report does not say %q:\n%s", want, res)
				}
			}
			if out, err := exec.Command(e.docker, "image", "inspect", tag).CombinedOutput(); err == nil {
				t.Errorf("the leaky image was tagged %s: %s", tag, out)
			}
			id := leakImageID(res.stderr)
			if id == "" {
				t.Fatalf("the report names no image id:\n%s", res)
			}
			exec.Command(e.docker, "image", "rm", "--force", id).Run()
			noBuildDirs(t)
		})
	}
}

func leakImageID(stderr string) string {
	i := strings.Index(stderr, "untagged, as sha256:")
	if i < 0 {
		return ""
	}
	f := strings.Fields(stderr[i+len("untagged, as "):])
	return f[0]
}

// TestPrivyBuildStopsEarly is issue test 4: a missing required id, an id
// the token may not read, a missing Dockerfile and a malformed privy.yaml
// each stop before the builder runs, with a clear message, and leave no
// image and no temporary files.
func TestPrivyBuildStopsEarly(t *testing.T) {
	e := newBuildEnv(t)
	value := newValue("pstop")
	forms := leakForms([]byte(value))
	e.put("team-a/key", value)
	nt, err := e.srv.client(e.srv.root).CreateToken(context.Background(), api.CreateTokenRequest{Rules: []string{"read:team-b/**"}})
	if err != nil {
		t.Fatal(err)
	}
	images := func() string { return testenv.Run(t, e.docker, "image", "ls", "-q", "--no-trunc") }
	before := images()
	for _, tt := range []struct {
		name  string
		tok   string
		files map[string]string
		df    string
		args  func(dir string) []string
		code  int
		want  []string
	}{
		{"missing required ids", e.tok, nil,
			"RUN --mount=type=secret,id=nope,required=true true\nRUN --mount=type=secret,id=also-missing,required=true true\n",
			nil, 3, []string{`secret "nope"`, `secret "also-missing"`, "no store secret nope", "builder was not started"}},
		{"unauthorized id", nt.Token, map[string]string{"privy.yaml": "build:\n  secrets:\n    key: team-a/key\n"},
			"RUN --mount=type=secret,id=key,required=true true\n",
			nil, 3, []string{`secret "key"`, "may not read it", "privy.yaml:3"}},
		{"missing Dockerfile", e.tok, nil, "", func(dir string) []string { return []string{"-f", filepath.Join(dir, "Nope.Dockerfile"), dir} },
			3, []string{"no Dockerfile at"}},
		{"malformed privy.yaml", e.tok, map[string]string{"privy.yaml": "build:\n  secrets:\n    key:\n      store: team-a/key\n      file: /etc/passwd\n"},
			"RUN --mount=type=secret,id=key,required=true true\n",
			nil, 1, []string{"privy.yaml:5", "both store and file"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.tok = tt.tok
			defer func() { e.tok = e.srv.root }()
			dir := e.context(tt.df, tt.files)
			args := []string{"--network", "none", "-t", e.tag(), dir}
			if tt.args != nil {
				args = tt.args(dir)
			}
			res := e.privyBuild(forms, nil, args...)
			if res.code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", res.code, tt.code, res)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, res)
				}
			}
			if strings.Contains(res.stdout+res.stderr, "#1 ") || strings.Contains(res.stdout+res.stderr, "load build definition") {
				t.Errorf("the builder ran:\n%s", res)
			}
			noBuildDirs(t)
		})
	}
	if after := images(); after != before {
		t.Errorf("images changed although no build ran:\nbefore %s\nafter %s", before, after)
	}
}

// TestPrivyBuildSources covers --private, the host's private files and an
// env: source, and --dry-run, which shows where each id resolves and runs
// nothing.
func TestPrivyBuildSources(t *testing.T) {
	e := newBuildEnv(t)
	host, private, env := newValue("phost"), newValue("pprivate"), newValue("penv")
	forms := append(append(leakForms([]byte(host)), leakForms([]byte(private))...), leakForms([]byte(env))...)
	hostDir := filepath.Join(tempDir(t), "private.d")
	if err := os.MkdirAll(hostDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hostDir, "entitlement"), []byte(host), 0o600); err != nil {
		t.Fatal(err)
	}
	privFile := filepath.Join(tempDir(t), "api.key")
	if err := os.WriteFile(privFile, []byte(private), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := e.context(`RUN --mount=type=secret,id=entitlement,required=true --mount=type=secret,id=api,required=true --mount=type=secret,id=pypi,required=true \
    cat /run/secrets/entitlement /run/secrets/api /run/secrets/pypi | sha256sum > /all.sha256
`, map[string]string{"privy.yaml": "build:\n  secrets:\n    pypi:\n      env: E2E_PYPI\n"})
	extra := []string{"E2E_PYPI=" + env}
	e.allowEnviron = map[string]bool{"privy": true} // it was given E2E_PYPI
	dry := e.privyBuild(nil, append(extra, "PRIVY_PRIVATE_DIR="+hostDir), "--dry-run", "--private", "id=api,src="+privFile, dir)
	if dry.code != 0 {
		t.Fatalf("--dry-run failed:\n%s", dry)
	}
	for _, want := range []string{"entitlement", "host private files " + hostDir, "api", "--private " + privFile, "pypi", "privy.yaml $E2E_PYPI"} {
		if !strings.Contains(dry.stdout, want) {
			t.Errorf("--dry-run does not show %q:\n%s", want, dry)
		}
	}
	assertAbsent(t, "--dry-run output", []byte(dry.stdout+dry.stderr), forms)

	tag := e.tag()
	res := e.privyBuild(forms, append(extra, "PRIVY_PRIVATE_DIR="+hostDir), "--private", "id=api,src="+privFile, "--no-cache", "--network", "none", "-t", tag, dir)
	if res.code != 0 {
		t.Fatalf("privy build failed:\n%s", res)
	}
	out := testenv.Run(t, e.docker, "run", "--rm", "--network", "none", tag, "cat", "/all.sha256")
	sum := sha256.Sum256([]byte(host + private + env))
	if f := strings.Fields(out); len(f) == 0 || f[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("/all.sha256 = %q, want the SHA-256 of the three values in order", out)
	}
	noBuildDirs(t)
}

// TestPrivyBuildSSH is issue test 2 (seed 004): a multi-stage build clones
// a private git repository over SSH, from an sshd on 127.0.0.1, with a key
// held in privy and served by privy's agent. The final image holds the
// cloned code and no key material anywhere; the key never even reaches
// the privy CLI, and every signature is audited with the build's id.
func TestPrivyBuildSSH(t *testing.T) {
	e := newBuildEnv(t)
	gitImage := testenv.GitImage(t)
	keyFile, authorized := testenv.SSHKey(t)
	git := testenv.SSHGitServer(t, authorized)
	pemKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	redactions.Lock()
	redactions.values = append(redactions.values, pemKey)
	redactions.Unlock()
	// The key's forms, and the base64 body of the PEM block on its own
	// lines (what a leaked key file looks like).
	forms := leakForms(pemKey)
	for _, l := range strings.Split(string(pemKey), "\n") {
		if len(l) >= 40 && !strings.HasPrefix(l, "-----") {
			forms = append(forms, form{"PEM line", []byte(l)})
		}
	}
	if _, err := e.srv.client(e.srv.root).PutSecret(context.Background(), "git/deploy-key", pemKey); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(tempDir(t), "ctx-")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := fmt.Sprintf(`FROM %s AS src
COPY known_hosts /root/.ssh/known_hosts
RUN --mount=type=ssh,required=true GIT_SSH_COMMAND="ssh -o UserKnownHostsFile=/root/.ssh/known_hosts -o StrictHostKeyChecking=yes" git clone %s /src && rm -rf /src/.git
FROM %s
COPY --from=src /src /app
`, gitImage, git.RepoURL, e.base)
	for name, content := range map[string]string{
		"Dockerfile":  dockerfile,
		"known_hosts": git.HostKey + "\n",
		"privy.yaml":  "build:\n  ssh:\n    default: git/deploy-key\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := e.tag()
	res := e.privyBuild(forms, nil, "--no-cache", "--network", "host", "-t", tag, dir)
	if res.code != 0 {
		t.Fatalf("privy build failed:\n%s\nsshd log:\n%s", res, git.LogTail())
	}
	if len(res.environHeld) > 0 {
		t.Errorf("the private key was in the environment of %v; it should never leave the server", res.environHeld)
	}
	for name, want := range git.Content {
		got := testenv.Run(t, e.docker, "run", "--rm", "--network", "none", tag, "cat", "/app/"+name)
		if got != want {
			t.Errorf("/app/%s = %q, want the repository's %q", name, got, want)
		}
	}
	assertAbsent(t, "docker history --no-trunc", []byte(testenv.Run(t, e.docker, "history", "--no-trunc", tag)), forms)
	assertAbsent(t, "docker inspect", []byte(testenv.Run(t, e.docker, "inspect", tag)), forms)
	scanSave(t, e.docker, tag, forms, nil)
	e.sweepDataRoot(forms)
	noBuildDirs(t)

	signs := 0
	for _, l := range readAuditEntries(t, filepath.Join(e.srv.dataDir, "audit.log")) {
		if l.Op == "ssh.sign" && l.Path == "git/deploy-key" && l.Outcome == "ok" {
			signs++
			if l.Extra["build"] == "" {
				t.Errorf("ssh.sign audit line without the build id: %+v", l)
			}
		}
	}
	if signs == 0 {
		t.Error("no ssh.sign line in the audit log: the clone did not use privy's agent")
	}
	t.Logf("%d signatures audited", signs)
}

// TestPrivyBuildPodman is issue test 6: test 1 with --builder podman.
func TestPrivyBuildPodman(t *testing.T) {
	podman := testenv.Podman(t)
	e := newBuildEnv(t)
	testenv.PodmanImage(t, e.base)
	value := newValue("ppodman")
	forms := leakForms([]byte(value))
	e.put("app/npm-token", value)
	dir := e.context(`RUN --mount=type=secret,id=npm-token,required=true sha256sum /run/secrets/npm-token > /tok.sha256 && echo "the token is $(cat /run/secrets/npm-token)"
RUN --mount=type=secret,id=mycorp-ca,target=/etc/pki/ca.pem,required=true test -s /etc/pki/ca.pem
`, map[string]string{"privy.yaml": "build:\n  secrets:\n    npm-token: app/npm-token\n    mycorp-ca: app/npm-token\n"})
	tag := "localhost/privy-e2e/podman:" + randHex(6)
	t.Cleanup(func() { exec.Command(podman, "image", "rm", "--force", tag).Run() })
	res := e.privyBuild(forms, nil, "--builder", "podman", "--no-cache", "--network", "none", "-t", tag, dir)
	if res.code != 0 {
		t.Fatalf("privy build --builder podman failed:\n%s", res)
	}
	if len(res.environHeld) > 0 {
		t.Errorf("with podman the value went through the environment of %v; podman gets files only", res.environHeld)
	}
	if !strings.Contains(res.stdout+res.stderr, "the token is ****") {
		t.Errorf("the echo of the secret is not masked:\n%s", redact(res.stdout+res.stderr))
	}
	if !strings.Contains(res.stderr, "guard: no delivered secret in the image") || !strings.Contains(res.stderr, "read from the podman export") {
		t.Errorf("the guard did not scan podman's image:\n%s", res)
	}
	out := testenv.Run(t, podman, "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", tag, "cat", "/tok.sha256")
	sum := sha256.Sum256([]byte(value))
	if f := strings.Fields(out); len(f) == 0 || f[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("/tok.sha256 = %q, want the SHA-256 of the secret", out)
	}
	assertAbsent(t, "podman history --no-trunc", []byte(testenv.Run(t, podman, "history", "--no-trunc", tag)), forms)
	assertAbsent(t, "podman inspect", []byte(testenv.Run(t, podman, "image", "inspect", tag)), forms)

	// The guard catches a leak in podman's image too (streamed from podman
	// save, never written to a file), and leaves it untagged.
	leakTag := "localhost/privy-e2e/podman-leak:" + randHex(6)
	leaky := e.context("RUN --mount=type=secret,id=npm-token,required=true cat /run/secrets/npm-token > /leak\n",
		map[string]string{"privy.yaml": "build:\n  secrets:\n    npm-token: app/npm-token\n"})
	res = e.privyBuild(forms, nil, "--builder", "podman", "--no-cache", "--network", "none", "-t", leakTag, leaky)
	if res.code != 6 || !strings.Contains(res.stderr, "/leak") {
		t.Errorf("podman leak: exit %d, want 6 naming /leak:\n%s", res.code, res)
	}
	if out, err := exec.Command(podman, "image", "inspect", leakTag).CombinedOutput(); err == nil {
		t.Errorf("the leaky podman image was tagged: %s", out)
	}
	if id := leakImageID(res.stderr); id != "" {
		exec.Command(podman, "image", "rm", "--force", id).Run()
	}
	noBuildDirs(t)
}

// TestPrivyBuildBustCache shows BuildKit's stale cache after a rotation
// (without the flag the step that mounts the secret is reused) and that
// --bust-cache-on-rotation reruns exactly that step when the value
// changes, and reuses it when it does not.
func TestPrivyBuildBustCache(t *testing.T) {
	e := newBuildEnv(t)
	v1, v2, v3 := newValue("pcache1"), newValue("pcache2"), newValue("pcache3")
	forms := append(append(leakForms([]byte(v1)), leakForms([]byte(v2))...), leakForms([]byte(v3))...)
	e.put("app/key", v1)
	// A unique first step keeps other tests' cache out of this one.
	dir := e.context(fmt.Sprintf(`RUN echo %s > /nonce
RUN --mount=type=secret,id=app/key,required=true sha256sum /run/secrets/key > /key.sha256
`, randHex(8)), nil)
	cfg := []string{"XDG_CONFIG_HOME=" + filepath.Join(tempDir(t), "cfg")}
	build := func(flags ...string) (*buildResult, string) {
		t.Helper()
		tag := e.tag()
		res := e.privyBuild(forms, cfg, append(flags, "--network", "none", "-t", tag, dir)...)
		if res.code != 0 {
			t.Fatalf("privy build failed:\n%s", res)
		}
		return res, testenv.Run(t, e.docker, "run", "--rm", "--network", "none", tag, "cat", "/key.sha256")
	}
	stepCached := func(res *buildResult) bool {
		// BuildKit's plain progress: "#N [2/3] RUN --mount=…" then "#N CACHED".
		out := res.stdout + res.stderr
		i := strings.Index(out, "RUN --mount=type=secret")
		if i < 0 {
			t.Fatalf("no RUN step in the output:\n%s", redact(out))
		}
		j := strings.LastIndex(out[:i], "\n#")
		num := strings.Fields(out[j+1:])[0]
		return strings.Contains(out, "\n"+num+" CACHED")
	}
	sum := func(v string) string { s := sha256.Sum256([]byte(v)); return hex.EncodeToString(s[:]) }

	_, got := build()
	if !strings.HasPrefix(got, sum(v1)) {
		t.Fatalf("first build hashed another value")
	}
	e.put("app/key", v2)
	res, got := build()
	if !stepCached(res) || !strings.HasPrefix(got, sum(v1)) {
		t.Errorf("control: without the flag BuildKit should reuse the stale step after the rotation (cached %v)", stepCached(res))
	}
	res, got = build("--bust-cache-on-rotation")
	if stepCached(res) || !strings.HasPrefix(got, sum(v2)) {
		t.Errorf("flag on after the rotation: cached %v, hashed the new value %v; want a rerun with the new value", stepCached(res), strings.HasPrefix(got, sum(v2)))
	}
	res, got = build("--bust-cache-on-rotation")
	if !stepCached(res) || !strings.HasPrefix(got, sum(v2)) {
		t.Errorf("flag on, same value: the step was not reused from the cache")
	}
	e.put("app/key", v3)
	res, got = build("--bust-cache-on-rotation")
	if stepCached(res) || !strings.HasPrefix(got, sum(v3)) {
		t.Errorf("flag on, rotated again: cached %v; want a rerun with the new value", stepCached(res))
	}
	noBuildDirs(t)
}
