package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxMetaTotal bounds all the metadata a stream may make us hold.
const maxMetaTotal = 64 << 20

// streamImage is an image read as one sequential `docker save` stream (the
// Docker Engine's export): layers are walked in the order the stream has
// them, one at a time, and nothing but small metadata is held.
type streamImage struct {
	ref  string
	open func(ctx context.Context) (io.ReadCloser, error)

	mu   sync.Mutex
	meta *meta // set by the first complete pass
}

// OpenStream opens an image whose `docker save` tar (docker-archive) open
// streams, such as the output of `podman save`; open may be called more
// than once. The stream is read as it comes, never stored.
func OpenStream(ref string, open func(ctx context.Context) (io.ReadCloser, error)) Image {
	return &streamImage{ref: ref, open: open}
}

func (s *streamImage) Name() string { return s.ref }

// Config returns the image config. Before a Walk it needs a pass over the
// whole stream (skipping the layers), so call Walk first when both are
// wanted.
func (s *streamImage) Config(ctx context.Context) (*v1.ConfigFile, error) {
	m, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	return m.config, nil
}

// Layers returns the layers; like Config, it is free only after a Walk.
func (s *streamImage) Layers(ctx context.Context) ([]LayerInfo, error) {
	m, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	return append([]LayerInfo(nil), m.layers...), nil
}

func (s *streamImage) load(ctx context.Context) (*meta, error) {
	s.mu.Lock()
	m := s.meta
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	if err := s.walkStream(ctx, nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meta, nil
}

// streamState is what a pass over a stream has seen so far.
type streamState struct {
	files   map[string][]byte // metadata, and small blobs that may be
	total   int64
	links   links
	sizes   map[string]int64
	man     *manifestEntry
	layerOf map[string]int // resolved blob path → last layer using it
	scanned map[string]bool
}

// isMeta tells the metadata files of a docker save stream: top-level files
// (manifest.json, index.json, the config, repositories) and the legacy
// per-layer json and VERSION.
func isMeta(name string) bool {
	return !strings.Contains(name, "/") || strings.HasSuffix(name, "/json") || strings.HasSuffix(name, "/VERSION")
}

// isBlob tells the entries that may be layers: legacy "<id>/layer.tar" and
// OCI "blobs/ALG/HEX" (which also holds manifests and configs).
func isBlob(name string) bool {
	return strings.HasSuffix(name, "/layer.tar") || strings.HasPrefix(name, "blobs/")
}

// walkStream reads the whole stream; w nil reads only the metadata.
// A layer met before manifest.json is walked at once as layer -1 and
// attributed by its path when the manifest comes (Index.LayerOf).
func (s *streamImage) walkStream(ctx context.Context, w *walker) error {
	rc, err := s.open(ctx)
	if err != nil {
		return err
	}
	defer rc.Close()
	st := &streamState{files: map[string][]byte{}, links: links{}, sizes: map[string]int64{}, scanned: map[string]bool{}}
	if err := s.read(ctx, w, st, tar.NewReader(rc)); err != nil {
		return err
	}
	if st.man == nil {
		return fmt.Errorf("reading image %q: the export has no manifest.json", s.ref)
	}
	config, ok := st.files[st.links.resolve(cleanPath(st.man.Config))]
	if !ok {
		return fmt.Errorf("reading image %q: config %s not found in the export", s.ref, st.man.Config)
	}
	m, err := archiveMeta(st.man, config, st.links.resolve, func(p string) int64 {
		if n, ok := st.sizes[p]; ok {
			return n
		}
		return -1
	})
	if err != nil {
		return fmt.Errorf("reading image %q: %w", s.ref, err)
	}
	if w != nil {
		w.index.setLayers(m.layers)
		for _, l := range m.layers {
			if st.scanned[l.Blob] || w.index.last[l.Blob] != l.Index {
				continue
			}
			data, ok := st.files[l.Blob] // a small blob that looked like JSON
			if !ok {
				return &LayerError{Layer: l.Index, Blob: l.Blob, Err: errors.New("missing from the export")}
			}
			if err := w.walkBlob(ctx, l.Index, l.Blob, bytes.NewReader(data)); err != nil {
				return err
			}
		}
	}
	s.mu.Lock()
	s.meta = m
	s.mu.Unlock()
	return nil
}

// read goes through the entries of the stream.
func (s *streamImage) read(ctx context.Context, w *walker, st *streamState, tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading image %q: reading the export: %w", s.ref, err)
		}
		name := cleanPath(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			st.links.add(name, hdr)
			continue
		case tar.TypeReg:
		default:
			continue
		}
		st.sizes[name] = hdr.Size
		br := bufio.NewReaderSize(tr, 64<<10)
		head, _ := br.Peek(1)
		small := hdr.Size <= maxMeta && st.total+hdr.Size <= maxMetaTotal
		switch {
		case isMeta(name) || (isBlob(name) && small && string(head) == "{"):
			if !small {
				return fmt.Errorf("reading image %q: %s is too large (%d bytes)", s.ref, name, hdr.Size)
			}
			data, err := io.ReadAll(br)
			if err != nil {
				return fmt.Errorf("reading image %q: reading %s: %w", s.ref, name, err)
			}
			st.files[name] = data
			st.total += int64(len(data))
			if name == "manifest.json" {
				if err := st.setManifest(data); err != nil {
					return fmt.Errorf("reading image %q: %w", s.ref, err)
				}
			}
		case isBlob(name) && w != nil:
			layer := -1
			if st.man != nil {
				i, ok := st.layerOf[name]
				if !ok {
					continue // not a layer of this image
				}
				layer = i
			}
			if err := w.walkBlob(ctx, layer, name, br); err != nil {
				return err
			}
			st.scanned[name] = true
		}
	}
}

// setManifest records manifest.json; later layers are attributed at once.
func (st *streamState) setManifest(data []byte) error {
	m, err := parseManifest(data)
	if err != nil {
		return err
	}
	st.man = m
	st.layerOf = make(map[string]int)
	for i, p := range m.Layers {
		st.layerOf[st.links.resolve(cleanPath(p))] = i
	}
	return nil
}
