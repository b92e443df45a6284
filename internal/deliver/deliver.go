// Package deliver places a profile's files in a directory on a tmpfs: the
// volume plugin's per-container mounts and privy exec's directory.
//
// Every file is written under a temporary name in its final directory and
// renamed into place, so a reader sees either the old or the new content,
// never part of one. Nothing here writes to a disk-backed filesystem:
// Write refuses a directory that is not on a tmpfs.
package deliver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// File is one file to place.
type File struct {
	Name string      // slash-separated relative path, e.g. "db_password" or "tls/cert.pem"
	Mode fs.FileMode // permission bits; 0 means 0400
	UID  int
	GID  int
	Data []byte
	// Origin names where the file came from for error messages (a secret
	// path, "repo URL: file", "host private file"); never its content.
	Origin string
}

// tmpPrefix starts the names of files being written; Write removes
// leftovers with it and a reader can ignore them.
const tmpPrefix = ".privy-tmp-"

// CheckName reports whether name is a clean relative path that stays
// inside its directory.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("file name %q is absolute; give a path relative to the mount", name)
	case path.Clean(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "../"):
		return fmt.Errorf("file name %q is not a clean relative path (no '.', '..', '//' or trailing '/')", name)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("file name %q holds a NUL byte", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, tmpPrefix) {
			return fmt.Errorf("file name %q: names starting with %q are privy's own", name, tmpPrefix)
		}
	}
	return nil
}

// OnTmpfs reports whether dir is on a tmpfs (or ramfs).
func OnTmpfs(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, err
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC, nil
}

// RequireTmpfs returns an error unless dir is on a tmpfs.
func RequireTmpfs(dir string) error {
	ok, err := OnTmpfs(dir)
	if err != nil {
		return fmt.Errorf("checking the filesystem of %s: %w", dir, err)
	}
	if !ok {
		return fmt.Errorf("%s is not on a tmpfs, and privy writes secrets only to memory: mount a tmpfs there (docker run --tmpfs %s or a privy volume)", dir, dir)
	}
	return nil
}

// Write places files under dir, replacing each atomically, and removes
// every other file below dir, so that afterwards dir holds exactly files.
// dir must exist and be on a tmpfs unless allowDisk is set. Directories it
// creates get mode 0755 (the mount's root mode decides who may enter).
func Write(dir string, files []File, allowDisk bool) error {
	if !allowDisk {
		if err := RequireTmpfs(dir); err != nil {
			return err
		}
	}
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := CheckName(f.Name); err != nil {
			return fmt.Errorf("%s: %w", f.Origin, err)
		}
		if seen[f.Name] {
			return fmt.Errorf("two files named %q (the second from %s)", f.Name, f.Origin)
		}
		seen[f.Name] = true
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	for _, f := range files {
		if err := replace(root, f); err != nil {
			return err
		}
	}
	return prune(root, seen)
}

// Replace places one file under dir atomically, leaving the others.
func Replace(dir string, f File) error {
	if err := CheckName(f.Name); err != nil {
		return fmt.Errorf("%s: %w", f.Origin, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	return replace(root, f)
}

// replace writes f under a temporary name beside its final place, sets its
// owner and mode, and renames it into place.
func replace(root *os.Root, f File) error {
	if d := path.Dir(f.Name); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating directory %s for %s: %w", d, f.Origin, err)
		}
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(path.Dir(f.Name), tmpPrefix+hex.EncodeToString(rnd[:]))
	mode := f.Mode.Perm()
	if mode == 0 {
		mode = 0o400
	}
	w, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s (from %s): %w", f.Name, f.Origin, err)
	}
	_, err = w.Write(f.Data)
	if err == nil {
		err = w.Chown(f.UID, f.GID)
	}
	if err == nil {
		err = w.Chmod(mode)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, f.Name)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("writing %s (from %s): %w", f.Name, f.Origin, err)
	}
	return nil
}

// prune removes every file and empty directory below root that keep does
// not name (and leftover temporary files).
func prune(root *os.Root, keep map[string]bool) error {
	dirs := map[string]bool{}
	for name := range keep {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var remove []string
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if d.IsDir() {
			if !dirs[p] {
				remove = append(remove, p)
				return fs.SkipDir
			}
			return nil
		}
		if !keep[p] {
			remove = append(remove, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the mount: %w", err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(remove)))
	for _, p := range remove {
		if err := root.RemoveAll(p); err != nil {
			return fmt.Errorf("removing stale %s: %w", p, err)
		}
	}
	return nil
}

// Wipe removes everything below dir, leaving dir itself.
func Wipe(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer root.Close()
	return prune(root, nil)
}

// TmpfsOptions configure MountTmpfs.
type TmpfsOptions struct {
	Size     int64       // bytes; 0 means DefaultTmpfsSize
	Mode     fs.FileMode // of the root; 0 means 0700
	UID, GID int         // owner of the root
}

// DefaultTmpfsSize bounds one mount.
const DefaultTmpfsSize = 16 << 20

// MountTmpfs creates dir (0700) if needed and mounts a fresh tmpfs there,
// size-limited, nodev, nosuid, noexec, its root owned by opts.UID/GID with
// opts.Mode. It needs CAP_SYS_ADMIN (root).
func MountTmpfs(dir string, opts TmpfsOptions) error {
	if opts.Size == 0 {
		opts.Size = DefaultTmpfsSize
	}
	if opts.Mode == 0 {
		opts.Mode = 0o700
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating mount point %s: %w", dir, err)
	}
	data := fmt.Sprintf("size=%d,mode=%04o,uid=%d,gid=%d", opts.Size, opts.Mode.Perm(), opts.UID, opts.GID)
	if err := unix.Mount("privy", dir, "tmpfs", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, data); err != nil {
		return fmt.Errorf("mounting a tmpfs at %s: %w (privy's volume plugin runs as root)", dir, err)
	}
	return nil
}

// Unmount wipes the tmpfs at dir, unmounts it and removes the mount point.
// A dir that is not mounted is only removed.
func Unmount(dir string) error {
	if ok, err := isMountPoint(dir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("checking %s: %w", dir, err)
	} else if ok {
		Wipe(dir) // frees the pages now even if a lazy unmount lingers
		if err := unix.Unmount(dir, 0); err != nil {
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmounting %s: %w", dir, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing mount point %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is the root of a mount (its device
// differs from its parent's, or it is its parent).
func isMountPoint(dir string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if err := unix.Lstat(path.Dir(path.Clean(dir)), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev || st.Ino == pst.Ino, nil
}
