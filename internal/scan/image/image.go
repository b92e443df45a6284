// Package image opens a container image from any source privy scans (the
// local Docker Engine, a `docker save` tarball, an OCI image layout, a
// registry) and streams every file of every layer exactly once.
//
// It promises three things the scanner relies on: nothing is extracted to
// disk; memory stays bounded whatever the size of the image (a layer is a
// stream, and only archives nested in layers are held in memory, each within
// WalkOptions.MaxArchive); and after a Walk the returned Index tells, for any
// file of any layer, whether it is still present in the final image, applying
// whiteouts, opaque whiteouts and overwrites itself.
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Image is an image to scan: its config, its layers, and (through Walk) the
// files of its layers.
type Image interface {
	// Name returns the reference the image was opened with.
	Name() string
	// Config returns the image config (Env, Labels, Cmd, Entrypoint, User,
	// WorkingDir, History).
	Config(ctx context.Context) (*v1.ConfigFile, error)
	// Layers returns the layers in order, base first.
	Layers(ctx context.Context) ([]LayerInfo, error)
}

// LayerInfo describes one layer of an image.
type LayerInfo struct {
	Index  int     // position in the image, 0 for the base layer
	Digest v1.Hash // digest of the blob as stored (compressed); zero if the source does not say
	DiffID v1.Hash // digest of the uncompressed layer tar, from the config
	Size   int64   // size of the blob as stored, -1 if unknown
	// CreatedBy is the created_by of the history entry that produced the
	// layer (history entries marked empty_layer are skipped when pairing).
	CreatedBy string
	// Blob names the layer's blob in its source: its path in an archive
	// ("<id>/layer.tar", "blobs/sha256/…") or its digest. Layers with the
	// same Blob have the same content and are walked once.
	Blob string
}

// File is one file found while walking the layers.
type File struct {
	// Layer is the index of the layer (into Layers) the file was found in,
	// or -1 when it is not known yet: a layer that comes before the manifest
	// in a sequential stream (the Docker Engine's export). Index.LayerOf
	// resolves it once Walk has returned.
	Layer int
	// Blob is the LayerInfo.Blob of the layer the file was found in.
	Blob string
	// Path is the file's path, clean, without a leading "./" or "/": in the
	// layer, or in the innermost archive when Inner is not empty.
	Path string
	// Inner is the chain of archives the file was found in, the first being
	// a path in the layer ("opt/app.jar", "lib/x.zip"); empty for files of
	// the layer itself.
	Inner []string
	Size  int64
	Mode  os.FileMode
	// Whiteout marks a whiteout entry (.wh.NAME or .wh..wh..opq): Path is
	// the path it deletes and there is no content.
	Whiteout bool
	// Opaque marks an opaque whiteout (.wh..wh..opq): Path is the directory
	// whose contents from lower layers it hides.
	Opaque bool
	// Link is the target of a hard link. A hard link has no content of its
	// own: its content was reported under Link, earlier in the layer.
	Link string
}

// LayerPath returns the file's path in its layer: Path, or for a file inside
// an archive, the path of the outermost archive.
func (f *File) LayerPath() string {
	if len(f.Inner) > 0 {
		return f.Inner[0]
	}
	return f.Path
}

// String returns the file's location with archive members after "!":
// "opt/app.jar!lib/x.zip!a.properties".
func (f *File) String() string {
	return strings.Join(append(append([]string(nil), f.Inner...), f.Path), "!")
}

// Schemes are the reference forms Open accepts, for messages.
const Schemes = `"docker-archive:PATH", "oci:DIR", "registry:HOST/REPO:TAG", or a bare name such as "myapp:1" for the local Docker Engine`

var (
	// ErrUnknownScheme is returned by Open for a reference it cannot read.
	ErrUnknownScheme = errors.New("unknown image reference scheme")
	// ErrNotFound is returned by Open when the image does not exist.
	ErrNotFound = errors.New("image not found")
)

// LayerError reports a layer that could not be read: a truncated or corrupt
// blob or tar.
type LayerError struct {
	Layer int    // index of the layer, -1 if not known yet
	Blob  string // LayerInfo.Blob of the layer
	Err   error
}

func (e *LayerError) Error() string {
	if e.Layer < 0 {
		return fmt.Sprintf("reading layer %s: %v", e.Blob, e.Err)
	}
	return fmt.Sprintf("reading layer %d (%s): %v", e.Layer, e.Blob, e.Err)
}

func (e *LayerError) Unwrap() error { return e.Err }

var schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

// Open resolves a reference: "docker-archive:PATH" (a `docker save` tar),
// "oci:DIR" (an OCI image layout), "registry:HOST/REPO:TAG" (a registry,
// with credentials from the Docker config; plain HTTP only for loopback
// hosts), or a bare name such as "myapp:1": an image of the local Docker
// Engine, streamed from its API over the unix socket (DOCKER_HOST unix://
// honoured) without buffering it.
func Open(ctx context.Context, ref string) (Image, error) {
	scheme, rest, _ := strings.Cut(ref, ":")
	switch scheme {
	case "docker-archive":
		return openArchive(ref, rest)
	case "oci":
		return openLayout(ref, rest)
	case "registry":
		// "registry:2" is the engine's image of that name, not a registry.
		if strings.Contains(rest, "/") {
			return openRegistry(ctx, ref, rest)
		}
	}
	if schemeRE.MatchString(ref) && (strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, ".") || !validName(ref)) {
		return nil, fmt.Errorf("opening image %q: %w; use %s", ref, ErrUnknownScheme, Schemes)
	}
	return openEngine(ctx, ref)
}

// validName reports whether ref reads as an image name of the engine.
func validName(ref string) bool {
	_, err := name.ParseReference(ref, name.WeakValidation)
	return err == nil
}

// meta is what a source knows of an image once its manifest and config have
// been read.
type meta struct {
	config *v1.ConfigFile
	layers []LayerInfo
}

// newMeta pairs layer blobs with the config's diff IDs and history.
func newMeta(cfg *v1.ConfigFile, layers []LayerInfo) *meta {
	var created []string
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			created = append(created, h.CreatedBy)
		}
	}
	for i := range layers {
		layers[i].Index = i
		if i < len(cfg.RootFS.DiffIDs) && layers[i].DiffID == (v1.Hash{}) {
			layers[i].DiffID = cfg.RootFS.DiffIDs[i]
		}
		if i < len(created) {
			layers[i].CreatedBy = created[i]
		}
		if layers[i].Blob == "" {
			layers[i].Blob = layers[i].Digest.String()
		}
	}
	return &meta{config: cfg, layers: layers}
}

// cleanPath returns a tar entry name as a clean relative path, "" for the
// root.
func cleanPath(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// blobDigest returns the digest a path "blobs/ALG/HEX" names, if it does.
func blobDigest(p string) v1.Hash {
	if rest, ok := strings.CutPrefix(p, "blobs/"); ok {
		if alg, hex, ok := strings.Cut(rest, "/"); ok {
			if h, err := v1.NewHash(alg + ":" + hex); err == nil {
				return h
			}
		}
	}
	return v1.Hash{}
}

var emptyReader = io.LimitReader(nil, 0)
