package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"

	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// synthImage is the image most tests walk: whiteouts, an opaque whiteout, a
// file deleted then added again, a parent directory deleted, links, long
// names, and archives (good, nested, too deep, corrupt) in a layer.
type synthImage struct {
	layers   []layerSpec
	want     []string // walkAll lines
	wantNote []string // paths of the archives skipped as corrupt
}

func newSynth(t testing.TB) synthImage {
	long := "deep/" + strings.Repeat("d", 150) + ".txt"
	more := zipOf(t, file("m.txt", "not reached: depth 3"))
	nested := zipOf(t, file("n.txt", "n"), file("more.zip", string(more)))
	jar := zipOf(t, file("META-INF/x.properties", "p=1"), file("lib/nested.jar", string(nested)))
	deep := zipOf(t, file("z.txt", "zz"))
	bundle := gzipOf(t, tarOf(t, file("inner/cred.txt", "cred"), file("inner/deep.zip", string(deep))))
	notes := gzipOf(t, []byte("hello"))
	badZip := "PK\x03\x04 this is no zip at all"
	badGz := "\x1f\x8b\x08 this is no gzip"
	l0 := tarOf(t,
		dir("etc/"), file("etc/secret", "s0"), file("etc/keep", "k0"),
		symlink("etc/lnk", "keep"), hardlink("etc/hard", "etc/keep"),
		dir("app/"), file("app/a", "a"), file("./app/b", "b"),
		file("/data/x", "x"), file(long, "long"), file("ünïcode.txt", "u"),
		file("opt/bundle.tar.gz", string(bundle)), file("opt/app.jar", string(jar)),
		file("opt/notes.txt.gz", string(notes)),
		file("opt/bad.zip", badZip), file("opt/bad.tar.gz", badGz),
	)
	l1 := tarOf(t, whiteout("etc", "secret"), file("app/.wh..wh..opq", ""), file("app/c", "c"))
	l2 := tarOf(t, file("etc/secret", "s2"), whiteout("", "data"))
	l3 := tarOf(t, file("etc/keep", "k3"))
	q := func(s string) string { return fmt.Sprintf("%q", trim(s)) }
	return synthImage{
		layers: []layerSpec{{l0, "ADD rootfs"}, {l1, "RUN rm"}, {l2, "RUN add"}, {l3, "RUN keep"}},
		want: []string{
			`0 app/a present=false "a"`,
			`0 app/b present=false "b"`,
			`0 data/x present=false "x"`,
			`0 ` + long + ` present=true "long"`,
			`0 etc/hard link=etc/keep present=true ""`,
			`0 etc/keep present=false "k0"`,
			`0 etc/secret present=false "s0"`,
			`0 opt/app.jar present=true ` + q(string(jar)),
			`0 opt/app.jar!META-INF/x.properties present=true "p=1"`,
			`0 opt/app.jar!lib/nested.jar present=true ` + q(string(nested)),
			`0 opt/app.jar!lib/nested.jar!more.zip present=true ` + q(string(more)),
			`0 opt/app.jar!lib/nested.jar!n.txt present=true "n"`,
			`0 opt/bad.tar.gz present=true ` + q(badGz),
			`0 opt/bad.zip present=true ` + q(badZip),
			`0 opt/bundle.tar.gz present=true ` + q(string(bundle)),
			`0 opt/bundle.tar.gz!inner/cred.txt present=true "cred"`,
			`0 opt/bundle.tar.gz!inner/deep.zip present=true ` + q(string(deep)),
			`0 opt/bundle.tar.gz!inner/deep.zip!z.txt present=true "zz"`,
			`0 opt/notes.txt.gz present=true ` + q(string(notes)),
			`0 opt/notes.txt.gz!notes.txt present=true "hello"`,
			`0 ünïcode.txt present=true "u"`,
			`1 app opaque present=false ""`,
			`1 app/c present=true "c"`,
			`1 etc/secret whiteout present=false ""`,
			`2 data whiteout present=false ""`,
			`2 etc/secret present=true "s2"`,
			`3 etc/keep present=true "k3"`,
		},
		wantNote: []string{"opt/bad.tar.gz", "opt/bad.zip"},
	}
}

// startRegistry serves an in-memory registry on 127.0.0.1 and returns its
// host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	s.Listener.Close()
	s.Listener = l
	s.Start()
	t.Cleanup(s.Close)
	return l.Addr().String()
}

func TestWalkSources(t *testing.T) {
	s := newSynth(t)
	var saveOld, saveNew, saveGz bytes.Buffer
	dockerSave(t, &saveOld, s.layers, nil, false)
	dockerSave(t, &saveNew, s.layers, nil, true)
	dockerSave(t, &saveGz, s.layers, gzipOf, false)
	host := startRegistry(t)
	ref, err := name.ParseReference(host + "/synth:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, v1ImageOf(t, s.layers)); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	sources := []struct {
		name string
		open func() (Image, error)
	}{
		{"docker-archive", func() (Image, error) { return Open(ctx, "docker-archive:"+writeArchive(t, s.layers, nil)) }},
		{"docker-archive gzip", func() (Image, error) { return Open(ctx, "docker-archive:"+writeArchive(t, s.layers, gzipOf)) }},
		{"docker-archive zstd", func() (Image, error) { return Open(ctx, "docker-archive:"+writeArchive(t, s.layers, zstdOf)) }},
		{"stream, layers first", func() (Image, error) { return bytesStream(saveOld.Bytes()), nil }},
		{"stream, manifest first", func() (Image, error) { return bytesStream(saveNew.Bytes()), nil }},
		{"stream gzip", func() (Image, error) { return bytesStream(saveGz.Bytes()), nil }},
		{"oci", func() (Image, error) { return Open(ctx, "oci:"+writeLayout(t, v1ImageOf(t, s.layers))) }},
		{"registry", func() (Image, error) { return Open(ctx, "registry:"+host+"/synth:1") }},
	}
	for _, src := range sources {
		for _, workers := range []int{1, 4} {
			t.Run(fmt.Sprintf("%s/workers=%d", src.name, workers), func(t *testing.T) {
				img, err := src.open()
				if err != nil {
					t.Fatal(err)
				}
				got, x := walkAll(t, img, WalkOptions{Workers: workers})
				if g, w := strings.Join(got, "\n"), strings.Join(s.want, "\n"); g != w {
					t.Errorf("got files\n%s\nwant\n%s", g, w)
				}
				var notes []string
				for _, n := range x.Notes() {
					notes = append(notes, n.File.String())
				}
				if g, w := fmt.Sprint(sorted(notes)), fmt.Sprint(s.wantNote); g != w {
					t.Errorf("got notes %s, want %s", g, w)
				}
				checkMeta(t, img, len(s.layers))
			})
		}
	}
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// checkMeta checks the config and the layers' pairing with the history.
func checkMeta(t *testing.T, img Image, n int) {
	t.Helper()
	ctx := context.Background()
	layers, err := img.Layers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD rootfs", "RUN rm", "RUN add", "RUN keep"}
	if len(layers) != n {
		t.Fatalf("got %d layers, want %d", len(layers), n)
	}
	for i, l := range layers {
		if l.Index != i || l.CreatedBy != want[i] || l.DiffID.Hex == "" || l.Blob == "" || l.Size <= 0 {
			t.Errorf("layer %d: got %+v, want created_by %q and a diff ID, blob and size", i, l, want[i])
		}
	}
	if _, err := img.Config(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWalkDepth(t *testing.T) {
	s := newSynth(t)
	img, err := Open(context.Background(), "docker-archive:"+writeArchive(t, s.layers, nil))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := walkAll(t, img, WalkOptions{MaxDepth: -1})
	for _, l := range got {
		if strings.Contains(l, "!") {
			t.Errorf("MaxDepth -1 descended: %s", l)
		}
	}
	got, _ = walkAll(t, img, WalkOptions{MaxArchive: 100})
	for _, l := range got {
		if strings.Contains(l, "app.jar!") {
			t.Errorf("MaxArchive 100 descended into a larger archive: %s", l)
		}
	}
}

func TestWalkFnError(t *testing.T) {
	s := newSynth(t)
	img, err := Open(context.Background(), "docker-archive:"+writeArchive(t, s.layers, nil))
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	for _, at := range []string{"app/c", "z.txt"} {
		_, err = Walk(context.Background(), img, WalkOptions{}, func(f *File, r io.Reader) error {
			if f.Path == at {
				return stop
			}
			return nil
		})
		if err != stop {
			t.Errorf("fn error at %s: got %v, want it as is", at, err)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, ref := range []string{"ftp://host/x", "dir:./x", "tar:/x.tar"} {
		if _, err := Open(ctx, ref); !errors.Is(err, ErrUnknownScheme) || !strings.Contains(err.Error(), "docker-archive:PATH") {
			t.Errorf("Open(%q): got %v, want ErrUnknownScheme listing the schemes", ref, err)
		}
	}
	missing := filepath.Join(t.TempDir(), "nope.tar")
	if _, err := Open(ctx, "docker-archive:"+missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing archive: got %v", err)
	}
	notTar := filepath.Join(t.TempDir(), "x.tar")
	os.WriteFile(notTar, []byte(`{"not":"a tar"}`), 0o644)
	if _, err := Open(ctx, "docker-archive:"+notTar); err == nil {
		t.Error("a file that is no archive opened")
	}
	if _, err := Open(ctx, "oci:"+t.TempDir()); err == nil {
		t.Error("an empty folder opened as an OCI layout")
	}
	host := startRegistry(t)
	if _, err := Open(ctx, "registry:"+host+"/nope:1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing registry image: got %v, want ErrNotFound", err)
	}
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
	if _, err := Open(ctx, "myapp:1"); err == nil || !strings.Contains(err.Error(), "unix://") {
		t.Errorf("tcp DOCKER_HOST: got %v, want an error saying only unix sockets", err)
	}
}

// TestCorruptLayers checks that a truncated or corrupt layer gives a clear
// error naming the layer, from every kind of source.
func TestCorruptLayers(t *testing.T) {
	good := tarOf(t, file("a", "a"))
	big := tarOf(t, file("etc/big", strings.Repeat("x", 10000)), file("b", "b"))
	cases := []struct {
		name string
		blob []byte
	}{
		{"truncated tar", big[:3000]},
		{"truncated gzip", gzipOf(t, big)[:200]},
		{"truncated zstd", zstdOf(t, big)[:20]},
		{"garbage", bytes.Repeat([]byte("garbage!"), 100)},
		{"gzip magic, garbage", append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{7}, 600)...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			layers := []layerSpec{{good, "ok"}, {c.blob, "bad"}}
			raw := func(_ testing.TB, b []byte) []byte { return b }
			var stream bytes.Buffer
			dockerSave(t, &stream, layers, raw, false)
			imgs := []Image{bytesStream(stream.Bytes())}
			img, err := Open(context.Background(), "docker-archive:"+writeArchive(t, layers, raw))
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, img)
			for _, img := range imgs {
				_, err := Walk(context.Background(), img, WalkOptions{}, func(f *File, r io.Reader) error {
					_, err := io.Copy(io.Discard, r)
					return err
				})
				var le *LayerError
				if !errors.As(err, &le) || !strings.Contains(le.Blob, "layer.tar") {
					t.Fatalf("%T: got %v, want a *LayerError naming the layer", img, err)
				}
				if _, ok := img.(*archiveImage); ok && le.Layer != 1 {
					t.Errorf("got layer %d, want 1: %v", le.Layer, err)
				}
				t.Log(err)
			}
		})
	}
}

// TestRegistrySchemeRule documents the registry rule: plain HTTP is
// only for loopback hosts.
func TestRegistrySchemeRule(t *testing.T) {
	for host, want := range map[string]string{"127.0.0.1:5000": "http", "localhost:5000": "http", "registry.example.com": "https"} {
		r, err := name.ParseReference(host + "/app:1")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Context().Registry.Scheme(); got != want {
			t.Errorf("%s: got %s, want %s", host, got, want)
		}
	}

}
