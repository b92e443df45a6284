package volume

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	plugin "github.com/docker/go-plugins-helpers/volume"

	"github.com/privyhq/privy/internal/testenv"
)

// needRoot ends the test unless it may mount a tmpfs.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "root (mounting a tmpfs needs CAP_SYS_ADMIN)", "run the volume tests as root", nil)
	}
}

// env is a driver over a fake source, with its mounts under a temporary
// root that must be empty of mounts when the test ends.
type env struct {
	t       *testing.T
	src     *fakeSource
	eng     *fakeEngine
	d       *Driver
	root    string
	hostDir string
}

func newEnv(t *testing.T, tweak ...func(*Config)) *env {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	e := &env{t: t, src: newFakeSource(), eng: &fakeEngine{}, root: filepath.Join(dir, "volumes"), hostDir: filepath.Join(dir, "private.d")}
	cfg := Config{Source: e.src, Root: e.root, HostPrivateDir: e.hostDir, Engine: e.eng}
	for _, f := range tweak {
		f(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if ms := mountsUnder(t, e.root); len(ms) > 0 {
			t.Errorf("mounts left under %s after Close: %v", e.root, ms)
		}
	})
	return e
}

func (e *env) create(name string, opts map[string]string) {
	e.t.Helper()
	if err := e.d.Create(&plugin.CreateRequest{Name: name, Options: opts}); err != nil {
		e.t.Fatalf("Create(%s, %v): %v", name, opts, err)
	}
}

func (e *env) mount(name, id string) string {
	e.t.Helper()
	res, err := e.d.Mount(&plugin.MountRequest{Name: name, ID: id})
	if err != nil {
		e.t.Fatalf("Mount(%s, %s): %v", name, id, err)
	}
	if want := filepath.Join(e.root, name, id); res.Mountpoint != want {
		e.t.Fatalf("Mount(%s, %s) = %s, want %s", name, id, res.Mountpoint, want)
	}
	return res.Mountpoint
}

func (e *env) unmount(name, id string) {
	e.t.Helper()
	if err := e.d.Unmount(&plugin.UnmountRequest{Name: name, ID: id}); err != nil {
		e.t.Fatalf("Unmount(%s, %s): %v", name, id, err)
	}
}

func (e *env) hostFile(name, content string) {
	e.t.Helper()
	p := filepath.Join(e.hostDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func intp(i int) *int { return &i }

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	point, opts, fstype, super string
}

// mountsUnder returns the mounts at or below dir.
func mountsUnder(t *testing.T, dir string) []mountEntry {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		p := unescapeMountinfo(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, mountEntry{point: p, opts: f[5], fstype: f[sep+1], super: f[sep+3]})
		}
	}
	return out
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasOpts(list string, want ...string) bool {
	have := strings.Split(list, ",")
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// fileInfo is what a test checks of a placed file.
type fileInfo struct {
	content  string
	mode     fs.FileMode
	uid, gid int
}

// tree returns every regular file under dir; anything else but a
// directory fails the test.
func tree(t *testing.T, dir string) map[string]fileInfo {
	t.Helper()
	out := map[string]fileInfo{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s is not a regular file (%v)", p, d.Type())
			return nil
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fileInfo{string(b), fs.FileMode(st.Mode).Perm(), int(st.Uid), int(st.Gid)}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", dir, err)
	}
	return out
}

func checkTree(t *testing.T, dir string, want map[string]fileInfo) {
	t.Helper()
	got := tree(t, dir)
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: missing", name)
		case g.content != w.content:
			t.Errorf("%s holds %q, want %q", name, g.content, w.content)
		case g != w:
			t.Errorf("%s: mode %04o owner %d:%d, want mode %04o owner %d:%d", name, g.mode, g.uid, g.gid, w.mode, w.uid, w.gid)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: not expected in the mount", name)
		}
	}
}

func statOwner(t *testing.T, p string) (fs.FileMode, int, int) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return fs.FileMode(st.Mode).Perm(), int(st.Uid), int(st.Gid)
}

// assertGone fails unless nothing of the volume is mounted or left on disk.
func (e *env) assertGone(volume string) {
	e.t.Helper()
	if ms := mountsUnder(e.t, e.root); len(ms) > 0 {
		e.t.Errorf("mounts left under %s: %v", e.root, ms)
	}
	if _, err := os.Lstat(filepath.Join(e.root, volume)); !errors.Is(err, fs.ErrNotExist) {
		ents, _ := os.ReadDir(filepath.Join(e.root, volume))
		e.t.Errorf("%s is still there (%v, entries %v)", filepath.Join(e.root, volume), err, ents)
	}
}
