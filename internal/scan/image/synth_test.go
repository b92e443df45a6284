package image

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// ent is an entry of a synthetic tar.
type ent struct {
	name string
	body string
	typ  byte // tar.TypeReg when 0
	link string
}

func dir(name string) ent           { return ent{name: name, typ: tar.TypeDir} }
func file(name, body string) ent    { return ent{name: name, body: body} }
func symlink(name, to string) ent   { return ent{name: name, typ: tar.TypeSymlink, link: to} }
func hardlink(name, to string) ent  { return ent{name: name, typ: tar.TypeLink, link: to} }
func whiteout(dir, name string) ent { return file(strings.TrimSuffix(dir+"/.wh."+name, "/"), "") }

// tarOf writes entries as a tar in memory.
func tarOf(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(1e9, 0)}
		switch e.typ {
		case 0:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		case tar.TypeDir:
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func gzipOf(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func zstdOf(t testing.TB, data []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(data, nil)
}

func zipOf(t testing.TB, files ...ent) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, f.body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// layerSpec is a layer of a synthetic image: its tar and how it is stored.
type layerSpec struct {
	tar       []byte
	createdBy string
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// configOf returns the config of an image of layers, with an empty layer
// in its history to check the pairing.
func configOf(t testing.TB, layers []layerSpec) []byte {
	t.Helper()
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	cfg.Config.Env = []string{"A=1"}
	for i, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, v1.Hash{Algorithm: "sha256", Hex: sha(l.tar)})
		if i == 1 {
			cfg.History = append(cfg.History, v1.History{CreatedBy: "ENV A=1", EmptyLayer: true})
		}
		cfg.History = append(cfg.History, v1.History{CreatedBy: l.createdBy})
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerSave writes a docker save stream the way Docker 20.10 does:
// entries in lexical order, so every layer comes before manifest.json.
// compress, if set, stores each layer blob compressed; manifestFirst puts
// manifest.json first instead.
func dockerSave(t testing.TB, w io.Writer, layers []layerSpec, compress func(testing.TB, []byte) []byte, manifestFirst bool) {
	t.Helper()
	config := configOf(t, layers)
	files := map[string][]byte{}
	cfgName := sha(config) + ".json"
	files[cfgName] = config
	var paths []string
	for i, l := range layers {
		id := sha([]byte(fmt.Sprint("layer", i, sha(l.tar))))
		blob := l.tar
		if compress != nil {
			blob = compress(t, blob)
		}
		files[id+"/VERSION"] = []byte("1.0")
		files[id+"/json"] = []byte(`{"id":"` + id + `"}`)
		files[id+"/layer.tar"] = blob
		paths = append(paths, id+"/layer.tar")
	}
	man, _ := json.Marshal([]manifestEntry{{Config: cfgName, RepoTags: []string{"synth:1"}, Layers: paths}})
	files["manifest.json"] = man
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	if manifestFirst {
		sort.SliceStable(names, func(i, j int) bool { return names[i] == "manifest.json" })
	}
	tw := tar.NewWriter(w)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(files[n]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeArchive writes a docker save tarball file and returns its path.
func writeArchive(t testing.TB, layers []layerSpec, compress func(testing.TB, []byte) []byte) string {
	t.Helper()
	var b bytes.Buffer
	dockerSave(t, &b, layers, compress, false)
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// v1ImageOf builds a go-containerregistry image of the layers.
func v1ImageOf(t testing.TB, layers []layerSpec) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		data := l.tar
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		})
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   layer,
			History: v1.History{CreatedBy: l.createdBy},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// writeLayout writes an OCI image layout of img and returns its folder.
func writeLayout(t testing.TB, img v1.Image) string {
	t.Helper()
	d := t.TempDir()
	p, err := layout.Write(d, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return d
}

// bytesStream is a streamImage over a docker save stream in memory.
func bytesStream(data []byte) *streamImage {
	return &streamImage{ref: "stream", open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}}
}

// walkAll walks img and returns one line per file reported, with its
// resolved layer, presence and content, sorted.
func walkAll(t testing.TB, img Image, opts WalkOptions) ([]string, *Index) {
	t.Helper()
	var (
		mu    sync.Mutex
		files []*File
		body  = map[*File]string{}
	)
	x, err := Walk(context.Background(), img, opts, func(f *File, r io.Reader) error {
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		c := *f
		files = append(files, &c)
		body[&c] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%s): %v", img.Name(), err)
	}
	var out []string
	for _, f := range files {
		kind := ""
		switch {
		case f.Opaque:
			kind = " opaque"
		case f.Whiteout:
			kind = " whiteout"
		case f.Link != "":
			kind = " link=" + f.Link
		}
		out = append(out, fmt.Sprintf("%d %s%s present=%v %q", x.LayerOf(f), f, kind, x.PresentFile(f), trim(body[f])))
	}
	sort.Strings(out)
	return out, x
}

// trim keeps bodies of archives out of the listing.
func trim(s string) string {
	if len(s) > 20 {
		return fmt.Sprintf("<%d bytes>", len(s))
	}
	return s
}
