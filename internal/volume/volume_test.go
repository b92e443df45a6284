package volume

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
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

func TestMountPlacesProfile(t *testing.T) {
	e := newEnv(t)
	e.src.put("app/db", "db-v1")
	e.src.put("tls/cert", "CERT")
	e.src.put("app/cfg/a", "cfg-a")
	e.src.put("app/cfg/sub/b", "cfg-b")
	e.src.setProfile(api.Profile{Name: "web",
		Files: []api.ProfileFile{
			{Name: "db_password", Secret: "app/db", Owner: api.Owner{Mode: 0o440, UID: intp(1000), GID: intp(1001)}},
			{Name: "tls/cert.pem", Secret: "tls/cert", Owner: api.Owner{Mode: 0o444}},
		},
		Prefixes: []api.ProfilePrefix{{Prefix: "app/cfg/", Dir: "cfg"}},
	})
	e.create("web-secrets", map[string]string{"profile": "web", "size": "1m"})
	dir := e.mount("web-secrets", "c1")

	checkTree(t, dir, map[string]fileInfo{
		"db_password":  {"db-v1", 0o440, 1000, 1001},
		"tls/cert.pem": {"CERT", 0o444, 0, 0},
		"cfg/a":        {"cfg-a", 0o400, 0, 0},
		"cfg/sub/b":    {"cfg-b", 0o400, 0, 0},
	})
	if mode, uid, gid := statOwner(t, dir); mode != 0o711 || uid != 0 || gid != 0 {
		t.Errorf("mount root: mode %04o owner %d:%d, want 0711 root (files have several owners)", mode, uid, gid)
	}
	ms := mountsUnder(t, e.root)
	if len(ms) != 1 || ms[0].point != dir {
		t.Fatalf("mounts under the root: %v, want one at %s", ms, dir)
	}
	m := ms[0]
	if m.fstype != "tmpfs" || !hasOpts(m.opts, "nodev", "nosuid", "noexec") || !hasOpts(m.super, "size=1024k", "mode=711") {
		t.Errorf("mount %+v: want a tmpfs, nodev,nosuid,noexec, size=1024k, mode=711", m)
	}
	if got := e.src.whos; len(got) != 1 || got[0] != "volume:web-secrets mount:c1" {
		t.Errorf("the render was made for %q, want volume:web-secrets mount:c1", got)
	}

	g, err := e.d.Get(&plugin.GetRequest{Name: "web-secrets"})
	if err != nil || g.Volume.Mountpoint != dir || g.Volume.Status["profile"] != "web" {
		t.Errorf("Get = %+v, %v; want mount point %s and profile web", g, err, dir)
	}
	p, err := e.d.Path(&plugin.PathRequest{Name: "web-secrets"})
	if err != nil || p.Mountpoint != dir {
		t.Errorf("Path = %+v, %v; want %s", p, err, dir)
	}
	e.unmount("web-secrets", "c1")
	e.assertGone("web-secrets")
	if p, _ := e.d.Path(&plugin.PathRequest{Name: "web-secrets"}); p.Mountpoint != "" {
		t.Errorf("Path after Unmount = %q, want empty", p.Mountpoint)
	}
}

func TestRootOwner(t *testing.T) {
	e := newEnv(t)
	e.src.put("s", "v")
	for _, tt := range []struct {
		name     string
		opts     map[string]string
		files    []api.ProfileFile
		mode     fs.FileMode
		uid, gid int
	}{
		{"one non-root owner", nil, []api.ProfileFile{
			{Name: "a", Secret: "s", Owner: api.Owner{UID: intp(1000), GID: intp(1000)}},
			{Name: "b", Secret: "s", Owner: api.Owner{UID: intp(1000), GID: intp(1000)}},
		}, 0o700, 1000, 1000},
		{"uid and gid options", map[string]string{"uid": "2000", "gid": "3000"}, []api.ProfileFile{
			{Name: "a", Secret: "s", Owner: api.Owner{UID: intp(1000), GID: intp(1000)}},
		}, 0o700, 2000, 3000},
		{"several owners", nil, []api.ProfileFile{
			{Name: "a", Secret: "s", Owner: api.Owner{UID: intp(1000), GID: intp(1000)}},
			{Name: "b", Secret: "s", Owner: api.Owner{UID: intp(1001), GID: intp(1000)}},
		}, 0o711, 0, 0},
		{"root", nil, []api.ProfileFile{{Name: "a", Secret: "s"}}, 0o711, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := strings.ReplaceAll(tt.name, " ", "-")
			e.src.setProfile(api.Profile{Name: name, Files: tt.files})
			e.create(name, tt.opts)
			dir := e.mount(name, "m")
			defer e.unmount(name, "m")
			if mode, uid, gid := statOwner(t, dir); mode != tt.mode || uid != tt.uid || gid != tt.gid {
				t.Errorf("mount root: mode %04o owner %d:%d, want %04o %d:%d", mode, uid, gid, tt.mode, tt.uid, tt.gid)
			}
		})
	}
}

func TestMountsAreSeparate(t *testing.T) {
	e := newEnv(t)
	e.src.put("app/db", "db-v1")
	e.src.setProfile(api.Profile{Name: "web", Files: []api.ProfileFile{{Name: "db", Secret: "app/db"}}})
	e.create("web", nil)
	a := e.mount("web", "a")
	b := e.mount("web", "b")
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(b, &sb); err != nil {
		t.Fatal(err)
	}
	if a == b || sa.Dev == sb.Dev {
		t.Fatalf("two mounts share a filesystem: %s (dev %d) and %s (dev %d)", a, sa.Dev, b, sb.Dev)
	}
	if err := os.WriteFile(filepath.Join(a, "scratch"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkTree(t, b, map[string]fileInfo{"db": {"db-v1", 0o400, 0, 0}})
	if g, _ := e.d.Get(&plugin.GetRequest{Name: "web"}); g.Volume.Mountpoint != b {
		t.Errorf("Get reports mount point %s, want the latest, %s", g.Volume.Mountpoint, b)
	}

	e.unmount("web", "a")
	if _, err := os.Lstat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after Unmount: %v", a, err)
	}
	if ms := mountsUnder(t, e.root); len(ms) != 1 || ms[0].point != b {
		t.Errorf("after unmounting a: mounts %v, want only %s", ms, b)
	}
	checkTree(t, b, map[string]fileInfo{"db": {"db-v1", 0o400, 0, 0}})
	e.unmount("web", "b")
	e.assertGone("web")
	e.unmount("web", "b") // again: nothing to do
	if err := e.d.Remove(&plugin.RemoveRequest{Name: "web"}); err != nil {
		t.Errorf("Remove after the last Unmount: %v", err)
	}
}

func TestMountFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("S", 64<<10)
	e.src.put("app/db", "db-v1")
	e.src.put("app/big", big)
	e.src.setProfile(api.Profile{Name: "missing", Files: []api.ProfileFile{
		{Name: "db", Secret: "app/db"}, {Name: "gone", Secret: "app/gone"}}})
	e.src.setProfile(api.Profile{Name: "big", Files: []api.ProfileFile{
		{Name: "db", Secret: "app/db"}, {Name: "big", Secret: "app/big"}}})
	e.src.setProfile(api.Profile{Name: "badname", Files: []api.ProfileFile{
		{Name: "../escape", Secret: "app/db"}}})
	for _, tt := range []struct {
		volume string
		opts   map[string]string
		down   bool
		want   []string
	}{
		{"unknown-vol", map[string]string{"profile": "nope"}, false, []string{`"unknown-vol"`, `profile "nope"`, `no profile "nope"`}},
		{"missing-vol", map[string]string{"profile": "missing"}, false, []string{`"missing-vol"`, `"missing"`, `secret "app/gone" not found`}},
		{"small-vol", map[string]string{"profile": "big", "size": "4k"}, false, []string{`"small-vol"`, `"big"`, "placing the files", "app/big", "no space left"}},
		{"badname-vol", map[string]string{"profile": "badname"}, false, []string{`"badname-vol"`, "../escape"}},
		{"down-vol", map[string]string{"profile": "big"}, true, []string{`"down-vol"`, `"big"`, "rendering the profile", "connection refused"}},
	} {
		t.Run(tt.volume, func(t *testing.T) {
			e.create(tt.volume, tt.opts)
			if tt.down {
				e.src.mu.Lock()
				e.src.fail = errors.New("connection refused")
				e.src.mu.Unlock()
				defer func() { e.src.mu.Lock(); e.src.fail = nil; e.src.mu.Unlock() }()
			}
			_, err := e.d.Mount(&plugin.MountRequest{Name: tt.volume, ID: "c1"})
			if err == nil {
				t.Fatal("Mount succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "db-v1") || strings.Contains(err.Error(), "SSSS") {
				t.Errorf("error %q holds a value", err)
			}
			e.assertGone(tt.volume)
			if g, _ := e.d.Get(&plugin.GetRequest{Name: tt.volume}); g.Volume.Mountpoint != "" || g.Volume.Status["mounts"] != 0 {
				t.Errorf("after a failed mount Get = %+v", g.Volume)
			}
			if err := e.d.Remove(&plugin.RemoveRequest{Name: tt.volume}); err != nil {
				t.Errorf("Remove after a failed mount: %v", err)
			}
		})
	}
}

func TestCreateOptions(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		name string
		opts map[string]string
		want string
	}{
		{"v", map[string]string{"colour": "red"}, `unknown option "colour"; privy volumes know gid, oneshot, profile, size, uid`},
		{"v", map[string]string{"size": "0"}, `option size="0"`},
		{"v", map[string]string{"size": "lots"}, `option size="lots"`},
		{"v", map[string]string{"uid": "-1"}, `option uid="-1"`},
		{"v", map[string]string{"gid": "staff"}, `option gid="staff"`},
		{"v", map[string]string{"profile": ""}, "option profile is empty"},
		{"../v", nil, `invalid volume name "../v"`},
		{"a/b", nil, `invalid volume name "a/b"`},
	} {
		err := e.d.Create(&plugin.CreateRequest{Name: tt.name, Options: tt.opts})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Create(%q, %v) = %v, want an error saying %q", tt.name, tt.opts, err, tt.want)
		}
	}
	if l, _ := e.d.List(); len(l.Volumes) != 0 {
		t.Errorf("failed creates left volumes: %+v", l.Volumes)
	}

	e.src.put("s", "v")
	e.src.setProfile(api.Profile{Name: "p1", Files: []api.ProfileFile{{Name: "s", Secret: "s"}}})
	e.create("v", map[string]string{"profile": "p1", "size": "2m"})
	e.create("v", nil)
	e.create("v", map[string]string{"profile": "p1"})
	if err := e.d.Create(&plugin.CreateRequest{Name: "v", Options: map[string]string{"profile": "p2"}}); err == nil || !strings.Contains(err.Error(), `profile "p1"`) {
		t.Errorf("re-Create with another profile = %v, want an error naming the existing profile", err)
	}
	e.mount("v", "m")
	if err := e.d.Remove(&plugin.RemoveRequest{Name: "v"}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("Remove while mounted = %v, want an in-use error", err)
	}
	e.unmount("v", "m")
	if err := e.d.Remove(&plugin.RemoveRequest{Name: "v"}); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if _, err := e.d.Get(&plugin.GetRequest{Name: "v"}); err == nil {
		t.Error("Get after Remove succeeded")
	}
	if _, err := e.d.Mount(&plugin.MountRequest{Name: "v", ID: "m"}); err == nil || !strings.Contains(err.Error(), `no privy volume "v"`) {
		t.Errorf("Mount of a removed volume = %v", err)
	}
	if c := e.d.Capabilities(); c.Capabilities.Scope != "local" {
		t.Errorf("scope %q, want local", c.Capabilities.Scope)
	}
}

func TestStateFile(t *testing.T) {
	needRoot(t)
	src := newFakeSource()
	state := filepath.Join(t.TempDir(), "state", "volumes.json")
	cfg := Config{Source: src, Root: filepath.Join(t.TempDir(), "v"), StateFile: state}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string]map[string]string{
		"a": {"profile": "p", "size": "2m", "uid": "5"},
		"b": {"oneshot": "ticket-sEcReT"},
		"c": nil,
	} {
		if err := d.Create(&plugin.CreateRequest{Name: name, Options: opts}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Remove(&plugin.RemoveRequest{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	fi, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %04o, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(state)
	if bytes.Contains(b, []byte("sEcReT")) {
		t.Errorf("the state file holds the one-shot ticket:\n%s", b)
	}
	if ents, _ := os.ReadDir(filepath.Dir(state)); len(ents) != 1 {
		t.Errorf("state dir holds %d entries, want only the state file", len(ents))
	}

	d2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	l, _ := d2.List()
	var got []string
	for _, v := range l.Volumes {
		got = append(got, fmt.Sprintf("%s:%v:%v:%v", v.Name, v.Status["profile"], v.Status["size"], v.Status["oneshot"]))
	}
	if want := []string{"a:p:2MiB:<nil>", "b:b:16MiB:<nil>"}; !slices.Equal(got, want) {
		t.Errorf("after a restart List = %v, want %v", got, want)
	}

	if err := os.WriteFile(state, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), state) {
		t.Errorf("New with a corrupt state file = %v, want an error naming it", err)
	}
}

func TestHostPrivateAndOneshot(t *testing.T) {
	e := newEnv(t)
	e.hostFile("entitlement/cert.pem", "HOSTCERT")
	e.hostFile("shared.conf", "HOSTSHARED")
	e.hostFile("override", "HOSTOLD")
	if err := os.Symlink("/etc/hostname", filepath.Join(e.hostDir, "outside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("shared.conf", filepath.Join(e.hostDir, "inner")); err != nil {
		t.Fatal(err)
	}
	e.src.put("app/override", "PROFILE")
	e.src.put("app/key", "KEY")
	e.src.setProfile(api.Profile{Name: "hp", HostPrivate: true, Files: []api.ProfileFile{
		{Name: "override", Secret: "app/override", Owner: api.Owner{Mode: 0o440}},
		{Name: "api.key", Secret: "app/key"},
	}})
	e.src.setProfile(api.Profile{Name: "nohost", Files: []api.ProfileFile{{Name: "api.key", Secret: "app/key"}}})
	ticket := e.src.oneshot(api.OneshotFile{Name: "api.key", Mode: 0o444, Value: []byte("ONESHOT")})
	e.create("hp", map[string]string{"oneshot": ticket})

	host := map[string]fileInfo{
		"entitlement/cert.pem": {"HOSTCERT", 0o400, 0, 0},
		"shared.conf":          {"HOSTSHARED", 0o400, 0, 0},
		"inner":                {"HOSTSHARED", 0o400, 0, 0},
		"override":             {"PROFILE", 0o440, 0, 0},
	}
	withFile := func(name string, fi fileInfo) map[string]fileInfo {
		m := map[string]fileInfo{name: fi}
		for k, v := range host {
			m[k] = v
		}
		return m
	}
	checkTree(t, e.mount("hp", "first"), withFile("api.key", fileInfo{"ONESHOT", 0o444, 0, 0}))
	checkTree(t, e.mount("hp", "second"), withFile("api.key", fileInfo{"KEY", 0o400, 0, 0}))
	if want := []string{ticket, ""}; !slices.Equal(e.src.asked, want) {
		t.Errorf("tickets sent with the renders: %q, want %q (the ticket serves the first mount only)", e.src.asked, want)
	}

	// A new ticket on the existing volume serves its next mount.
	ticket2 := e.src.oneshot(api.OneshotFile{Name: "extra", Value: []byte("EXTRA")})
	e.create("hp", map[string]string{"oneshot": ticket2})
	third := withFile("api.key", fileInfo{"KEY", 0o400, 0, 0})
	third["extra"] = fileInfo{"EXTRA", 0o400, 0, 0}
	checkTree(t, e.mount("hp", "third"), third)

	e.create("nohost", nil)
	checkTree(t, e.mount("nohost", "m"), map[string]fileInfo{"api.key": {"KEY", 0o400, 0, 0}})

	// A missing host directory is no error.
	if err := os.RemoveAll(e.hostDir); err != nil {
		t.Fatal(err)
	}
	e.create("hp2", map[string]string{"profile": "hp"})
	checkTree(t, e.mount("hp2", "m"), map[string]fileInfo{
		"override": {"PROFILE", 0o440, 0, 0},
		"api.key":  {"KEY", 0o400, 0, 0},
	})
}

// TestOneshotDroppedOnFailure: a ticket is spent by the first mount even
// if that mount fails.
func TestOneshotDroppedOnFailure(t *testing.T) {
	e := newEnv(t)
	e.src.setProfile(api.Profile{Name: "p", Files: []api.ProfileFile{{Name: "k", Secret: "app/k"}}})
	ticket := e.src.oneshot(api.OneshotFile{Name: "o", Value: []byte("ONE")})
	e.create("p", map[string]string{"oneshot": ticket})
	if _, err := e.d.Mount(&plugin.MountRequest{Name: "p", ID: "a"}); err == nil {
		t.Fatal("Mount succeeded with a missing secret")
	}
	e.src.put("app/k", "K")
	checkTree(t, e.mount("p", "b"), map[string]fileInfo{"k": {"K", 0o400, 0, 0}})
	if want := []string{ticket, ""}; !slices.Equal(e.src.asked, want) {
		t.Errorf("tickets sent: %q, want %q", e.src.asked, want)
	}
}

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

func TestNilEngine(t *testing.T) {
	d, err := New(Config{Source: newFakeSource(), Engine: (*engine.Client)(nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.engine != nil {
		t.Error("a nil *engine.Client was kept as an engine")
	}
}

func TestClose(t *testing.T) {
	needRoot(t)
	src := newFakeSource()
	root := filepath.Join(t.TempDir(), "v")
	d, err := New(Config{Source: src, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	src.put("s", "v")
	src.setProfile(api.Profile{Name: "p", Files: []api.ProfileFile{{Name: "s", Secret: "s"}}})
	for _, name := range []string{"a", "b"} {
		if err := d.Create(&plugin.CreateRequest{Name: name, Options: map[string]string{"profile": "p"}}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"1", "2"} {
			if _, err := d.Mount(&plugin.MountRequest{Name: name, ID: id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(mountsUnder(t, root)); n != 4 {
		t.Fatalf("%d mounts, want 4", n)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if ms := mountsUnder(t, root); len(ms) > 0 {
		t.Errorf("mounts left after Close: %v", ms)
	}
	if ents, _ := os.ReadDir(root); len(ents) > 0 {
		t.Errorf("%s holds %d entries after Close", root, len(ents))
	}
	if _, err := d.Mount(&plugin.MountRequest{Name: "a", ID: "3"}); err == nil {
		t.Error("Mount after Close succeeded")
	}
	if len(src.subs) != 0 {
		t.Error("Close left the subscription")
	}
}

// TestServe speaks Docker's plugin protocol to the driver.
func TestServe(t *testing.T) {
	e := newEnv(t)
	e.src.put("s", "v")
	e.src.setProfile(api.Profile{Name: "p", Files: []api.ProfileFile{{Name: "s", Secret: "s"}}})
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.d.Serve(l) }()
	hc := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", sock) }}}
	call := func(path string, in any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(in)
		resp, err := hc.Post("http://plugin"+path, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return out
	}
	if out := call("/Plugin.Activate", nil); fmt.Sprint(out["Implements"]) != "[VolumeDriver]" {
		t.Errorf("Activate = %v", out)
	}
	if out := call("/VolumeDriver.Create", map[string]any{"Name": "p", "Opts": map[string]string{"colour": "red"}}); !strings.Contains(fmt.Sprint(out["Err"]), "unknown option") {
		t.Errorf("Create with an unknown option = %v", out)
	}
	if out := call("/VolumeDriver.Create", map[string]any{"Name": "p"}); out["Err"] != nil {
		t.Errorf("Create = %v", out)
	}
	out := call("/VolumeDriver.Mount", map[string]any{"Name": "p", "ID": "abc"})
	if mp, _ := out["Mountpoint"].(string); mp != filepath.Join(e.root, "p", "abc") {
		t.Errorf("Mount = %v", out)
	}
	if out := call("/VolumeDriver.Capabilities", nil); fmt.Sprint(out["Capabilities"]) != "map[Scope:local]" {
		t.Errorf("Capabilities = %v", out)
	}
	if out := call("/VolumeDriver.Unmount", map[string]any{"Name": "p", "ID": "abc"}); out["Err"] != nil {
		t.Errorf("Unmount = %v", out)
	}
	if out := call("/VolumeDriver.List", nil); fmt.Sprint(out["Volumes"]) == "[]" {
		t.Errorf("List = %v", out)
	}
	l.Close()
	if err := <-served; err != nil {
		t.Errorf("Serve after the listener closed = %v, want nil", err)
	}
}
