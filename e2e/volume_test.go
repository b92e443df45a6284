package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/testenv"
)

// volEnv is a privy server that also serves the Docker volume plugin,
// under a name of its own, with its mounts under a volume root of its own.
type volEnv struct {
	t       *testing.T
	docker  string
	image   string
	srv     *server
	plugin  string // the driver's name for docker
	root    string // --volume-root
	hostDir string // --host-private
	removed map[string]bool
}

// e2ePlugin is the volume plugin name of every e2e test's server; the
// tests that serve it run one after another.
const e2ePlugin = "privy-e2e"

func newVolEnv(t *testing.T) *volEnv {
	t.Helper()
	docker, image := testenv.Docker(t), testenv.BusyboxImage(t)
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "root", "the volume plugin mounts a tmpfs for each container: run the e2e tests as root", nil)
	}
	dir := tempDir(t)
	v := &volEnv{
		t: t, docker: docker, image: image,
		// One name for every test: the engine remembers each volume plugin
		// it has used until it restarts, and retries the ones whose server
		// is gone on every lookup of a volume name it does not know.
		plugin:  e2ePlugin,
		root:    filepath.Join(dir, "volumes"),
		hostDir: filepath.Join(dir, "private.d"),
		removed: map[string]bool{},
	}
	v.srv = startServer(t, "--docker-plugin", v.plugin, "--volume-root", v.root, "--host-private", v.hostDir)
	// Runs after the test's containers and volumes are gone (cleanups run
	// last first). The server stops gracefully, which removes its plugin
	// socket: the engine would retry a dead one for half a minute in
	// every lookup of a volume it does not know.
	t.Cleanup(func() {
		if v.srv.running() {
			v.srv.stop(30 * time.Second)
		}
		os.Remove(filepath.Join("/run/docker/plugins", v.plugin+".sock"))
		if ms := hostMountsUnder(t, v.root); len(ms) > 0 {
			t.Errorf("mounts left under the volume root after the test: %v", ms)
		}
	})
	return v
}

// put stores value at path.
func (v *volEnv) put(path, value string) {
	v.t.Helper()
	if _, err := v.srv.client(v.srv.root).PutSecret(context.Background(), path, []byte(value)); err != nil {
		v.t.Fatalf("storing %s: %v", path, err)
	}
}

// applyProfiles stores the profiles of a privy.yaml with the CLI, as a
// user would.
func (v *volEnv) applyProfiles(manifest string) {
	v.t.Helper()
	f := filepath.Join(tempDir(v.t), "privy-"+randHex(4)+".yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
		v.t.Fatal(err)
	}
	res := runCLI(v.t, v.srv.env(v.srv.root), nil, "profile", "apply", f)
	if res.code != 0 {
		v.t.Fatalf("privy profile apply failed:\n%s", res)
	}
}

// volume creates a privy volume with opts ("profile=web") and removes it
// when the test ends, before the server stops.
func (v *volEnv) volume(opts ...string) string {
	v.t.Helper()
	name := "pe2e-" + randHex(6)
	args := []string{"volume", "create", "--driver", v.plugin}
	for _, o := range opts {
		args = append(args, "--opt", o)
	}
	testenv.Run(v.t, v.docker, append(args, name)...)
	v.t.Cleanup(func() {
		if !v.removed[name] {
			exec.Command(v.docker, "volume", "rm", "--force", name).Run()
		}
	})
	return name
}

// removeVolumes removes volumes with `docker volume rm`.
func (v *volEnv) removeVolumes(names ...string) {
	v.t.Helper()
	testenv.Run(v.t, v.docker, append([]string{"volume", "rm"}, names...)...)
	for _, n := range names {
		v.removed[n] = true
	}
}

// mountArg mounts the volume at /run/secrets.
func (v *volEnv) mountArg(volume string, extra ...string) string {
	return strings.Join(append([]string{"type=volume", "src=" + volume, "dst=/run/secrets", "volume-driver=" + v.plugin}, extra...), ",")
}

// start runs a detached container (no network) with the volume read-only
// at /run/secrets and returns its name; it is removed when the test ends.
func (v *volEnv) start(volume string, cmd ...string) string {
	v.t.Helper()
	return v.startMount(v.mountArg(volume, "readonly"), cmd...)
}

// startRW is start with the volume mounted read-write.
func (v *volEnv) startRW(volume string, cmd ...string) string {
	v.t.Helper()
	return v.startMount(v.mountArg(volume), cmd...)
}

func (v *volEnv) startMount(mount string, cmd ...string) string {
	v.t.Helper()
	name := "pe2e-" + randHex(6)
	v.t.Cleanup(func() { exec.Command(v.docker, "rm", "--force", name).Run() })
	args := []string{"run", "-d", "--name", name, "--network", "none", "--mount", mount, v.image}
	if len(cmd) == 0 {
		cmd = []string{"sleep", "600"}
	}
	testenv.Run(v.t, v.docker, append(args, cmd...)...)
	return name
}

func (v *volEnv) exec(container string, cmd ...string) string {
	v.t.Helper()
	return testenv.Run(v.t, v.docker, append([]string{"exec", container}, cmd...)...)
}

// hostSource returns where on the host the tmpfs at the container's
// /run/secrets is mounted. Docker's inspect does not say (it reports a
// plugin volume's mount point as it was when the container was created),
// so the tmpfs is found by its device number, in the container's mount
// table and then in the host's.
func (v *volEnv) hostSource(container string) string {
	v.t.Helper()
	pid := strings.TrimSpace(testenv.Run(v.t, v.docker, "inspect", "--format", "{{.State.Pid}}", container))
	var dev string
	for _, m := range mountTable(v.t, "/proc/"+pid+"/mountinfo") {
		if m.point == "/run/secrets" {
			dev = m.dev
		}
	}
	if dev == "" {
		v.t.Fatalf("%s has no mount at /run/secrets", container)
	}
	for _, m := range mountTable(v.t, "/proc/self/mountinfo") {
		if m.dev == dev && strings.HasPrefix(m.point, v.root+"/") {
			return m.point
		}
	}
	v.t.Fatalf("the tmpfs at /run/secrets of %s (device %s) is not mounted under the volume root %s", container, dev, v.root)
	return ""
}

// mountLine is one line of a mountinfo file.
type mountLine struct {
	dev, point, opts, fstype, super string
}

func mountTable(t testing.TB, file string) []mountLine {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []mountLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		out = append(out, mountLine{dev: f[2], point: f[4], opts: f[5], fstype: f[sep+1], super: f[sep+3]})
	}
	return out
}

// listing is what `find | stat` shows of /run/secrets in a container:
// "path mode uid gid type" lines, sorted.
func (v *volEnv) listing(container string) []string {
	v.t.Helper()
	out := v.exec(container, "sh", "-c", `find /run/secrets | sort | xargs stat -c "%n %a %u %g %F"`)
	return strings.Split(strings.TrimSpace(out), "\n")
}

// checkSums fails unless each file in the container hashes to the
// SHA-256 of its value (the values themselves never leave the container).
func (v *volEnv) checkSums(container string, want map[string]string) {
	v.t.Helper()
	var files []string
	for f := range want {
		files = append(files, f)
	}
	slices.Sort(files)
	out := v.exec(container, append([]string{"sha256sum"}, files...)...)
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			got[f[1]] = f[0]
		}
	}
	for _, f := range files {
		if got[f] != sum(want[f]) {
			v.t.Errorf("%s in %s does not hold the value it should", f, container)
		}
	}
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// sweep is the no-leak sweep: the values are in no `docker inspect` of
// the containers, no process's argv or environment, no file of the
// engine's data root, and neither the server's log nor its audit log.
func (v *volEnv) sweep(forms []form, containers ...string) {
	v.t.Helper()
	for _, p := range append(slices.Clone(v.srv.logs), filepath.Join(v.srv.dataDir, "audit.log")) {
		assertFileAbsent(v.t, p, forms)
	}
	if len(containers) > 0 {
		out := testenv.Run(v.t, v.docker, append([]string{"inspect"}, containers...)...)
		assertAbsent(v.t, "docker inspect of the test containers", []byte(out), forms)
	}
	b := &buildEnv{t: v.t, docker: v.docker}
	res := &buildResult{environHeld: map[string]bool{}}
	b.sweepProc(res, forms)
	for prog := range res.environHeld {
		v.t.Errorf("the environment of %s holds a secret value", prog)
	}
	b.sweepDataRoot(forms)
}

// assertNothingLeft fails if anything but the driver's state file is left
// under the volume root, or any mount below it.
func (v *volEnv) assertNothingLeft() {
	v.t.Helper()
	if ms := hostMountsUnder(v.t, v.root); len(ms) > 0 {
		v.t.Errorf("mounts left under the volume root: %v", ms)
	}
	filepath.WalkDir(v.root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == v.root || filepath.Base(p) == "volumes.json" {
			return nil
		}
		v.t.Errorf("%s is left under the volume root", p)
		return nil
	})
}

// hostMountsUnder returns the mount points at or below dir in this
// process's mount namespace (the engine's too).
func hostMountsUnder(t testing.TB, dir string) []string {
	var out []string
	for _, m := range mountTable(t, "/proc/self/mountinfo") {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			out = append(out, m.point)
		}
	}
	return out
}

// procMount returns the /proc/mounts line of /run/secrets in a container.
func (v *volEnv) procMount(container string) []string {
	v.t.Helper()
	for _, l := range strings.Split(v.exec(container, "cat", "/proc/mounts"), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[1] == "/run/secrets" {
			return f
		}
	}
	v.t.Fatalf("no /run/secrets in the /proc/mounts of %s", container)
	return nil
}

// TestVolumeProfileFiles is issue test 1: the volume holds exactly its
// profile's files, with their modes and owners, on a tmpfs; another
// container with another profile sees only its own; a commit of the
// running container holds none of them; nothing is left once the
// containers and volumes are removed.
func TestVolumeProfileFiles(t *testing.T) {
	v := newVolEnv(t)
	db, cert, token := newValue("vdb"), newValue("vcert"), newValue("vtoken")
	forms := slices.Concat(leakForms([]byte(db)), leakForms([]byte(cert)), leakForms([]byte(token)))
	v.put("app/web/db-password", db)
	v.put("app/web/cert", cert)
	v.put("app/worker/token", token)
	v.applyProfiles(`run:
  profiles:
    web:
      files:
        db_password: {secret: app/web/db-password, mode: "0440", uid: 1000, gid: 1000}
        tls/cert.pem: {secret: app/web/cert, mode: "0444"}
    worker:
      files:
        token: app/worker/token
`)
	web, worker := v.volume("profile=web"), v.volume("profile=worker")
	c1, c2 := v.start(web), v.startRW(worker)

	if got, want := v.listing(c1), []string{
		"/run/secrets 711 0 0 directory",
		"/run/secrets/db_password 440 1000 1000 regular file",
		"/run/secrets/tls 755 0 0 directory",
		"/run/secrets/tls/cert.pem 444 0 0 regular file",
	}; !slices.Equal(got, want) {
		t.Errorf("web's /run/secrets:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	v.checkSums(c1, map[string]string{"/run/secrets/db_password": db, "/run/secrets/tls/cert.pem": cert})
	if got, want := v.listing(c2), []string{
		"/run/secrets 711 0 0 directory",
		"/run/secrets/token 400 0 0 regular file",
	}; !slices.Equal(got, want) {
		t.Errorf("worker's /run/secrets:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	v.checkSums(c2, map[string]string{"/run/secrets/token": token})

	// In the container: a size-limited tmpfs; read-write, it keeps the
	// host mount's nosuid, nodev and noexec. Read-only, the engine's
	// remount (runc) resets those per-mount flags, but then no one can
	// create a device, set-uid or executable file there either.
	for c, want := range map[string][]string{c1: {"ro"}, c2: {"rw", "nosuid", "nodev", "noexec"}} {
		m := v.procMount(c)
		opts := strings.Split(m[3], ",")
		if m[2] != "tmpfs" || !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "size=") }) {
			t.Errorf("/run/secrets in %s is %q; want a size-limited tmpfs", c, m)
		}
		for _, w := range want {
			if !slices.Contains(opts, w) {
				t.Errorf("/run/secrets in %s is mounted %s; want %s", c, m[3], w)
			}
		}
	}
	s1, s2 := v.hostSource(c1), v.hostSource(c2)
	if s1 == s2 {
		t.Errorf("two containers share the tmpfs %s", s1)
	}
	var under []string
	for _, m := range mountTable(t, "/proc/self/mountinfo") {
		if !strings.HasPrefix(m.point, v.root+"/") {
			continue
		}
		under = append(under, m.point)
		opts := strings.Split(m.opts, ",")
		if m.fstype != "tmpfs" || !slices.Contains(opts, "nosuid") || !slices.Contains(opts, "nodev") || !slices.Contains(opts, "noexec") {
			t.Errorf("host mount %s: %s %s; want a tmpfs, nosuid, nodev, noexec", m.point, m.fstype, m.opts)
		}
	}
	if slices.Sort(under); !slices.Equal(under, slices.Sorted(slices.Values([]string{s1, s2}))) {
		t.Errorf("host mounts under the volume root: %v, want %s and %s", under, s1, s2)
	}

	// A commit of the running container holds none of the files.
	tag := "privy-e2e/vcommit:" + randHex(6)
	t.Cleanup(func() { exec.Command(v.docker, "image", "rm", "--force", tag).Run() })
	testenv.Run(t, v.docker, "commit", c1, tag)
	if out := testenv.Run(t, v.docker, "run", "--rm", "--network", "none", tag, "find", "/run/secrets", "-type", "f"); strings.TrimSpace(out) != "" {
		t.Errorf("the committed image holds files under /run/secrets: %s", out)
	}
	scanSave(t, v.docker, tag, forms, nil)
	v.sweep(forms, c1, c2)

	testenv.Run(t, v.docker, "rm", "--force", c1, c2)
	v.removeVolumes(web, worker)
	v.assertNothingLeft()
	for _, p := range []string{s1, s2} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s still exists after the volume was removed", p)
		}
	}
}

// TestVolumeHostPrivateAndOneshot is issue test 2: the host's private
// files reach the container; a one-shot file overrides a profile file for
// one container only, and the server forgets it once mounted.
func TestVolumeHostPrivateAndOneshot(t *testing.T) {
	v := newVolEnv(t)
	host, key, once := newValue("vhost"), newValue("vkey"), newValue("vonce")
	forms := slices.Concat(leakForms([]byte(host)), leakForms([]byte(key)), leakForms([]byte(once)))
	if err := os.MkdirAll(filepath.Join(v.hostDir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.hostDir, "pki", "entitlement.pem"), []byte(host), 0o600); err != nil {
		t.Fatal(err)
	}
	v.put("app/api-key", key)
	v.applyProfiles(`run:
  profiles:
    api:
      host_private: true
      files:
        api.key: app/api-key
`)
	c := v.srv.client(v.srv.root)
	ticket, err := c.Oneshot(context.Background(), "api", []api.OneshotFile{{Name: "api.key", Value: []byte(once)}})
	if err != nil {
		t.Fatalf("creating a one-shot ticket: %v", err)
	}
	vol := v.volume("profile=api", "oneshot="+ticket.Ticket)
	first := v.start(vol)
	second := v.start(vol)
	other := v.start(v.volume("profile=api"))

	want := []string{
		"/run/secrets 711 0 0 directory",
		"/run/secrets/api.key 400 0 0 regular file",
		"/run/secrets/pki 755 0 0 directory",
		"/run/secrets/pki/entitlement.pem 400 0 0 regular file",
	}
	for _, ct := range []string{first, second, other} {
		if got := v.listing(ct); !slices.Equal(got, want) {
			t.Errorf("/run/secrets of %s:\n%s\nwant\n%s", ct, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	v.checkSums(first, map[string]string{"/run/secrets/api.key": once, "/run/secrets/pki/entitlement.pem": host})
	v.checkSums(second, map[string]string{"/run/secrets/api.key": key, "/run/secrets/pki/entitlement.pem": host})
	v.checkSums(other, map[string]string{"/run/secrets/api.key": key, "/run/secrets/pki/entitlement.pem": host})

	// The server forgot the per-run file once it was mounted.
	if r, err := c.Render(context.Background(), "api", api.RenderRequest{Oneshot: ticket.Ticket}); err == nil {
		t.Errorf("a second render with the used ticket succeeded (%d files)", len(r.Files))
	}
	v.sweep(forms, first, second, other)
	testenv.Run(t, v.docker, "rm", "--force", first, second, other)
}

// TestVolumeRotation is issue test 5: a reader loop in a running container
// never sees a partial or missing file while the secret is rotated 100
// times, and the last version is in place within a second of the last
// change.
func TestVolumeRotation(t *testing.T) {
	v := newVolEnv(t)
	const n = 100
	values := make([]string, n+1)
	known := map[string]bool{}
	for i := range values {
		// Different lengths, so that part of one value is never another.
		values[i] = newValue("vrot") + strings.Repeat("-", i*41)
		known[sum(values[i])] = true
	}
	forms := slices.Concat(leakForms([]byte(values[0])), leakForms([]byte(values[n/2])), leakForms([]byte(values[n])))
	v.put("app/rotating", values[0])
	v.applyProfiles(`run:
  profiles:
    rot:
      files:
        x: {secret: app/rotating, mode: "0444"}
`)
	vol := v.volume("profile=rot")
	// The reader prints a hash of each read, never the value: the log is
	// a file in the engine's data root.
	reader := v.start(vol, "sh", "-c", "while :; do sha256sum /run/secrets/x 2>&1; done")
	src := v.hostSource(reader)
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(testenv.Run(t, v.docker, "logs", reader), "\n") < 5 {
		if time.Now().After(deadline) {
			t.Fatal("the reader printed nothing within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	c := v.srv.client(v.srv.root)
	start := time.Now()
	for i := 1; i <= n; i++ {
		if _, err := c.PutSecret(context.Background(), "app/rotating", []byte(values[i])); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	last := time.Now()
	for {
		b, _ := os.ReadFile(filepath.Join(src, "x"))
		if string(b) == values[n] {
			break
		}
		if time.Since(last) > time.Second {
			t.Fatalf("the last version was not in place within 1s of the last change")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("%d rotations in %v; the last was in place %v after it was stored", n, last.Sub(start), time.Since(last).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond) // let the reader read the last version
	testenv.Run(t, v.docker, "kill", reader)

	lines := strings.Split(strings.TrimSpace(testenv.Run(t, v.docker, "logs", reader)), "\n")
	seen := map[string]bool{}
	bad := 0
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 || f[1] != "/run/secrets/x" || !known[f[0]] {
			if bad++; bad <= 3 {
				t.Errorf("the reader saw something other than a complete version: %q", redact(l))
			}
			continue
		}
		seen[f[0]] = true
	}
	if bad > 0 {
		t.Errorf("%d of %d reads were not a complete version", bad, len(lines))
	}
	t.Logf("%d reads saw %d different versions", len(lines), len(seen))
	if got := strings.Fields(lines[len(lines)-1]); len(got) == 0 || got[0] != sum(values[n]) {
		t.Error("the reader's last read was not the last version")
	}
	renders := 0
	for _, e := range readAuditEntries(t, filepath.Join(v.srv.dataDir, "audit.log")) {
		if e.Op == "profile.render" && strings.HasPrefix(e.Actor, "volume:"+vol) {
			renders++
		}
	}
	t.Logf("%d audited renders of the volume's profile for %d rotations", renders, n)
	v.sweep(forms, reader)
}

// TestVolumeMountFailures: an unknown profile or a missing secret stops
// `docker run` with an error naming it, and no container runs.
func TestVolumeMountFailures(t *testing.T) {
	v := newVolEnv(t)
	v.put("app/present", newValue("vpresent"))
	v.applyProfiles(`run:
  profiles:
    broken:
      files:
        present: app/present
        gone: app/not-there
`)
	for _, tt := range []struct {
		name, profile string
		want          []string
	}{
		{"unknown profile", "nope", []string{`profile "nope"`}},
		{"missing secret", "broken", []string{`profile "broken"`, "app/not-there"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vol := "pe2e-" + randHex(6)
			ct := "pe2e-" + randHex(6)
			t.Cleanup(func() {
				exec.Command(v.docker, "rm", "--force", ct).Run()
				exec.Command(v.docker, "volume", "rm", "--force", vol).Run()
			})
			cmd := exec.Command(v.docker, "run", "--rm", "--name", ct, "--network", "none",
				"--mount", v.mountArg(vol, "volume-opt=profile="+tt.profile), v.image, "true")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("docker run succeeded:\n%s", redact(string(out)))
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("docker run's error does not name %s:\n%s", w, redact(string(out)))
				}
			}
			if ps := testenv.Run(t, v.docker, "ps", "--quiet", "--filter", "name=^"+ct+"$", "--filter", "status=running"); strings.TrimSpace(ps) != "" {
				t.Errorf("container %s runs although its volume failed", ct)
			}
			v.assertNothingLeft()
		})
	}
}
