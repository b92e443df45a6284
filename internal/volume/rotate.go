package volume

import (
	"bufio"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
)

const (
	// maxMaybe bounds the changed paths a mount remembers while it does
	// not know its profile's prefixes; past it the mount re-renders.
	maxMaybe = 1024
	// retries of a failed re-render, after 1s, 2s, 4s, …
	maxRetries = 5
)

// onChange is the subscription's callback. It must not block, so it only
// marks the mounts that may use the changed secret and wakes their
// workers; the workers render.
func (d *Driver) onChange(c api.Change) {
	d.mu.Lock()
	var ms []*mount
	for _, v := range d.volumes {
		for _, m := range v.mounts {
			ms = append(ms, m)
		}
	}
	d.mu.Unlock()
	for _, m := range ms {
		if m.note(c.Path) {
			m.wake()
		}
	}
}

// note records that the secret at path changed and reports whether the
// worker should look.
func (m *mount) note(path string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.files == nil {
		// Still being filled, perhaps with the version before this
		// one: look again once it is placed.
		m.want = true
		return true
	}
	for _, p := range m.files {
		if p.kind == fromSecret && p.secret == path {
			m.want = true
			return true
		}
	}
	if m.prefixesKnown {
		if covered(m.prefixes, path) {
			m.want = true
			return true
		}
		return false
	}
	if len(m.maybe) < maxMaybe {
		m.maybe[path] = true
	} else {
		m.want = true
	}
	return true
}

func covered(prefixes []string, path string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// rotator is a mount's worker: one at a time, it brings the mount up to
// date after changes. Changes that arrive while it renders leave one
// wake-up pending, so a burst costs at most one more render and the
// last version always lands.
func (d *Driver) rotator(m *mount) {
	defer d.workers.Done()
	defer close(m.done)
	var retry <-chan time.Time
	failures := 0
	for {
		select {
		case <-m.stop:
			return
		case <-m.kick:
		case <-retry:
			m.mu.Lock()
			m.want = true
			m.mu.Unlock()
		}
		retry = nil
		err := d.refresh(m)
		select {
		case <-m.stop:
			return
		default:
		}
		if err == nil {
			failures = 0
			continue
		}
		failures++
		if failures > maxRetries {
			d.log.Error("rotation failed; the mount keeps the versions it has until the next change",
				"volume", m.vol, "profile", m.profile, "mount", m.who(), "error", err)
			failures = 0
			continue
		}
		delay := time.Second << (failures - 1)
		d.log.Warn("rotation failed; retrying", "volume", m.vol, "profile", m.profile, "mount", m.who(), "in", delay, "error", err)
		retry = time.After(delay)
	}
}

// refresh re-renders the mount if a change it was told of concerns it.
func (d *Driver) refresh(m *mount) error {
	m.mu.Lock()
	want, maybe := m.want, m.maybe
	m.want, m.maybe = false, map[string]bool{}
	m.mu.Unlock()
	if !want && len(maybe) > 0 {
		prefixes, known := d.prefixes(m)
		want = !known
		for p := range maybe {
			want = want || covered(prefixes, p)
		}
	}
	if !want {
		return nil
	}
	return d.rotate(m)
}

// prefixes returns the prefixes of the mount's profile, asking the source
// if it can tell and they are not known yet. known is false if they
// cannot be learnt, or if the profile changed since the mount last
// rendered it.
func (d *Driver) prefixes(m *mount) (prefixes []string, known bool) {
	m.mu.Lock()
	prefixes, known, version := m.prefixes, m.prefixesKnown, m.profileVersion
	m.mu.Unlock()
	if known {
		return prefixes, true
	}
	ps, ok := d.src.(ProfileSource)
	if !ok {
		return nil, false
	}
	ctx, cancel := d.withStop(renderTimeout, m.stop)
	defer cancel()
	p, err := ps.Profile(ctx, m.profile)
	if err != nil {
		d.log.Debug("reading the profile's prefixes", "profile", m.profile, "error", err)
		return nil, false
	}
	if p.Version != version {
		return nil, false
	}
	prefixes = make([]string, 0, len(p.Prefixes))
	for _, pp := range p.Prefixes {
		prefixes = append(prefixes, pp.Prefix)
	}
	m.mu.Lock()
	if m.profileVersion == version {
		m.prefixes, m.prefixesKnown = prefixes, true
	}
	m.mu.Unlock()
	return prefixes, true
}

// rotate re-renders the profile and replaces, one by one and atomically,
// the files whose secret version changed and the new ones under a prefix.
// It never removes a file, and never replaces a per-run file. Then it
// signals the containers if the profile asks for it.
func (d *Driver) rotate(m *mount) error {
	ctx, cancel := d.withStop(renderTimeout, m.stop)
	defer cancel()
	r, err := d.src.Render(ctx, m.profile, api.RenderRequest{}, m.who()+" rotation")
	if err != nil {
		return fmt.Errorf("rendering profile %q: %w", m.profile, err)
	}
	defer wipe(r)
	m.mu.Lock()
	cur := maps.Clone(m.files)
	m.mu.Unlock()
	var replaced []string
	var errs []error
	for _, f := range r.Files {
		if f.Secret == "" {
			continue
		}
		p := placedOf(f)
		if old, ok := cur[f.Name]; ok && (old.kind == fromOneshot || old == p) {
			continue
		}
		select {
		case <-m.stop: // being unmounted: write nothing more
			return nil
		default:
		}
		if err := deliver.Replace(m.dir, fileOf(f)); err != nil {
			errs = append(errs, err)
			continue
		}
		m.mu.Lock()
		m.files[f.Name] = p
		m.mu.Unlock()
		replaced = append(replaced, f.Name)
	}
	m.mu.Lock()
	if r.Version != m.profileVersion {
		m.profileVersion, m.prefixes, m.prefixesKnown = r.Version, nil, false
	}
	m.mu.Unlock()
	if len(replaced) > 0 {
		d.log.Info("rotated", "volume", m.vol, "profile", m.profile, "mount", m.who(), "files", replaced)
		if r.OnRotate != "" {
			d.signal(m, r.OnRotate)
		}
	}
	return errors.Join(errs...)
}

// signal sends sig to the running containers that mount this very tmpfs.
// Failures are logged: the files are in place either way.
func (d *Driver) signal(m *mount, sig string) {
	if d.engine == nil {
		return
	}
	ctx, cancel := d.withStop(signalTimeout, m.stop)
	defer cancel()
	cs, err := d.engine.UsingVolume(ctx, m.vol)
	if err != nil {
		d.log.Warn("finding the containers to signal after a rotation", "volume", m.vol, "signal", sig, "error", err)
		return
	}
	sent := 0
	for _, c := range cs {
		// The engine's mount Source cannot tell which mount of the volume
		// a container has (Docker reports the volume's mount point when
		// the container was created, often ""): the device of the tmpfs
		// in the container's own mount table can.
		if c.Pid <= 0 {
			continue
		}
		uses, err := d.mountedIn(c.Pid, m.dev)
		if err != nil {
			d.log.Warn("reading a container's mounts", "volume", m.vol, "container", c.Name, "error", err)
			continue
		}
		if !uses {
			continue
		}
		if err := d.engine.Kill(ctx, c.ID, sig); err != nil {
			d.log.Warn("signalling a container after a rotation", "volume", m.vol, "container", c.Name, "signal", sig, "error", err)
			continue
		}
		sent++
		d.log.Info("signalled a container after a rotation", "volume", m.vol, "container", c.Name, "signal", sig)
	}
	if sent == 0 {
		d.log.Info("no running container uses the rotated mount; no signal sent", "volume", m.vol, "mount", m.who(), "signal", sig)
	}
}

// mountsDevice reports whether the mount table of process pid (that is,
// of its mount namespace) holds a mount of the filesystem with device
// number dev.
func mountsDevice(pid int, dev uint64) (bool, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return false, err
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// "36 35 98:0 /mnt1 /mnt2 rw,… - ext3 /dev/root rw": the third
		// field is the device.
		if f := strings.Fields(sc.Text()); len(f) > 2 && f[2] == want {
			return true, nil
		}
	}
	return false, sc.Err()
}
