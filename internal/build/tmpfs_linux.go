package build

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// privateDir creates a directory only the caller can enter, on a tmpfs, for
// the secret files and agent sockets of one build. It tries
// $XDG_RUNTIME_DIR, /dev/shm and /run/user/UID.
func privateDir() (string, error) {
	cands := []string{os.Getenv("XDG_RUNTIME_DIR"), "/dev/shm", fmt.Sprintf("/run/user/%d", os.Getuid())}
	for _, c := range cands {
		if c == "" || !onTmpfs(c) {
			continue
		}
		d, err := os.MkdirTemp(c, "privy-build-")
		if err != nil {
			continue
		}
		if err := os.Chmod(d, 0o700); err != nil {
			os.Remove(d)
			continue
		}
		return d, nil
	}
	return "", fmt.Errorf("no writable tmpfs for the build's secret files (tried $XDG_RUNTIME_DIR, /dev/shm, /run/user/%d): mount one, privy never writes secrets to disk", os.Getuid())
}

func onTmpfs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}
