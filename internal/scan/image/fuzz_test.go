package image

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// FuzzLayer feeds random bytes to the layer reader as a layer blob: it may
// fail, never panic or hang.
func FuzzLayer(f *testing.F) {
	// Small seeds: the fuzzer minimizes each new input, byte by byte.
	layer := tarOf(f, dir("a/"), file("a/b", "x"), whiteout("a", "c"), file("a/.wh..wh..opq", ""),
		symlink("l", "a/b"), hardlink("h", "a/b"))
	nested := tarOf(f, file("n.zip", string(zipOf(f, file("z", "z")))),
		file("t.tgz", string(gzipOf(f, tarOf(f, file("y", "y"))))))
	for _, seed := range [][]byte{layer, nested} {
		f.Add(seed)
		f.Add(gzipOf(f, seed))
		f.Add(zstdOf(f, seed))
	}
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, blob []byte) {
		// A few bytes of zstd or gzip can stand for gigabytes: reading
		// them all is right, but too slow for fuzzing.
		if zr, done, err := decompress(bytes.NewReader(blob)); err == nil {
			n, _ := io.Copy(io.Discard, io.LimitReader(zr, 16<<20))
			done()
			if n == 16<<20 {
				return // expands to more than 16 MiB: too slow to walk here
			}
		}
		w := &walker{
			opts:  WalkOptions{MaxArchive: 1 << 20}.withDefaults(),
			index: newIndex(),
			fn: func(f *File, r io.Reader) error {
				_, err := io.Copy(io.Discard, io.LimitReader(r, 1<<20))
				return err
			},
		}
		err := w.walkBlob(context.Background(), 0, "fuzz", bytes.NewReader(blob))
		if err != nil {
			if _, ok := err.(*LayerError); !ok {
				t.Fatalf("got %T %v, want a *LayerError", err, err)
			}
		}
	})
}
