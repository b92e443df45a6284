package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/testenv"
)

// TestDockerBuildSecret proves, on a real engine, the path a build secret
// takes from privy into a BuildKit build: the value stored in privy reaches
// the RUN step through the builder's environment only (never argv), and
// leaves no trace in the image: not in `docker history`, not in `docker
// inspect`, not in any file of any layer of `docker save`, nor in the
// engine's BuildKit state once the build is done.
func TestDockerBuildSecret(t *testing.T) {
	docker := testenv.Docker(t)
	base := testenv.BusyboxImage(t)
	ctx := context.Background()

	s := startServer(t)
	c := s.client(s.root)
	value := newValue("build")
	forms := leakForms([]byte(value))
	const path = "e2e/build/tok"
	m, err := c.PutSecret(ctx, path, []byte(value))
	if err != nil {
		t.Fatalf("storing the secret: %v", err)
	}
	got, err := c.GetSecret(ctx, path, m.Version)
	if err != nil {
		t.Fatalf("reading the secret back: %v", err)
	}
	if string(got.Value) != value {
		t.Fatalf("read back %d bytes that are not the %d stored", len(got.Value), len(value))
	}

	dir := t.TempDir()
	dockerfile := fmt.Sprintf("FROM %s\nRUN --mount=type=secret,id=tok sha256sum /run/secrets/tok > /tok.sha256\n", base)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "privy-e2e/build:" + randHex(6)
	t.Cleanup(func() {
		out, err := exec.Command(docker, "image", "rm", "--force", tag).CombinedOutput()
		if err != nil {
			t.Logf("removing %s: %v: %s", tag, err, out)
		}
	})
	// --no-cache: a secret is not part of BuildKit's cache key, so a step
	// cached from an earlier run would hash an earlier value.
	args := []string{"build", "--no-cache", "--network", "none",
		"--secret", "id=tok,env=PRIVY_E2E_TOK", "-t", tag, dir}
	if hasValue(args) {
		t.Fatal("the secret value is in the argv built for docker build")
	}
	build := runBuild(t, docker, args, []string{"DOCKER_BUILDKIT=1", "PRIVY_E2E_TOK=" + string(got.Value)}, forms)
	t.Logf("docker build: %d /proc samples while it ran; BuildKit's secret tmpfs seen: %v", build.samples, build.mounts)
	if self, err := os.ReadFile("/proc/self/cmdline"); err != nil {
		t.Error(err)
	} else {
		assertAbsent(t, "this test's /proc/self/cmdline", self, forms)
	}

	// The step saw the value: the hash it wrote is the value's.
	out := testenv.Run(t, docker, "run", "--rm", "--network", "none", tag, "cat", "/tok.sha256")
	sum := sha256.Sum256([]byte(value))
	if f := strings.Fields(out); len(f) == 0 || f[0] != hex.EncodeToString(sum[:]) {
		t.Errorf("/tok.sha256 in the image is %q, want the SHA-256 of the secret (%s)", out, hex.EncodeToString(sum[:]))
	}

	assertAbsent(t, "docker history --no-trunc", []byte(testenv.Run(t, docker, "history", "--no-trunc", tag)), forms)
	assertAbsent(t, "docker inspect", []byte(testenv.Run(t, docker, "inspect", tag)), forms)

	// The hash the step wrote is a canary: the scan must find it, which
	// shows it reads the content of the RUN step's layer.
	canary := []byte(hex.EncodeToString(sum[:]))
	st := scanSave(t, docker, tag, forms, canary)
	t.Logf("docker save: %d entries, %d layer tars, %d files in layers, %d bytes checked; files of the RUN layer: %v",
		st.entries, st.layers, st.layerFiles, st.bytes, st.runLayer)
	if st.layers < 2 {
		t.Errorf("docker save held %d layer tars; want the base layer and the RUN step's", st.layers)
	}
	if len(st.runLayer) == 0 {
		t.Errorf("no layer of docker save holds tok.sha256: the scan did not see the RUN step's layer")
	}
	if !st.canarySeen {
		t.Errorf("control: the scan of docker save did not find the hash the RUN step wrote")
	}

	checkEngineState(t, docker, forms)
}

// buildRun is what was observed of a docker build while it ran.
type buildRun struct {
	samples int  // /proc samples taken while it ran
	mounts  bool // a BuildKit secrets tmpfs was mounted at some sample
}

// runBuild runs docker with args and the value only in env, samples its
// /proc/PID while it runs, and checks its argv and output are clean and its
// environment (the channel the value was given) holds it.
func runBuild(t *testing.T, docker string, args, env []string, forms []form) buildRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testenv.CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, docker, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res buildRun
	var environSeen bool
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
loop:
	for {
		smp := sampleProc(cmd.Process.Pid)
		if smp.alive() {
			res.samples++
			assertAbsent(t, "docker build /proc cmdline", smp.cmdline, forms)
			if _, _, ok := findLeak(smp.environ, forms); ok {
				environSeen = true
			}
		}
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte("buildkit-secrets")) {
			res.mounts = true
		}
		select {
		case err = <-done:
			break loop
		case <-tick.C:
		}
	}
	assertAbsent(t, "docker build output", out.Bytes(), forms)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, redact(out.String()))
	}
	if res.samples == 0 {
		t.Fatal("docker build ended before /proc/PID could be read")
	}
	if !environSeen {
		t.Error("control: the value is not in docker build's /proc/PID/environ, where the test put it")
	}
	return res
}

// saveStats counts what scanSave read.
type saveStats struct {
	entries, layers, layerFiles int
	bytes                       int64
	runLayer                    []string // files of the layer that holds tok.sha256
	canarySeen                  bool     // the canary was in a layer's file
}

// scanSave streams `docker save` of image into a tar reader (nothing is
// written to disk) and checks every entry of the outer tar, and every
// entry of each layer tar inside it, for the value.
func scanSave(t *testing.T, docker, image string, forms []form, canary []byte) saveStats {
	t.Helper()
	cmd := exec.Command(docker, "save", image)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var st saveStats
	tr := tar.NewReader(bufio.NewReader(r))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading docker save: %v", err)
		}
		st.entries++
		where := "docker save: " + h.Name
		checkHeader(t, where, h, forms)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s: %v", where, err)
		}
		st.bytes += int64(len(data))
		assertAbsent(t, where, data, forms)
		if layer, ok := layerReader(data); ok {
			st.layers++
			files := scanLayer(t, where, layer, forms, canary, &st)
			if contains(files, "tok.sha256") {
				st.runLayer = files
			}
		}
	}
	io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker save %s: %v: %s", image, err, stderr.String())
	}
	return st
}

// layerReader returns a reader of the tar in data, gunzipped if need be,
// if data is a tar.
func layerReader(data []byte) (io.Reader, bool) {
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, false
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			return nil, false
		}
		data = raw
	}
	if len(data) < 512 || !bytes.Equal(data[257:262], []byte("ustar")) {
		return nil, false
	}
	return bytes.NewReader(data), true
}

// scanLayer checks every entry of one layer tar and returns its names.
func scanLayer(t *testing.T, where string, r io.Reader, forms []form, canary []byte, st *saveStats) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Errorf("reading layer %s: %v", where, err)
			return names
		}
		st.layerFiles++
		names = append(names, h.Name)
		w := where + "!" + h.Name
		checkHeader(t, w, h, forms)
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Errorf("reading %s: %v", w, err)
			return names
		}
		st.bytes += int64(len(data))
		assertAbsent(t, w, data, forms)
		if bytes.Contains(data, canary) {
			st.canarySeen = true
		}
	}
}

// checkHeader checks the names and extended attributes of a tar entry.
func checkHeader(t *testing.T, where string, h *tar.Header, forms []form) {
	t.Helper()
	assertAbsent(t, where+" (name)", []byte(h.Name+"\x00"+h.Linkname), forms)
	for k, v := range h.PAXRecords {
		assertAbsent(t, where+" (pax record)", []byte(k+"="+v), forms)
	}
}

func contains(list []string, name string) bool {
	for _, s := range list {
		if filepath.Base(s) == name {
			return true
		}
	}
	return false
}

// checkEngineState checks where a local engine could keep a build secret
// after the build: BuildKit mounts each secret on a tmpfs under
// DOCKER_ROOT/tmp/buildkit-secrets* for the step only, and keeps its cache
// and metadata under DOCKER_ROOT/buildkit. No such mount may remain, and no
// file there may hold the value.
func checkEngineState(t *testing.T, docker string, forms []form) {
	t.Helper()
	root := strings.TrimSpace(testenv.Run(t, docker, "info", "--format", "{{.DockerRootDir}}"))
	if fi, err := os.Stat(filepath.Join(root, "buildkit")); err != nil || !fi.IsDir() {
		t.Logf("engine state not checked: %s/buildkit is not on this machine (remote engine?)", root)
		return
	}
	// The unmount happens as the step ends; allow the engine a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(mi, []byte("buildkit-secrets")) {
			break
		}
		if time.Now().After(deadline) {
			// Another build on this engine may hold its own: log, no fail.
			t.Logf("a buildkit-secrets tmpfs is still mounted 5s after the build (another build running?)")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	const maxFile = 256 << 20
	var files int
	for _, sub := range []string{"buildkit", "tmp"} {
		err := filepath.WalkDir(filepath.Join(root, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while we walked
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			if fi, err := d.Info(); err != nil || fi.Size() > maxFile {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil // removed while we walked
			}
			files++
			assertAbsent(t, "engine file "+p, data, forms)
			return nil
		})
		if err != nil {
			t.Errorf("walking %s: %v", filepath.Join(root, sub), err)
		}
	}
	t.Logf("engine state: no secret in %d files under %s/{buildkit,tmp}", files, root)
}
