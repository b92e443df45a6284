// Package paths knows privy's default file locations: one place that decides
// where the store, the master key, the audit log, the server socket and the
// CLI's token file live, for root and for ordinary users.
package paths

import (
	"os"
	"path/filepath"
	"strconv"
)

func isRoot() bool { return os.Geteuid() == 0 }

// DataDir is where the embedded store, key file and audit log live:
// /var/lib/privy as root, $XDG_DATA_HOME/privy (or ~/.local/share/privy)
// otherwise. PRIVY_DATA_DIR overrides both.
func DataDir() string {
	if d := os.Getenv("PRIVY_DATA_DIR"); d != "" {
		return d
	}
	if isRoot() {
		return "/var/lib/privy"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "privy")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "privy-"+strconv.Itoa(os.Getuid()), "data")
	}
	return filepath.Join(home, ".local", "share", "privy")
}

// StoreFile is the embedded store's bbolt file inside dir.
func StoreFile(dir string) string { return filepath.Join(dir, "privy.db") }

// KeyFile is the default master key file inside dir.
func KeyFile(dir string) string { return filepath.Join(dir, "master.key") }

// AuditLog is the default audit log inside dir.
func AuditLog(dir string) string { return filepath.Join(dir, "audit.log") }

// Socket is the server's default unix socket: /run/privy/privy.sock as root,
// $XDG_RUNTIME_DIR/privy/privy.sock otherwise (falling back to a per-user
// folder under the temp dir).
func Socket() string {
	if isRoot() {
		return "/run/privy/privy.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "privy", "privy.sock")
	}
	return filepath.Join(os.TempDir(), "privy-"+strconv.Itoa(os.Getuid()), "privy.sock")
}

// TokenFile is where `privy login` keeps the CLI's token:
// $XDG_CONFIG_HOME/privy/token or ~/.config/privy/token.
func TokenFile() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "privy", "token")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".config", "privy", "token")
}

// BuildCacheKeyFile is where `privy build --bust-cache-on-rotation` keeps
// the key of its cache fingerprints, beside the token file.
func BuildCacheKeyFile() string {
	f := TokenFile()
	if f == "" {
		return ""
	}
	return filepath.Join(filepath.Dir(f), "build-cache.key")
}
