package volume

import (
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
	"syscall"
	"testing"

	plugin "github.com/docker/go-plugins-helpers/volume"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/engine"
)

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
	if err := e.d.Remove(&plugin.RemoveRequest{Name: "v"}); err != nil {
		t.Errorf("Remove of a volume the driver does not know: %v, want success", err)
	}
	if _, err := e.d.Mount(&plugin.MountRequest{Name: "v", ID: "m"}); err == nil || !strings.Contains(err.Error(), `no privy volume "v"`) {
		t.Errorf("Mount of a removed volume = %v", err)
	}
	if c := e.d.Capabilities(); c.Capabilities.Scope != "local" {
		t.Errorf("scope %q, want local", c.Capabilities.Scope)
	}
}

func TestStateFile(t *testing.T) {
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
