package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxMeta bounds the size of a metadata file (manifest.json, a config) read
// into memory from an archive.
const maxMeta = 8 << 20

// manifestEntry is one image of a `docker save` manifest.json.
type manifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// parseManifest returns the first image of a manifest.json.
func parseManifest(data []byte) (*manifestEntry, error) {
	var ms []manifestEntry
	if err := json.Unmarshal(data, &ms); err != nil {
		return nil, fmt.Errorf("parsing manifest.json: %w", err)
	}
	if len(ms) == 0 || ms[0].Config == "" {
		return nil, errors.New("manifest.json lists no image")
	}
	return &ms[0], nil
}

// archiveMeta pairs the layers a manifest lists with its config. resolve
// maps an archive path to the entry holding the blob (following links).
func archiveMeta(m *manifestEntry, config []byte, resolve func(string) string, size func(string) int64) (*meta, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(config))
	if err != nil {
		return nil, fmt.Errorf("parsing image config %s: %w", m.Config, err)
	}
	if n := len(cfg.RootFS.DiffIDs); n != len(m.Layers) {
		return nil, fmt.Errorf("config %s lists %d layers, manifest.json %d", m.Config, n, len(m.Layers))
	}
	layers := make([]LayerInfo, len(m.Layers))
	for i, p := range m.Layers {
		p = resolve(cleanPath(p))
		layers[i] = LayerInfo{Blob: p, Digest: blobDigest(p), Size: size(p)}
	}
	return newMeta(cfg, layers), nil
}

// links maps archive entries that are links to what they point to.
type links map[string]string

// add records the link entry hdr.
func (l links) add(name string, hdr *tar.Header) {
	target := hdr.Linkname
	if hdr.Typeflag == tar.TypeSymlink && !path.IsAbs(target) {
		target = path.Join(path.Dir(name), target)
	}
	l[name] = cleanPath(target)
}

// resolve follows links from p, a bounded number of times.
func (l links) resolve(p string) string {
	for range 16 {
		t, ok := l[p]
		if !ok {
			return p
		}
		p = t
	}
	return p
}

// section is where an entry's content lies in an archive file.
type section struct{ off, size int64 }

// archiveImage is a `docker save` tarball on disk (legacy or OCI layout
// inside): its layers are read at their offsets, in parallel.
type archiveImage struct {
	ref, file string
	meta      *meta
	sections  map[string]section // content of each regular entry
}

func openArchive(ref, file string) (Image, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	defer f.Close()
	m, sections, err := readArchiveIndex(f)
	if err != nil {
		return nil, fmt.Errorf("opening image %q: %w", ref, err)
	}
	return &archiveImage{ref: ref, file: file, meta: m, sections: sections}, nil
}

// readArchiveIndex lists the entries of a docker save tarball and reads its
// manifest and config.
func readArchiveIndex(f *os.File) (*meta, map[string]section, error) {
	entries := make(map[string]section)
	lk := make(links)
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("reading archive: %w", err)
		}
		name := cleanPath(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeSymlink, tar.TypeLink:
			lk.add(name, hdr)
		case tar.TypeReg:
			// archive/tar reads no further than a header: the file offset
			// is where the content starts.
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, nil, err
			}
			entries[name] = section{off, hdr.Size}
		}
	}
	read := func(name string) ([]byte, error) {
		s, ok := entries[lk.resolve(name)]
		if !ok {
			return nil, fmt.Errorf("%s not found in archive", name)
		}
		if s.size > maxMeta {
			return nil, fmt.Errorf("%s is too large (%d bytes)", name, s.size)
		}
		b := make([]byte, s.size)
		_, err := f.ReadAt(b, s.off)
		return b, err
	}
	data, err := read("manifest.json")
	if err != nil {
		return nil, nil, fmt.Errorf("not a docker save archive: %w", err)
	}
	man, err := parseManifest(data)
	if err != nil {
		return nil, nil, err
	}
	config, err := read(cleanPath(man.Config))
	if err != nil {
		return nil, nil, err
	}
	m, err := archiveMeta(man, config, lk.resolve, func(p string) int64 {
		if s, ok := entries[p]; ok {
			return s.size
		}
		return -1
	})
	if err != nil {
		return nil, nil, err
	}
	for _, l := range m.layers {
		if _, ok := entries[l.Blob]; !ok {
			return nil, nil, fmt.Errorf("layer %d (%s) not found in archive", l.Index, l.Blob)
		}
	}
	return m, entries, nil
}

func (a *archiveImage) Name() string { return a.ref }

func (a *archiveImage) Config(context.Context) (*v1.ConfigFile, error) {
	return a.meta.config, nil
}

func (a *archiveImage) Layers(context.Context) ([]LayerInfo, error) {
	return append([]LayerInfo(nil), a.meta.layers...), nil
}

func (a *archiveImage) openBlob(_ context.Context, l LayerInfo) (io.ReadCloser, error) {
	s, ok := a.sections[l.Blob]
	if !ok {
		return nil, fmt.Errorf("%s not found in archive", l.Blob)
	}
	f, err := os.Open(a.file)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, s.off, s.size), f}, nil
}
