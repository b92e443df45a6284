package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// v1Image is an image go-containerregistry reads (a registry, an OCI
// layout): each layer blob is fetched on its own, so layers are walked in
// parallel.
type v1Image struct {
	ref    string
	img    v1.Image
	layers []v1.Layer
	meta   *meta
}

func newV1Image(ref string, img v1.Image) (*v1Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("opening image %q: reading config: %w", ref, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("opening image %q: listing layers: %w", ref, err)
	}
	infos := make([]LayerInfo, len(ls))
	for i, l := range ls {
		if infos[i].Digest, err = l.Digest(); err != nil {
			return nil, fmt.Errorf("opening image %q: layer %d: %w", ref, i, err)
		}
		if infos[i].Size, err = l.Size(); err != nil {
			infos[i].Size = -1
		}
		if d, err := l.DiffID(); err == nil {
			infos[i].DiffID = d
		}
	}
	return &v1Image{ref: ref, img: img, layers: ls, meta: newMeta(cfg, infos)}, nil
}

func (v *v1Image) Name() string { return v.ref }

func (v *v1Image) Config(context.Context) (*v1.ConfigFile, error) { return v.meta.config, nil }

func (v *v1Image) Layers(context.Context) ([]LayerInfo, error) {
	return append([]LayerInfo(nil), v.meta.layers...), nil
}

// openBlob returns the blob as stored; Walk tells its compression itself.
func (v *v1Image) openBlob(_ context.Context, l LayerInfo) (io.ReadCloser, error) {
	return v.layers[l.Index].Compressed()
}

// openRegistry reads HOST/REPO:TAG from a registry, with credentials from
// the Docker config. Plain HTTP is used only for loopback and local hosts
// (go-containerregistry's rule); any other registry must speak HTTPS.
func openRegistry(ctx context.Context, ref, s string) (Image, error) {
	r, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	img, err := remote.Image(r,
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	return newV1Image(ref, img)
}

// openLayout reads the image of an OCI image layout. A layout holding
// several images (or an index per platform) gives the one for this
// machine's platform, or else the first.
func openLayout(ref, dir string) (Image, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	img, err := pickImage(idx, 0)
	if err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	return newV1Image(ref, img)
}

// pickImage finds an image in an index, descending into nested indexes.
func pickImage(idx v1.ImageIndex, depth int) (v1.Image, error) {
	if depth > 4 {
		return nil, errors.New("image indexes nested too deep")
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var first *v1.Descriptor
	for i, d := range im.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		if first == nil {
			first = &im.Manifests[i]
		}
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			first = &im.Manifests[i]
			break
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%w: the layout holds no image", ErrNotFound)
	}
	if first.MediaType.IsIndex() {
		child, err := idx.ImageIndex(first.Digest)
		if err != nil {
			return nil, err
		}
		return pickImage(child, depth+1)
	}
	return idx.Image(first.Digest)
}
