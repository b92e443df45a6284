// Package profile checks run-time profiles (api.Profile): what one kind of
// container receives. The manifest's run: section and the server's
// PUT /v1/profiles/{name} both produce profiles; the server stores only
// profiles that pass Validate.
package profile

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/internal/deliver"
	"github.com/privyhq/privy/internal/store"
)

// DefaultMode is the mode of a delivered secret file when none is given.
const DefaultMode = 0o400

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// CheckName reports whether name can name a profile.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("profile name %q: use 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks a profile as a whole: its name, file names (clean,
// relative, unique), store paths, modes, repository URLs and signal.
func Validate(p api.Profile) error {
	if err := CheckName(p.Name); err != nil {
		return err
	}
	if len(p.Files) == 0 && len(p.Prefixes) == 0 && len(p.Repos) == 0 && !p.HostPrivate {
		return fmt.Errorf("profile %q delivers nothing: give files, prefixes, repos or host_private", p.Name)
	}
	names := map[string]bool{}
	for _, f := range p.Files {
		if err := deliver.CheckName(f.Name); err != nil {
			return fmt.Errorf("profile %q: %w", p.Name, err)
		}
		if names[f.Name] {
			return fmt.Errorf("profile %q: two files named %q", p.Name, f.Name)
		}
		names[f.Name] = true
		if err := store.ValidatePath(f.Secret); err != nil {
			return fmt.Errorf("profile %q: file %q: %w", p.Name, f.Name, err)
		}
		if err := checkOwner(f.Owner); err != nil {
			return fmt.Errorf("profile %q: file %q: %w", p.Name, f.Name, err)
		}
	}
	for _, x := range p.Prefixes {
		if !strings.HasSuffix(x.Prefix, "/") {
			return fmt.Errorf("profile %q: prefix %q must end in '/'", p.Name, x.Prefix)
		}
		if err := store.ValidatePath(strings.TrimSuffix(x.Prefix, "/")); err != nil {
			return fmt.Errorf("profile %q: prefix %q: %w", p.Name, x.Prefix, err)
		}
		if x.Dir != "" {
			if err := deliver.CheckName(x.Dir); err != nil {
				return fmt.Errorf("profile %q: prefix %q: dir: %w", p.Name, x.Prefix, err)
			}
		}
		if err := checkOwner(x.Owner); err != nil {
			return fmt.Errorf("profile %q: prefix %q: %w", p.Name, x.Prefix, err)
		}
	}
	for _, r := range p.Repos {
		if err := checkRepo(r); err != nil {
			return fmt.Errorf("profile %q: repo %s: %w", p.Name, RedactURL(r.URL), err)
		}
	}
	if p.OnRotate != "" {
		if _, err := Signal(p.OnRotate); err != nil {
			return fmt.Errorf("profile %q: on_rotate: %w", p.Name, err)
		}
	}
	if p.Post != nil && len(p.Post) == 0 {
		return fmt.Errorf("profile %q: post is an empty command", p.Name)
	}
	return nil
}

func checkOwner(o api.Owner) error {
	if o.Mode&^0o777 != 0 {
		return fmt.Errorf("mode %#o: only permission bits (at most 0777) are allowed", o.Mode)
	}
	for _, id := range []*int{o.UID, o.GID} {
		if id != nil && (*id < 0 || *id > 1<<31-1) {
			return fmt.Errorf("uid/gid %d out of range 0 to 2147483647", *id)
		}
	}
	return nil
}

func checkRepo(r api.ProfileRepo) error {
	u, err := ParseRepoURL(r.URL)
	if err != nil {
		return err
	}
	if u.Scheme == "ssh" && r.KnownHosts == "" {
		return fmt.Errorf("an ssh repository needs known_hosts (a store path of known_hosts lines): privy always checks host keys")
	}
	for field, p := range map[string]string{"ssh_key": r.SSHKey, "known_hosts": r.KnownHosts, "password": r.Password, "age_identity": r.AgeIdentity} {
		if p == "" {
			continue
		}
		if err := store.ValidatePath(p); err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
	}
	if r.Dir != "" {
		if err := deliver.CheckName(r.Dir); err != nil {
			return fmt.Errorf("dir: %w", err)
		}
	}
	for _, f := range r.Files {
		src := strings.TrimSuffix(f.Src, "/")
		if err := deliver.CheckName(src); err != nil {
			return fmt.Errorf("files: src: %w", err)
		}
		if f.Dest != "" {
			if err := deliver.CheckName(strings.TrimSuffix(f.Dest, "/")); err != nil {
				return fmt.Errorf("files: dest: %w", err)
			}
		}
		if f.Mode&^0o777 != 0 {
			return fmt.Errorf("files: %s: mode %#o: only permission bits are allowed", f.Src, f.Mode)
		}
	}
	return checkOwner(r.Owner)
}

// scpRE matches scp-like git addresses: user@host:path.
var scpRE = regexp.MustCompile(`^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(.+)$`)

// ParseRepoURL parses a git repository address: ssh://, https://, http://
// (loopback only) or scp-like user@host:path, which it returns as ssh://.
func ParseRepoURL(raw string) (*url.URL, error) {
	if m := scpRE.FindStringSubmatch(raw); m != nil && !strings.Contains(raw, "://") {
		return &url.URL{Scheme: "ssh", User: url.User(m[1]), Host: m[2], Path: "/" + strings.TrimPrefix(m[3], "/")}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("repository URL is malformed: use ssh://, https:// or user@host:path")
	}
	switch u.Scheme {
	case "ssh", "https":
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("http:// is allowed only for a loopback host; use https://")
		}
	default:
		return nil, fmt.Errorf("repository URL scheme %q is not supported: use ssh://, https:// or user@host:path (a container never reads host paths)", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("repository URL has no host")
	}
	return u, nil
}

// RedactURL returns a repository address with any password removed, for
// messages and logs.
func RedactURL(raw string) string { return deliver.RedactURL(raw) }

// Signal parses a signal name ("SIGHUP", "HUP", "sigusr1").
func Signal(name string) (unix.Signal, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s := unix.SignalNum(n); s != 0 {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %q: use a name such as SIGHUP, SIGUSR1 or SIGTERM", name)
}

// Mode returns o's mode, or def when none is given.
func Mode(o api.Owner, def uint32) uint32 {
	if o.Mode == 0 {
		return def
	}
	return o.Mode
}

// IDs returns o's uid and gid, root when unset.
func IDs(o api.Owner) (uid, gid int) {
	if o.UID != nil {
		uid = *o.UID
	}
	if o.GID != nil {
		gid = *o.GID
	}
	return uid, gid
}
