package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// WalkOptions tunes Walk; the zero value gives the defaults.
type WalkOptions struct {
	// Workers bounds how many layers are walked at once (default
	// GOMAXPROCS). A sequential source (the Docker Engine's export) is
	// walked one layer at a time whatever it says.
	Workers int
	// MaxDepth bounds how deep Walk descends into archives found in layers
	// (default 2: an archive in a layer, and an archive in that archive); a
	// negative value turns descent off.
	MaxDepth int
	// MaxArchive is the largest nested archive Walk descends into (default
	// 64 MiB). Such an archive is held in memory while it is walked (a zip
	// needs random access), so memory is bounded by about
	// Workers × MaxDepth × MaxArchive.
	MaxArchive int64
}

// Defaults of WalkOptions.
const (
	DefaultMaxDepth   = 2
	DefaultMaxArchive = 64 << 20
)

func (o WalkOptions) withDefaults() WalkOptions {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case o.MaxDepth == 0:
		o.MaxDepth = DefaultMaxDepth
	case o.MaxDepth < 0:
		o.MaxDepth = 0
	}
	if o.MaxArchive <= 0 {
		o.MaxArchive = DefaultMaxArchive
	}
	return o
}

// blobOpener is a source whose layer blobs can be opened independently, in
// any order: walked in parallel.
type blobOpener interface {
	// openBlob opens the blob of l as stored (maybe compressed).
	openBlob(ctx context.Context, l LayerInfo) (io.ReadCloser, error)
}

// streamer is a sequential source: one stream holds every layer and the
// metadata, in an order of its own.
type streamer interface {
	walkStream(ctx context.Context, w *walker) error
}

// Walk streams every layer of img once, calling fn for each regular file,
// hard link and whiteout with a reader of its content, and returns the Index
// of the image. fn may read all, part or none of r, which is valid only
// until fn returns. fn is called concurrently for different layers, and
// sequentially within a layer. Walk descends into gzip (.gz, .tgz), tar and
// zip (.zip, .jar, .whl, .war, .ear) files: fn is called first for the
// archive itself and then for each file in it (with File.Inner set);
// corrupt nested archives are skipped and listed by Index.Notes.
//
// Symbolic links, directories and devices are not passed to fn (they have
// no content) but are recorded in the Index. A hard link is passed with
// File.Link set and no content: its content is that of its target.
//
// An error from fn stops the walk and is returned as is; a layer that cannot
// be read is returned as a *LayerError.
func Walk(ctx context.Context, img Image, opts WalkOptions, fn func(f *File, r io.Reader) error) (*Index, error) {
	w := &walker{opts: opts.withDefaults(), fn: fn, index: newIndex()}
	if s, ok := img.(streamer); ok {
		return w.index, s.walkStream(ctx, w)
	}
	bo, ok := img.(blobOpener)
	if !ok {
		return nil, fmt.Errorf("walking %s: source %T cannot be walked", img.Name(), img)
	}
	layers, err := img.Layers(ctx)
	if err != nil {
		return nil, err
	}
	w.index.setLayers(layers)
	return w.index, w.parallel(ctx, bo, layers)
}

// parallel walks each distinct blob of layers once, as the last layer that
// uses it, with at most opts.Workers at a time.
func (w *walker) parallel(ctx context.Context, bo blobOpener, layers []LayerInfo) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var jobs []LayerInfo
	for i, l := range layers {
		if w.index.last[l.Blob] == i {
			jobs = append(jobs, l)
		}
	}
	ch := make(chan LayerInfo)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
	for range min(w.opts.Workers, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range ch {
				if err := w.openAndWalk(ctx, bo, l); err != nil {
					fail(err)
				}
			}
		}()
	}
feed:
	for _, l := range jobs {
		select {
		case ch <- l:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func (w *walker) openAndWalk(ctx context.Context, bo blobOpener, l LayerInfo) error {
	rc, err := bo.openBlob(ctx, l)
	if err != nil {
		return &LayerError{Layer: l.Index, Blob: l.Blob, Err: err}
	}
	defer rc.Close()
	return w.walkBlob(ctx, l.Index, l.Blob, rc)
}

// walker holds what one Walk needs.
type walker struct {
	opts  WalkOptions
	fn    func(f *File, r io.Reader) error
	index *Index
}

// fnError carries an error of the caller's fn up through nested archives,
// so it is returned as is rather than taken for a corrupt archive.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// walkBlob walks the layer blob r, as layer (-1 if not known yet).
func (w *walker) walkBlob(ctx context.Context, layer int, blob string, r io.Reader) error {
	err := w.walkLayer(ctx, layer, blob, r, w.index.blob(blob))
	var fe *fnError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return fe.err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return &LayerError{Layer: layer, Blob: blob, Err: err}
}

// call calls fn. A read error fn met is returned as such (the input is
// corrupt); fn's own error is returned as a *fnError.
func (w *walker) call(f *File, r io.Reader) error {
	cr := &contentReader{r: r}
	err := w.fn(f, cr)
	if cr.err != nil {
		return cr.err
	}
	if err != nil {
		return &fnError{err}
	}
	return nil
}

// contentReader remembers the first read error other than io.EOF.
type contentReader struct {
	r   io.Reader
	err error
}

func (c *contentReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
