// Package volume is privy's Docker volume driver: every mount of a privy
// volume is a fresh tmpfs filled with one profile's files, so a container
// gets its secrets without them ever touching a disk, an image or
// `docker inspect`.
//
// It promises: two mounts never share a tmpfs, even of one volume; a mount
// whose files cannot all be placed fails and leaves nothing mounted, so
// Docker refuses to start the container; Unmount wipes the files before it
// unmounts; a new version of a secret replaces the file in every live mount
// that uses it, atomically (a reader sees the old or the new content, never
// part of one); and no value is ever put in an error or a log line.
// Volume definitions (never values, never one-shot tickets) may be kept in
// a state file so that `docker volume ls` survives a restart.
package volume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	plugin "github.com/docker/go-plugins-helpers/volume"
	units "github.com/docker/go-units"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/engine"
)

// Source is where a mount's files come from: the privy server itself.
type Source interface {
	// Render returns a profile's files with their values; who is recorded
	// in the audit log (e.g. "volume:web-secrets mount:3f2a…"). With
	// req.Oneshot set, the per-run files of that ticket are included
	// (overriding the profile's same-named files) and the server forgets
	// them. The driver zeroes the values once they are placed, so they
	// must be the caller's to keep.
	Render(ctx context.Context, profile string, req api.RenderRequest, who string) (*api.Rendered, error)
	// Subscribe calls fn after every new version of any secret until
	// cancel is called. fn must not block long.
	Subscribe(fn func(api.Change)) (cancel func())
}

// ProfileSource is a Source that can also return a profile's definition
// (no values). The driver uses it to learn a profile's prefixes, so that
// a new secret re-renders only the mounts whose profile covers it. With a
// plain Source, a change that matches none of a mount's files re-renders
// that mount to find out.
type ProfileSource interface {
	Source
	Profile(ctx context.Context, name string) (*api.Profile, error)
}

// Engine finds and signals the containers that use a volume;
// *engine.Client implements it.
type Engine interface {
	UsingVolume(ctx context.Context, volume string) ([]engine.Container, error)
	Kill(ctx context.Context, id, signal string) error
}

// Config configures New.
type Config struct {
	Source Source // required
	// Root is where the per-mount tmpfs mount points go:
	// Root/<volume>/<mount id>.
	Root string
	// HostPrivateDir holds the host's private files, offered to profiles
	// that ask for them.
	HostPrivateDir string
	// StateFile keeps the volume definitions (no secrets, no tickets) so
	// that `docker volume ls` survives a restart; "" keeps them in memory
	// only.
	StateFile string
	// Engine signals containers when a profile asks for it on rotation;
	// nil sends no signals.
	Engine Engine
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultRoot           = "/run/privy/volumes"
	DefaultHostPrivateDir = "/etc/privy/private.d"
)

// PluginDir is where Docker looks for plugin sockets: a driver named NAME
// listens on PluginDir/NAME.sock.
const PluginDir = "/run/docker/plugins"

// Timeouts of the calls the driver makes on its own.
const (
	renderTimeout = 60 * time.Second
	signalTimeout = 30 * time.Second
)

// options are the volume options Create knows, in the order the error
// for an unknown one lists them.
var options = []string{"gid", "oneshot", "profile", "size", "uid"}

// Driver is a Docker volume driver (plugin.Driver) that mounts privy
// profiles. It is safe for concurrent use.
type Driver struct {
	src       Source
	root      string
	hostDir   string
	stateFile string
	engine    Engine
	log       *slog.Logger
	// mountedIn tells whether process pid sees the filesystem dev; tests
	// replace it.
	mountedIn func(pid int, dev uint64) (bool, error)

	cancelSub func()
	done      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	inflight  sync.WaitGroup // Mount calls under way
	workers   sync.WaitGroup // rotation workers

	mu      sync.Mutex
	closed  bool
	seq     uint64 // orders mounts, for the latest mount point
	volumes map[string]*vol
}

var _ plugin.Driver = (*Driver)(nil)

// vol is one volume: its definition, the one-shot ticket waiting for its
// first mount, and its live mounts by mount id.
type vol struct {
	def     volumeDef
	oneshot string
	mounts  map[string]*mount
}

// volumeDef is what is kept of a volume across restarts.
type volumeDef struct {
	Name    string    `json:"name"`
	Profile string    `json:"profile"`
	Size    int64     `json:"size"`
	UID     *int      `json:"uid,omitempty"`
	GID     *int      `json:"gid,omitempty"`
	Created time.Time `json:"created"`
}

// New returns a driver and subscribes it to the source's changes. It
// loads the volume definitions from cfg.StateFile if that exists.
func New(cfg Config) (*Driver, error) {
	if cfg.Source == nil {
		return nil, errors.New("volume driver: no source of profiles")
	}
	d := &Driver{
		src:       cfg.Source,
		root:      orDefault(cfg.Root, DefaultRoot),
		hostDir:   orDefault(cfg.HostPrivateDir, DefaultHostPrivateDir),
		stateFile: cfg.StateFile,
		engine:    cfg.Engine,
		log:       cfg.Logger,
		mountedIn: mountsDevice,
		done:      make(chan struct{}),
		volumes:   map[string]*vol{},
	}
	// A nil *engine.Client in the interface would pass the nil check and
	// fail every call.
	if c, ok := d.engine.(*engine.Client); ok && c == nil {
		d.engine = nil
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	defs, err := loadState(d.stateFile)
	if err != nil {
		return nil, err
	}
	for _, def := range defs {
		d.volumes[def.Name] = &vol{def: def, mounts: map[string]*mount{}}
	}
	d.cancelSub = d.src.Subscribe(d.onChange)
	return d, nil
}

// Serve answers Docker's volume plugin protocol on l until l is closed;
// it then returns nil.
func (d *Driver) Serve(l net.Listener) error {
	err := plugin.NewHandler(d).Serve(l)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close cancels the subscription, waits for mounts under way, and
// unmounts and wipes every live mount. Later calls fail.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		close(d.done)
		d.mu.Unlock()
		d.cancelSub()
		d.inflight.Wait()

		var live []*mount
		d.mu.Lock()
		for _, v := range d.volumes {
			for id, m := range v.mounts {
				delete(v.mounts, id)
				close(m.stop)
				live = append(live, m)
			}
		}
		d.mu.Unlock()
		d.workers.Wait()
		var errs []error
		for _, m := range live {
			if err := deliver.Unmount(m.dir); err != nil {
				errs = append(errs, err)
			}
			d.removeVolumeDir(m.vol)
		}
		d.closeErr = errors.Join(errs...)
	})
	return d.closeErr
}

var errClosed = errors.New("the privy volume driver is shutting down")

// Create defines a volume. Options: profile (default: the volume's name),
// oneshot (a ticket for the first mount only), size (of each mount's
// tmpfs: "16m", "1g" or bytes), uid and gid (owner of the mount's root).
// Creating an existing volume again succeeds if the options given agree
// with it; a oneshot option then replaces the waiting ticket.
func (d *Driver) Create(req *plugin.CreateRequest) error {
	if err := checkPart("volume name", req.Name); err != nil {
		return err
	}
	def, ticket, err := parseOptions(req.Name, req.Options)
	if err != nil {
		return fmt.Errorf("privy volume %q: %w", req.Name, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errClosed
	}
	if d.stateFile != "" && d.volumeDir(req.Name) == filepath.Clean(d.stateFile) {
		return fmt.Errorf("invalid volume name %q: the privy volume driver keeps its state file there", req.Name)
	}
	if v, ok := d.volumes[req.Name]; ok {
		if err := conflicts(v.def, def, req.Options); err != nil {
			return fmt.Errorf("privy volume %q already exists with other options (%w); remove it first to change them", req.Name, err)
		}
		if ticket != "" {
			v.oneshot = ticket
		}
		return nil
	}
	d.volumes[req.Name] = &vol{def: def, oneshot: ticket, mounts: map[string]*mount{}}
	if err := d.saveLocked(); err != nil {
		delete(d.volumes, req.Name)
		return err
	}
	d.log.Info("volume created", "volume", req.Name, "profile", def.Profile, "size", def.Size, "oneshot", ticket != "")
	return nil
}

// parseOptions reads Create's options into a definition and a ticket.
func parseOptions(name string, opts map[string]string) (volumeDef, string, error) {
	def := volumeDef{Name: name, Profile: name, Size: deliver.DefaultTmpfsSize, Created: time.Now().UTC()}
	var ticket string
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		val := opts[k]
		switch k {
		case "profile":
			if val == "" {
				return def, "", errors.New("option profile is empty")
			}
			def.Profile = val
		case "oneshot":
			ticket = val
		case "size":
			n, err := units.RAMInBytes(val)
			if err != nil || n <= 0 {
				return def, "", fmt.Errorf("option size=%q: want a positive size such as 16m, 1g or a number of bytes", val)
			}
			def.Size = n
		case "uid", "gid":
			n, err := strconv.ParseUint(val, 10, 31)
			if err != nil {
				return def, "", fmt.Errorf("option %s=%q: want a numeric id", k, val)
			}
			id := int(n)
			if k == "uid" {
				def.UID = &id
			} else {
				def.GID = &id
			}
		default:
			return def, "", fmt.Errorf("unknown option %q; privy volumes know %s", k, strings.Join(options, ", "))
		}
	}
	return def, ticket, nil
}

// conflicts reports an option given to Create that differs from the
// existing definition.
func conflicts(old, nw volumeDef, given map[string]string) error {
	ptrEq := func(a, b *int) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	for k := range given {
		switch {
		case k == "profile" && old.Profile != nw.Profile:
			return fmt.Errorf("profile %q", old.Profile)
		case k == "size" && old.Size != nw.Size:
			return fmt.Errorf("size %d", old.Size)
		case k == "uid" && !ptrEq(old.UID, nw.UID), k == "gid" && !ptrEq(old.GID, nw.GID):
			return fmt.Errorf("another %s", k)
		}
	}
	return nil
}

// Remove drops a volume's definition; it refuses while it is mounted.
// Removing a volume the driver does not know succeeds, so that Docker can
// forget one whose definition was lost.
func (d *Driver) Remove(req *plugin.RemoveRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[req.Name]
	if !ok {
		return nil
	}
	if n := len(v.mounts); n > 0 {
		return fmt.Errorf("privy volume %q is in use by %d container mount(s); stop them first", req.Name, n)
	}
	delete(d.volumes, req.Name)
	if err := d.saveLocked(); err != nil {
		d.volumes[req.Name] = v
		return err
	}
	d.log.Info("volume removed", "volume", req.Name)
	return nil
}

// Get reports one volume.
func (d *Driver) Get(req *plugin.GetRequest) (*plugin.GetResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[req.Name]
	if !ok {
		return nil, fmt.Errorf("no privy volume %q", req.Name)
	}
	return &plugin.GetResponse{Volume: v.report()}, nil
}

// List reports every volume, by name.
func (d *Driver) List() (*plugin.ListResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := &plugin.ListResponse{Volumes: []*plugin.Volume{}}
	for _, v := range d.volumes {
		out.Volumes = append(out.Volumes, v.report())
	}
	sort.Slice(out.Volumes, func(i, j int) bool { return out.Volumes[i].Name < out.Volumes[j].Name })
	return out, nil
}

// Path returns the mount point of the volume's latest live mount, or "".
func (d *Driver) Path(req *plugin.PathRequest) (*plugin.PathResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.volumes[req.Name]
	if !ok {
		return nil, fmt.Errorf("no privy volume %q", req.Name)
	}
	return &plugin.PathResponse{Mountpoint: v.mountpoint()}, nil
}

// Capabilities says the volumes are local to this host.
func (d *Driver) Capabilities() *plugin.CapabilitiesResponse {
	return &plugin.CapabilitiesResponse{Capabilities: plugin.Capability{Scope: "local"}}
}

// report describes v for Get and List; the caller holds d.mu.
func (v *vol) report() *plugin.Volume {
	st := map[string]any{
		"profile": v.def.Profile,
		"size":    units.BytesSize(float64(v.def.Size)),
		"mounts":  len(v.mounts),
	}
	if v.def.UID != nil {
		st["uid"] = *v.def.UID
	}
	if v.def.GID != nil {
		st["gid"] = *v.def.GID
	}
	if v.oneshot != "" {
		st["oneshot"] = "waiting for the first mount"
	}
	return &plugin.Volume{
		Name:       v.def.Name,
		Mountpoint: v.mountpoint(),
		CreatedAt:  v.def.Created.Format(time.RFC3339),
		Status:     st,
	}
}

// mountpoint is the directory of the latest ready mount, or "".
func (v *vol) mountpoint() string {
	var last *mount
	for _, m := range v.mounts {
		if m.ready && (last == nil || m.seq > last.seq) {
			last = m
		}
	}
	if last == nil {
		return ""
	}
	return last.dir
}

// checkPart accepts a volume name or mount id that is safe as one path
// element.
func checkPart(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || len(s) > 255 {
		return fmt.Errorf("invalid %s %q", what, s)
	}
	return nil
}

// volumeDir is where the mounts of one volume go.
func (d *Driver) volumeDir(name string) string { return filepath.Join(d.root, name) }

// removeVolumeDir removes a volume's directory once it has no mount, not
// even one under way (whose mount point may be being created).
func (d *Driver) removeVolumeDir(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if v, ok := d.volumes[name]; ok && len(v.mounts) > 0 {
		return
	}
	if err := removeIfEmpty(d.volumeDir(name)); err != nil {
		d.log.Warn("removing the volume's directory", "volume", name, "error", err)
	}
}

// withStop returns a context with timeout that is also canceled when the
// driver closes or stop (which may be nil) is closed.
func (d *Driver) withStop(timeout time.Duration, stop <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	go func() {
		select {
		case <-d.done:
		case <-stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
