package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/privyhq/privy/internal/testenv"
)

// run starts a container of the test image with args (after the image)
// and removes it when the test ends. It returns the container's id.
func run(t *testing.T, flags []string, args ...string) string {
	t.Helper()
	docker := testenv.Docker(t)
	argv := append([]string{"run", "-d", "--network", "none"}, flags...)
	argv = append(argv, testenv.BusyboxImage(t))
	id := strings.TrimSpace(testenv.Run(t, docker, append(argv, args...)...))
	t.Cleanup(func() { testenv.Run(t, docker, "rm", "-f", id) })
	return id
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func TestInspect(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	id := run(t, []string{"--label", "privy.profile=web"}, "sleep", "60")

	c, err := New("").Inspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	wantName := strings.TrimPrefix(strings.TrimSpace(testenv.Run(t, docker, "inspect", "-f", "{{.Name}}", id)), "/")
	wantImageID := strings.TrimSpace(testenv.Run(t, docker, "image", "inspect", "-f", "{{.Id}}", testenv.Image))
	if c.ID != id {
		t.Errorf("ID = %q, want %q", c.ID, id)
	}
	if c.Name != wantName {
		t.Errorf("Name = %q, want %q", c.Name, wantName)
	}
	if c.Image != testenv.Image {
		t.Errorf("Image = %q, want %q", c.Image, testenv.Image)
	}
	if c.ImageID != wantImageID {
		t.Errorf("ImageID = %q, want %q", c.ImageID, wantImageID)
	}
	if got := c.Labels["privy.profile"]; got != "web" {
		t.Errorf("Labels[privy.profile] = %q, want %q (labels %v)", got, "web", c.Labels)
	}
	if !c.Running || c.Pid <= 0 {
		t.Errorf("Running, Pid = %v, %d; want true and a pid", c.Running, c.Pid)
	}

	// The same container by its name.
	byName, err := New("").Inspect(t.Context(), wantName)
	if err != nil || byName.ID != id {
		t.Errorf("Inspect(%q) = %+v, %v; want container %s", wantName, byName, err, id)
	}

	// The pid the engine reports maps back to the container.
	got, err := ContainerOfPID(c.Pid)
	if err != nil || got != id {
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.Pid), "cgroup"))
		t.Errorf("ContainerOfPID(%d) = %q, %v; want %q\n/proc/%d/cgroup:\n%s", c.Pid, got, err, id, c.Pid, b)
	}
}

func TestContainerOfPIDHost(t *testing.T) {
	// The tests run on the host (CI included), never in a container.
	got, err := ContainerOfPID(os.Getpid())
	if !errors.Is(err, ErrNotInContainer) {
		b, _ := os.ReadFile("/proc/self/cgroup")
		t.Fatalf("ContainerOfPID(os.Getpid()) = %q, %v; want ErrNotInContainer\n/proc/self/cgroup:\n%s", got, err, b)
	}

	// A process that has ended and been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if got, err := ContainerOfPID(cmd.Process.Pid); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ContainerOfPID(ended process) = %q, %v; want an error wrapping fs.ErrNotExist", got, err)
	}
}

func TestNoSuchContainer(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	c := New("")
	id := randomHex(32)

	_, err := c.Inspect(t.Context(), id)
	if !errors.Is(err, ErrNoSuchContainer) || !strings.Contains(err.Error(), id) {
		t.Errorf("Inspect(random id) = %v; want ErrNoSuchContainer naming the id", err)
	}
	if err := c.Kill(t.Context(), id, "SIGUSR1"); !errors.Is(err, ErrNoSuchContainer) {
		t.Errorf("Kill(random id) = %v; want ErrNoSuchContainer", err)
	}
}

func TestKill(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	id := run(t, nil, "sh", "-c", `trap "echo got > /tmp/x" USR1; echo ready > /tmp/ready; while :; do sleep 0.1; done`)
	waitFor(t, "the trap to be set", func() bool {
		return execCat(t, docker, id, "/tmp/ready") == "ready"
	})

	if err := New("").Kill(t.Context(), id, "SIGUSR1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the container to trap SIGUSR1", func() bool {
		return execCat(t, docker, id, "/tmp/x") == "got"
	})
}

func TestKillNotRunning(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	id := strings.TrimSpace(testenv.Run(t, docker, "create", "--network", "none", testenv.BusyboxImage(t), "true"))
	t.Cleanup(func() { testenv.Run(t, docker, "rm", "-f", id) })

	err := New("").Kill(t.Context(), id, "SIGTERM")
	if !errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNoSuchContainer) {
		t.Errorf("Kill(created container) = %v; want ErrNotRunning", err)
	}
}

func TestUsingVolume(t *testing.T) {
	t.Parallel()
	docker := testenv.Docker(t)
	vol := "privy-engine-test-" + randomHex(6)
	testenv.Run(t, docker, "volume", "create", vol)
	other := "privy-engine-test-" + randomHex(6)
	testenv.Run(t, docker, "volume", "create", other)
	// Cleanups run last-registered first: the container goes before its
	// volume.
	t.Cleanup(func() { testenv.Run(t, docker, "volume", "rm", vol, other) })
	id := run(t, []string{"-v", vol + ":/data"}, "sleep", "60")
	run(t, nil, "sleep", "60") // mounts no volume

	c := New("")
	got, err := c.UsingVolume(t.Context(), vol)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != id {
		t.Fatalf("UsingVolume(%q) = %+v; want only container %s", vol, got, id)
	}
	var m *Mount
	for i := range got[0].Mounts {
		if got[0].Mounts[i].Name == vol {
			m = &got[0].Mounts[i]
		}
	}
	if m == nil {
		t.Fatalf("container mounts %+v; want volume %s", got[0].Mounts, vol)
	}
	if m.Type != "volume" || m.Driver != "local" || m.Destination != "/data" || m.Source == "" || !m.RW {
		t.Errorf("mount = %+v; want a read-write volume of driver local at /data with a source", *m)
	}

	if got, err := c.UsingVolume(t.Context(), other); err != nil || len(got) != 0 {
		t.Errorf("UsingVolume(unused volume) = %+v, %v; want none", got, err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	testenv.Docker(t)
	if err := New("").Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "none.sock")
	err := New(sock).Ping(t.Context())
	if err == nil || !strings.Contains(err.Error(), sock) {
		t.Errorf("Ping of a missing socket = %v; want an error naming %s", err, sock)
	}
}

func TestSocketPath(t *testing.T) {
	tests := []struct {
		socket, host string
		want         string // "" means an error
	}{
		{"", "", DefaultSocket},
		{"", "unix:///run/user/1000/docker.sock", "/run/user/1000/docker.sock"},
		{"/tmp/d.sock", "tcp://127.0.0.1:2375", "/tmp/d.sock"},
		{"unix:///tmp/d.sock", "", "/tmp/d.sock"},
		{"", "tcp://127.0.0.1:2375", ""},
		{"", "ssh://me@host", ""},
		{"tcp://127.0.0.1:2375", "", ""},
		{"", "unix://", ""},
	}
	for _, tt := range tests {
		got, err := socketPath(tt.socket, tt.host)
		if tt.want == "" {
			if err == nil {
				t.Errorf("socketPath(%q, %q) = %q; want an error", tt.socket, tt.host, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("socketPath(%q, %q) = %q, %v; want %q", tt.socket, tt.host, got, err, tt.want)
		}
	}
}

func TestNetworkHostRefused(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
	_, err := New("").Inspect(t.Context(), "x")
	if err == nil || !strings.Contains(err.Error(), "only unix sockets") {
		t.Errorf("Inspect with DOCKER_HOST=tcp://… = %v; want the unix-only error", err)
	}
}

// execCat returns the trimmed contents of file in container id, "" if it
// cannot be read.
func execCat(t *testing.T, docker, id, file string) string {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, docker, "exec", id, "cat", file).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
