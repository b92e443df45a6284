package image

import (
	"path"
	"strings"
	"sync"
)

// kind is what a layer says about a path.
type kind uint8

const (
	kindDir      kind = iota + 1 // a directory
	kindFile                     // anything but a directory: file, symlink, hard link, device
	kindWhiteout                 // .wh.NAME: the path is deleted
)

// entries is what one layer blob says about paths.
type entries struct {
	kinds  map[string]kind
	opaque map[string]bool // directories with .wh..wh..opq
}

func newEntries() *entries {
	return &entries{kinds: make(map[string]kind), opaque: make(map[string]bool)}
}

func (e *entries) add(p string, k kind) { e.kinds[p] = k }

// Note records a nested archive that was skipped because it is corrupt or
// could not be read; it does not stop the walk.
type Note struct {
	File File // the archive
	Err  error
}

// Index is built during Walk from every layer's entries. After Walk it
// answers whether a file of a layer is still present in the final image.
type Index struct {
	mu     sync.Mutex
	blobs  map[string]*entries // by LayerInfo.Blob
	layers []string            // LayerInfo.Blob of each layer
	last   map[string]int      // blob → last layer index using it
	notes  []Note
}

func newIndex() *Index {
	return &Index{blobs: make(map[string]*entries), last: make(map[string]int)}
}

// setLayers records which blob each layer is.
func (x *Index) setLayers(layers []LayerInfo) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.layers = make([]string, len(layers))
	for i, l := range layers {
		x.layers[i] = l.Blob
		x.last[l.Blob] = i
	}
}

func (x *Index) blob(key string) *entries {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := x.blobs[key]
	if e == nil {
		e = newEntries()
		x.blobs[key] = e
	}
	return e
}

func (x *Index) note(f *File, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.notes = append(x.notes, Note{File: *f, Err: err})
}

// Notes returns the nested archives that were skipped, with why.
func (x *Index) Notes() []Note {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]Note(nil), x.notes...)
}

// Layers returns the number of layers the index knows.
func (x *Index) Layers() int { return len(x.layers) }

// LayerOf returns the layer index of f: f.Layer, or for a file reported
// before its layer was known, the layer its blob turned out to be. A blob
// used by several layers is reported once, as the last of them (the copy
// that decides presence). It returns -1 if the blob is no layer of the image.
func (x *Index) LayerOf(f *File) int {
	if f.Layer >= 0 {
		return f.Layer
	}
	if i, ok := x.last[f.Blob]; ok {
		return i
	}
	return -1
}

// PresentFile reports whether f, as written in its layer, is still present
// in the final image; for a file inside an archive, whether that archive is.
func (x *Index) PresentFile(f *File) bool {
	if f.Whiteout {
		return false
	}
	return x.Present(x.LayerOf(f), f.LayerPath())
}

// Present reports whether path as written in layer is still present in the
// final image: the layer has an entry for it, and no later layer deletes it
// (a whiteout of the path or of a parent directory, an opaque whiteout of a
// parent directory) or replaces it (an entry for the same path, except a
// directory over a directory; a non-directory over a parent directory).
func (x *Index) Present(layer int, p string) bool {
	if layer < 0 || layer >= len(x.layers) {
		return false
	}
	p = cleanPath(p)
	own := x.blobs[x.layers[layer]]
	if own == nil || p == "" {
		return false
	}
	k, ok := own.kinds[p]
	if !ok || k == kindWhiteout {
		return false
	}
	parents := ancestors(p)
	for j := layer + 1; j < len(x.layers); j++ {
		e := x.blobs[x.layers[j]]
		if e == nil {
			continue
		}
		if later, ok := e.kinds[p]; ok && !(later == kindDir && k == kindDir) {
			return false
		}
		if e.opaque[""] { // an opaque root hides every lower layer
			return false
		}
		for _, a := range parents {
			if e.opaque[a] {
				return false
			}
			if later, ok := e.kinds[a]; ok && later != kindDir {
				return false
			}
		}
	}
	return true
}

// ancestors returns the proper parent directories of p, nearest first.
func ancestors(p string) []string {
	var out []string
	for {
		d := path.Dir(p)
		if d == "." || d == "/" || d == p {
			return out
		}
		out = append(out, d)
		p = d
	}
}

// whiteoutTarget interprets the base name of a layer entry: for ".wh.NAME"
// it returns dir/NAME; for ".wh..wh..opq" the directory and opaque.
func whiteoutTarget(p string) (target string, opaque, ok bool) {
	dir, base := path.Split(p)
	if !strings.HasPrefix(base, ".wh.") {
		return "", false, false
	}
	if base == ".wh..wh..opq" {
		return cleanPath(dir), true, true
	}
	if strings.HasPrefix(base, ".wh..wh.") {
		// Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not a deletion.
		return "", false, true
	}
	t := cleanPath(dir + base[len(".wh."):])
	return t, false, t != ""
}
