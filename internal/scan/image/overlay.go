package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// The engine's export (GET /images/{name}/get) re-packs every layer into a
// tar on each call, at the engine's pace. When privy runs beside an engine
// that keeps images in overlay2 and may read its storage (root), the
// layers can be read where they lie instead: each layer's diff directory
// is walked and handed to the scanner as a tar stream, with overlayfs
// whiteouts (0/0 character devices, the "opaque" xattr) turned into tar
// whiteouts as the export would. The config is the engine's own file,
// checked against the image id. Anything unexpected and the caller falls
// back to the export.

// errNoStorage says the engine's storage cannot be read directly.
var errNoStorage = errors.New("engine storage not readable here")

// OpenEngineStorage opens an image of the local Docker Engine by reading
// its overlay2 storage directly, for a guard or scan that runs on the
// engine's host as root. It fails (and Open's export is the way) when the
// engine uses another storage driver or its files cannot be read.
func OpenEngineStorage(ctx context.Context, ref string) (Image, error) {
	e, err := newEngine()
	if err != nil {
		return nil, err
	}
	var inspect struct {
		ID     string `json:"Id"`
		RootFS struct {
			Layers []string
		}
		GraphDriver struct {
			Name string
			Data map[string]string
		}
	}
	if err := e.getJSON(ctx, "/images/"+ref+"/json", &inspect); err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	if inspect.GraphDriver.Name != "overlay2" {
		return nil, fmt.Errorf("%w: storage driver %q", errNoStorage, inspect.GraphDriver.Name)
	}
	var info struct{ DockerRootDir string }
	if err := e.getJSON(ctx, "/info", &info); err != nil {
		return nil, err
	}
	hexID, ok := strings.CutPrefix(inspect.ID, "sha256:")
	if !ok || len(hexID) != 64 || info.DockerRootDir == "" {
		return nil, fmt.Errorf("%w: unexpected image id %q", errNoStorage, inspect.ID)
	}
	raw, err := os.ReadFile(filepath.Join(info.DockerRootDir, "image", "overlay2", "imagedb", "content", "sha256", hexID))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoStorage, err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != hexID {
		return nil, fmt.Errorf("%w: the config file does not hash to the image id", errNoStorage)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing the config of %q: %w", ref, err)
	}
	// The top layer's diff is UpperDir; LowerDir lists the others, top first.
	var dirs []string
	if l := inspect.GraphDriver.Data["LowerDir"]; l != "" {
		dirs = strings.Split(l, ":")
	}
	dirs = append([]string{inspect.GraphDriver.Data["UpperDir"]}, dirs...)
	if len(dirs) != len(cfg.RootFS.DiffIDs) || len(dirs) != len(inspect.RootFS.Layers) {
		return nil, fmt.Errorf("%w: %d layer directories for %d layers", errNoStorage, len(dirs), len(cfg.RootFS.DiffIDs))
	}
	layers := make([]LayerInfo, len(dirs))
	for i := range dirs {
		d := dirs[len(dirs)-1-i] // base first
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("%w: layer directory %s: %v", errNoStorage, d, err)
		}
		if _, err := os.ReadDir(d); err != nil {
			return nil, fmt.Errorf("%w: %v", errNoStorage, err)
		}
		layers[i] = LayerInfo{Blob: d, Size: -1}
	}
	return &storageImage{ref: ref, meta: newMeta(cfg, layers)}, nil
}

// getJSON decodes the reply to GET p.
func (e *engine) getJSON(ctx context.Context, p string, v any) error {
	resp, err := e.get(ctx, p)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v)
}

// storageImage is an engine image read from its overlay2 directories.
type storageImage struct {
	ref  string
	meta *meta
}

func (s *storageImage) Name() string { return s.ref }

func (s *storageImage) Config(context.Context) (*v1.ConfigFile, error) { return s.meta.config, nil }

func (s *storageImage) Layers(context.Context) ([]LayerInfo, error) {
	return append([]LayerInfo(nil), s.meta.layers...), nil
}

// openBlob returns the layer directory as an uncompressed tar stream.
func (s *storageImage) openBlob(ctx context.Context, l LayerInfo) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarDir(ctx, l.Blob, pw)) }()
	return pr, nil
}

// tarDir writes the overlay diff directory root as a layer tar.
func tarDir(ctx context.Context, root string, w io.Writer) error {
	tw := tar.NewWriter(w)
	seen := map[[2]uint64]string{} // (dev, inode) of files with several links
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.Mode()&fs.ModeCharDevice != 0 && st != nil && st.Rdev == 0:
			// An overlay whiteout: NAME deleted from the layers below.
			dir, base := filepath.Split(rel)
			return tw.WriteHeader(&tar.Header{Name: dir + ".wh." + base, Typeflag: tar.TypeReg, Mode: 0o600})
		case fi.IsDir():
			if err := tw.WriteHeader(&tar.Header{Name: rel + "/", Typeflag: tar.TypeDir, Mode: int64(fi.Mode().Perm())}); err != nil {
				return err
			}
			if opaque(p) {
				return tw.WriteHeader(&tar.Header{Name: rel + "/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o600})
			}
			return nil
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777})
		case fi.Mode().IsRegular():
			if st != nil && st.Nlink > 1 {
				key := [2]uint64{uint64(st.Dev), st.Ino}
				if first, ok := seen[key]; ok {
					return tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeLink, Linkname: first})
				}
				seen[key] = rel
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Size: fi.Size(), Mode: int64(fi.Mode().Perm())}); err != nil {
				return err
			}
			n, err := io.Copy(tw, f)
			if err == nil && n != fi.Size() {
				err = fmt.Errorf("%s changed size while it was read", rel)
			}
			return err
		default:
			// Devices, fifos and sockets have no content to scan.
			return nil
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// opaque reports whether an overlay directory hides the lower layers'.
func opaque(dir string) bool {
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(dir, attr, buf)
		if err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
