package image

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// zeros reads as endless zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// countWriter counts what is written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// writeBigLayer writes a layer tar with a file of size zero bytes and a
// small file after it.
func writeBigLayer(w io.Writer, size int64) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "big/zeros", Mode: 0o644, Size: size}); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, zeros{}, size); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "big/tail", Mode: 0o644, Size: 3}); err != nil {
		return err
	}
	io.WriteString(tw, "end")
	return tw.Close()
}

// lazyStream returns a docker save stream, generated while it is read, of
// an image with one layer holding size zero bytes.
func lazyStream(t *testing.T, size int64) *streamImage {
	var n countWriter
	if err := writeBigLayer(&n, size); err != nil {
		t.Fatal(err)
	}
	cfg := v1.ConfigFile{RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}}}}
	config, _ := json.Marshal(cfg)
	man, _ := json.Marshal([]manifestEntry{{Config: "c.json", Layers: []string{"l0/layer.tar"}}})
	return &streamImage{ref: "lazy", open: func(context.Context) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := tw.WriteHeader(&tar.Header{Name: "l0/layer.tar", Mode: 0o644, Size: int64(n)})
			if err == nil {
				err = writeBigLayer(tw, size)
			}
			for _, f := range []struct {
				name string
				data []byte
			}{{"c.json", config}, {"manifest.json", man}} {
				if err == nil {
					err = tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data))})
				}
				if err == nil {
					_, err = tw.Write(f.data)
				}
			}
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	}}
}

// TestHugeFileStreams walks a 200 MiB file from a sequential stream and
// checks the heap stays small: nothing is buffered whole.
func TestHugeFileStreams(t *testing.T) {
	const size = 200 << 20
	img := lazyStream(t, size)

	runtime.GC()
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	var got = map[string]int64{}
	x, err := Walk(context.Background(), img, WalkOptions{}, func(f *File, r io.Reader) error {
		n, err := io.Copy(io.Discard, r)
		got[f.Path] = n
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got["big/zeros"] != size || got["big/tail"] != 3 {
		t.Errorf("got %v, want big/zeros of %d bytes and big/tail of 3", got, size)
	}
	if !x.PresentFile(&File{Layer: -1, Blob: "l0/layer.tar", Path: "big/zeros"}) {
		t.Error("big/zeros not present")
	}
	const limit = 48 << 20
	t.Logf("peak heap in use: %d MiB", peak>>20)
	if peak > limit {
		t.Errorf("peak heap in use %d MiB, want at most %d MiB", peak>>20, limit>>20)
	}
}
