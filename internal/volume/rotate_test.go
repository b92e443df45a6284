package volume

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	plugin "github.com/docker/go-plugins-helpers/volume"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/engine"
)

// rotationValue is version i of a value, each a different length so that
// a partial read is never a valid value.
func rotationValue(i int) string {
	return fmt.Sprintf("v%03d-", i) + strings.Repeat(string(rune('a'+i%26)), 8192+i*37)
}

func TestRotationAtomicAndCoalesced(t *testing.T) {
	e := newEnv(t)
	e.hostFile("h", "HOST")
	var known sync.Map
	known.Store(rotationValue(0), true)
	e.src.put("app/x", rotationValue(0))
	e.src.put("app/more/a", "A")
	e.src.setProfile(api.Profile{Name: "rot", HostPrivate: true,
		Files:    []api.ProfileFile{{Name: "x", Secret: "app/x", Owner: api.Owner{Mode: 0o444}}, {Name: "o", Secret: "app/more/a"}},
		Prefixes: []api.ProfilePrefix{{Prefix: "app/more/", Dir: "more"}},
	})
	ticket := e.src.oneshot(api.OneshotFile{Name: "o", Value: []byte("ONESHOT")})
	e.create("rot", map[string]string{"oneshot": ticket})
	dir := e.mount("rot", "m")

	stop := make(chan struct{})
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "x"))
			reads.Add(1)
			if _, ok := known.Load(string(b)); err != nil || !ok {
				if bad.Add(1) == 1 {
					t.Errorf("a reader saw an incomplete or missing file (%d bytes, %v)", len(b), err)
				}
			}
		}
	}()

	e.src.mu.Lock()
	e.src.delay = 2 * time.Millisecond
	e.src.mu.Unlock()
	before := e.src.renderCount()
	const n = 100
	for i := 1; i <= n; i++ {
		v := rotationValue(i)
		known.Store(v, true)
		e.src.put("app/x", v)
	}
	last := time.Now()
	want := rotationValue(n)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "x"))
		if string(b) == want {
			break
		}
		if time.Since(last) > time.Second {
			t.Fatalf("the last version did not land within 1s of the last change (file holds %.5s…)", b)
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(last)
	time.Sleep(50 * time.Millisecond) // let the reader read the final version
	close(stop)
	wg.Wait()
	renders := e.src.renderCount() - before
	t.Logf("%d changes: %d renders, last version in place %v after the last change, %d reads", n, renders, took, reads.Load())
	if renders > 10 {
		t.Errorf("%d changes caused %d renders; want them coalesced (at most 10)", n, renders)
	}
	if reads.Load() < 10 {
		t.Errorf("the reader read only %d times", reads.Load())
	}
	checkTree(t, dir, map[string]fileInfo{
		"x":      {want, 0o444, 0, 0},
		"o":      {"ONESHOT", 0o400, 0, 0},
		"h":      {"HOST", 0o400, 0, 0},
		"more/a": {"A", 0o400, 0, 0},
	})

	// A rotation of the secret a one-shot file overrides leaves it.
	e.src.put("app/more/a", "A2")
	waitFile(t, filepath.Join(dir, "more/a"), "A2")
	if b, _ := os.ReadFile(filepath.Join(dir, "o")); string(b) != "ONESHOT" {
		t.Errorf("rotation replaced the one-shot file o with %q", b)
	}
	// A new secret under a prefix appears.
	e.src.put("app/more/new/b", "NEW")
	waitFile(t, filepath.Join(dir, "more/new/b"), "NEW")

	// An unrelated change renders nothing: the source tells the prefixes.
	before = e.src.renderCount()
	e.src.put("other/z", "Z")
	time.Sleep(100 * time.Millisecond)
	if r := e.src.renderCount() - before; r != 0 {
		t.Errorf("a change outside the profile caused %d renders", r)
	}
}

// TestRotationWithoutProfiles: a source that cannot tell a profile's
// prefixes gets a re-render for any change, which changes nothing.
func TestRotationWithoutProfiles(t *testing.T) {
	needRoot(t)
	src := newFakeSource()
	root := filepath.Join(t.TempDir(), "v")
	d, err := New(Config{Source: plainSource{src}, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	src.put("app/x", "X1")
	src.setProfile(api.Profile{Name: "p", Prefixes: []api.ProfilePrefix{{Prefix: "app/"}}})
	if err := d.Create(&plugin.CreateRequest{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	res, err := d.Mount(&plugin.MountRequest{Name: "p", ID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	src.put("app/y", "Y1")
	waitFile(t, filepath.Join(res.Mountpoint, "y"), "Y1")
	before := src.renderCount()
	src.put("other/z", "Z")
	deadline := time.Now().Add(time.Second)
	for src.renderCount() == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if src.renderCount() == before {
		t.Error("a change the driver cannot place did not re-render")
	}
	checkTree(t, res.Mountpoint, map[string]fileInfo{"x": {"X1", 0o400, 0, 0}, "y": {"Y1", 0o400, 0, 0}})
	if err := d.Unmount(&plugin.UnmountRequest{Name: "p", ID: "m"}); err != nil {
		t.Fatal(err)
	}
}

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q after 1s, want %q", path, b, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestRotationSignals(t *testing.T) {
	e := newEnv(t)
	e.src.put("app/x", "X1")
	e.src.put("app/y", "Y1")
	e.src.setProfile(api.Profile{Name: "sig", OnRotate: "SIGHUP", Files: []api.ProfileFile{{Name: "x", Secret: "app/x"}}})
	e.src.setProfile(api.Profile{Name: "quiet", Files: []api.ProfileFile{{Name: "y", Secret: "app/y"}}})
	e.create("sig", nil)
	e.create("quiet", nil)
	dir := e.mount("sig", "m1")
	other := e.mount("sig", "m2")
	quiet := e.mount("quiet", "m")
	// Docker reports no useful Source for a plugin's mount, so the driver
	// looks for its tmpfs in each container's mount table: here, process
	// 101 sees m1, 102 sees m2 and 103 the quiet volume's mount.
	devs := map[int]uint64{101: devOf(t, dir), 102: devOf(t, other), 103: devOf(t, quiet)}
	e.d.mountedIn = func(pid int, dev uint64) (bool, error) { return devs[pid] == dev, nil }
	e.eng.containers = []engine.Container{
		{ID: "c-mine", Name: "mine", Running: true, Pid: 101, Mounts: []engine.Mount{{Name: "sig", Destination: "/run/secrets"}}},
		{ID: "c-other", Name: "other", Running: true, Pid: 102, Mounts: []engine.Mount{{Name: "sig", Destination: "/run/secrets"}}},
		{ID: "c-quiet", Name: "quiet", Running: true, Pid: 103, Mounts: []engine.Mount{{Name: "quiet", Destination: "/run/secrets"}}},
		{ID: "c-stopped", Name: "stopped", Mounts: []engine.Mount{{Name: "sig", Source: dir, Destination: "/run/secrets"}}},
	}
	e.src.put("app/x", "X2")
	e.src.put("app/y", "Y2")
	waitFile(t, filepath.Join(dir, "x"), "X2")
	waitFile(t, filepath.Join(other, "x"), "X2")
	waitFile(t, filepath.Join(quiet, "y"), "Y2")
	deadline := time.Now().Add(time.Second)
	for len(e.eng.killed()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	got := e.eng.killed()
	slices.Sort(got)
	if want := []string{"c-mine SIGHUP", "c-other SIGHUP"}; !slices.Equal(got, want) {
		t.Errorf("signals sent: %q, want %q (each container that mounts a rotated tmpfs, once, only for a profile with on_rotate)", got, want)
	}
}

func devOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}

// TestMountsDevice: a process's mount table shows which tmpfs it sees.
func TestMountsDevice(t *testing.T) {
	e := newEnv(t)
	e.src.put("s", "v")
	e.src.setProfile(api.Profile{Name: "p", Files: []api.ProfileFile{{Name: "s", Secret: "s"}}})
	e.create("p", nil)
	a, b := e.mount("p", "a"), e.mount("p", "b")
	for _, dir := range []string{a, b} {
		if ok, err := mountsDevice(os.Getpid(), devOf(t, dir)); !ok || err != nil {
			t.Errorf("mountsDevice(self, %s) = %v, %v; want true", dir, ok, err)
		}
	}
	e.unmount("p", "a")
	if ok, err := mountsDevice(os.Getpid(), devOf(t, b)+1<<20); ok || err != nil {
		t.Errorf("mountsDevice(self, a device nobody mounts) = %v, %v; want false", ok, err)
	}
	if _, err := mountsDevice(1<<30, devOf(t, b)); err == nil {
		t.Error("mountsDevice of a process that does not exist: no error")
	}
}
