package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	plugin "github.com/docker/go-plugins-helpers/volume"
	"golang.org/x/sys/unix"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
)

// mount is one live (or starting) mount of a volume: a tmpfs of its own.
type mount struct {
	vol, id, profile string
	dir              string // the tmpfs: Root/<volume>/<id>
	seq              uint64
	dev              uint64        // device number of the tmpfs, once mounted
	ready            bool          // filled and watched; guarded by Driver.mu
	kick             chan struct{} // wakes the rotation worker; capacity 1
	stop             chan struct{} // closed by whoever removes the mount from its volume
	done             chan struct{} // closed when the rotation worker has ended

	mu    sync.Mutex
	files map[string]placed // what each name holds now; nil until filled
	// want says a changed secret is used by this mount; maybe holds
	// changed paths whose use is unknown until the profile's prefixes are.
	want           bool
	maybe          map[string]bool
	prefixes       []string
	prefixesKnown  bool
	profileVersion int
}

// kind is where a placed file came from; it decides what a rotation may
// replace.
type kind int

const (
	fromHost kind = iota
	fromSecret
	fromOneshot
	fromRepo
)

// placed is what one file of a mount holds, without its value.
type placed struct {
	kind     kind
	secret   string
	version  int
	mode     uint32
	uid, gid int
}

func (m *mount) who() string {
	id := m.id
	if len(id) > 12 {
		id = id[:12] + "…"
	}
	return fmt.Sprintf("volume:%s mount:%s", m.vol, id)
}

// wake asks the rotation worker to look at the mount again; a wake-up
// already pending is enough, which is what coalesces bursts.
func (m *mount) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

func (d *Driver) mountDir(volume, id string) string { return filepath.Join(d.root, volume, id) }

// Mount gives the mount id a fresh tmpfs filled with the volume's profile
// (and, for its first mount, the volume's one-shot files). If any file
// cannot be placed nothing stays mounted and the error names the volume,
// the profile and what failed.
func (d *Driver) Mount(req *plugin.MountRequest) (*plugin.MountResponse, error) {
	if err := checkPart("volume name", req.Name); err != nil {
		return nil, err
	}
	if err := checkPart("mount id", req.ID); err != nil {
		return nil, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errClosed
	}
	v, ok := d.volumes[req.Name]
	if !ok {
		d.mu.Unlock()
		return nil, fmt.Errorf("no privy volume %q", req.Name)
	}
	if m, ok := v.mounts[req.ID]; ok {
		ready, dir := m.ready, m.dir
		d.mu.Unlock()
		if !ready {
			return nil, fmt.Errorf("privy volume %q: mount %s is already under way", req.Name, req.ID)
		}
		return &plugin.MountResponse{Mountpoint: dir}, nil
	}
	d.seq++
	m := &mount{
		vol: req.Name, id: req.ID, profile: v.def.Profile,
		dir:  d.mountDir(req.Name, req.ID),
		seq:  d.seq,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		maybe: map[string]bool{},
	}
	v.mounts[req.ID] = m
	// A ticket serves one mount, whether or not that mount succeeds.
	ticket := v.oneshot
	v.oneshot = ""
	def := v.def
	d.inflight.Add(1)
	d.mu.Unlock()
	defer d.inflight.Done()

	if err := d.fill(m, def, ticket); err != nil {
		d.discard(v, m)
		d.log.Warn("mount failed", "volume", m.vol, "profile", m.profile, "mount", m.who(), "error", err)
		return nil, err
	}
	d.mu.Lock()
	if d.closed || v.mounts[req.ID] != m {
		// Closed, or unmounted while it was being filled.
		d.mu.Unlock()
		d.discard(v, m)
		return nil, fmt.Errorf("privy volume %q: unmounted while mounting", req.Name)
	}
	m.ready = true
	d.workers.Add(1)
	go d.rotator(m)
	d.mu.Unlock()
	d.log.Info("mounted", "volume", m.vol, "profile", m.profile, "mount", m.who(), "dir", m.dir, "oneshot", ticket != "")
	return &plugin.MountResponse{Mountpoint: m.dir}, nil
}

// discard unmounts a mount that never became ready and forgets it.
func (d *Driver) discard(v *vol, m *mount) {
	if err := deliver.Unmount(m.dir); err != nil {
		d.log.Error("removing a failed mount", "volume", m.vol, "dir", m.dir, "error", err)
	}
	d.mu.Lock()
	if v.mounts[m.id] == m {
		delete(v.mounts, m.id)
		close(m.stop)
	}
	d.mu.Unlock()
	d.removeVolumeDir(m.vol)
}

// fill renders the profile, mounts the tmpfs and places the files: the
// host's private files first (if the profile wants them), then the
// rendered files over them. The caller unmounts on error.
func (d *Driver) fill(m *mount, def volumeDef, ticket string) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("privy volume %q (profile %q): %s: %w", m.vol, def.Profile, what, err)
	}
	ctx, cancel := d.withStop(renderTimeout, m.stop)
	defer cancel()
	r, err := d.src.Render(ctx, def.Profile, api.RenderRequest{Oneshot: ticket}, m.who())
	if err != nil {
		return fail("rendering the profile", err)
	}
	defer wipe(r)

	var files []deliver.File
	state := map[string]placed{}
	index := map[string]int{}
	add := func(f deliver.File, p placed) {
		if i, ok := index[f.Name]; ok {
			files[i] = f
		} else {
			index[f.Name] = len(files)
			files = append(files, f)
		}
		state[f.Name] = p
	}
	if r.HostPrivate {
		host, err := readHostPrivate(d.hostDir, d.log)
		if err != nil {
			return fail("reading the host's private files", err)
		}
		for _, f := range host {
			add(f, placed{kind: fromHost, mode: uint32(f.Mode)})
		}
	}
	// Repositories are cloned into memory at mount time, as privy exec
	// does at start; a rotation does not clone again.
	for _, rp := range r.Repos {
		repoFiles, err := deliver.FetchRepo(ctx, rp)
		if err != nil {
			return fail("cloning repo "+deliver.RedactURL(rp.URL), err)
		}
		for _, f := range repoFiles {
			add(f, placed{kind: fromRepo, mode: uint32(f.Mode), uid: f.UID, gid: f.GID})
		}
	}
	for _, f := range r.Files {
		p := placedOf(f)
		add(fileOf(f), p)
	}
	mode, uid, gid := rootOwner(def, files)
	if err := deliver.MountTmpfs(m.dir, deliver.TmpfsOptions{Size: def.Size, Mode: mode, UID: uid, GID: gid}); err != nil {
		return fail("mounting its tmpfs", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(m.dir, &st); err != nil {
		return fail("mounting its tmpfs", err)
	}
	m.dev = st.Dev
	if err := deliver.Write(m.dir, files, false); err != nil {
		return fail("placing the files", err)
	}
	m.mu.Lock()
	m.files = state
	m.profileVersion = r.Version
	m.mu.Unlock()
	return nil
}

// placedOf describes a rendered file; one without a secret is a per-run
// (one-shot) file.
func placedOf(f api.RenderedFile) placed {
	k := fromSecret
	if f.Secret == "" {
		k = fromOneshot
	}
	return placed{kind: k, secret: f.Secret, version: f.Version, mode: f.Mode, uid: f.UID, gid: f.GID}
}

func fileOf(f api.RenderedFile) deliver.File {
	origin := "secret " + f.Secret
	if f.Secret == "" {
		origin = "per-run file " + f.Name
	}
	return deliver.File{Name: f.Name, Mode: fs.FileMode(f.Mode), UID: f.UID, GID: f.GID, Data: f.Value, Origin: origin}
}

// wipe zeroes the values of a rendered profile once they are placed.
func wipe(r *api.Rendered) {
	for _, f := range r.Files {
		clear(f.Value)
	}
	for _, rp := range r.Repos {
		clear(rp.SSHKeyValue)
		clear(rp.KnownHostsValue)
		clear(rp.PasswordValue)
		clear(rp.AgeIdentityValue)
	}
}

// rootOwner decides the mode and owner of a mount's root: the volume's
// uid/gid options if given; else the one owner all files share if that is
// not root; else root with 0711, so that each user can reach the files it
// owns but not list the others.
func rootOwner(def volumeDef, files []deliver.File) (mode fs.FileMode, uid, gid int) {
	if def.UID != nil || def.GID != nil {
		if def.UID != nil {
			uid = *def.UID
		}
		if def.GID != nil {
			gid = *def.GID
		}
		return 0o700, uid, gid
	}
	if len(files) > 0 && files[0].UID != 0 {
		same := true
		for _, f := range files[1:] {
			if f.UID != files[0].UID || f.GID != files[0].GID {
				same = false
				break
			}
		}
		if same {
			return 0o700, files[0].UID, files[0].GID
		}
	}
	return 0o711, 0, 0
}

// readHostPrivate returns every regular file under dir (recursively; a
// missing dir holds none), named by its path relative to dir, mode 0400,
// owned by root. A symbolic link is followed only if it stays inside dir;
// directories behind links are not entered.
func readHostPrivate(dir string, log *slog.Logger) ([]deliver.File, error) {
	root, err := os.OpenRoot(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var files []deliver.File
	err = fs.WalkDir(root.FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch t := de.Type(); {
		case t.IsDir(), t.IsRegular():
		case t&fs.ModeSymlink != 0:
			fi, err := root.Stat(p)
			if err != nil {
				log.Warn("skipping a host private file: a link that leads out of the directory or nowhere",
					"file", filepath.Join(dir, p), "error", err)
				return nil
			}
			if !fi.Mode().IsRegular() {
				return nil
			}
		default:
			return nil
		}
		if de.IsDir() {
			return nil
		}
		data, err := root.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, deliver.File{Name: p, Mode: 0o400, Data: data, Origin: "host private file " + filepath.Join(dir, p)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// Unmount stops watching the mount, wipes its files and unmounts its
// tmpfs. A mount this process does not know (after a restart) is still
// unmounted if its directory is there.
func (d *Driver) Unmount(req *plugin.UnmountRequest) error {
	if err := checkPart("volume name", req.Name); err != nil {
		return err
	}
	if err := checkPart("mount id", req.ID); err != nil {
		return err
	}
	d.mu.Lock()
	var m *mount
	if v, ok := d.volumes[req.Name]; ok {
		if m = v.mounts[req.ID]; m != nil {
			delete(v.mounts, req.ID)
			close(m.stop)
		}
	}
	ready := m != nil && m.ready
	d.mu.Unlock()
	if m != nil && !ready {
		// Mount is still filling it; it finds the mount gone and removes it.
		return nil
	}
	if ready {
		<-m.done
	}
	if err := deliver.Unmount(d.mountDir(req.Name, req.ID)); err != nil {
		return fmt.Errorf("privy volume %q: %w", req.Name, err)
	}
	d.removeVolumeDir(req.Name)
	d.log.Info("unmounted", "volume", req.Name, "mount", req.ID)
	return nil
}
