package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// decompress returns the uncompressed content of a layer blob, telling
// gzip, zstd and plain tar apart by their magic bytes: media types lie
// (Docker's own archives call gzip layers plain and the reverse).
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(len(zstdMagic)) // a short blob is read as a (bad) tar
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		// One decoder goroutine: layers are already decoded in parallel.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, fmt.Errorf("reading zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// maxPadding bounds what is read after the end of a layer's tar.
const maxPadding = 1 << 20

// walkLayer reads one layer blob, records its entries in ents and calls fn.
func (w *walker) walkLayer(ctx context.Context, layer int, blob string, r io.Reader, ents *entries) error {
	zr, done, err := decompress(r)
	if err != nil {
		return err
	}
	defer done()
	tr := tar.NewReader(zr)
	for n := 0; ; n++ {
		if n%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar entry %d: %w", n, err)
		}
		p := cleanPath(hdr.Name)
		if p == "" {
			continue
		}
		f := File{Layer: layer, Blob: blob, Path: p, Size: hdr.Size, Mode: hdr.FileInfo().Mode()}
		if target, opaque, ok := whiteoutTarget(p); ok {
			if target == "" && !opaque {
				continue
			}
			if opaque {
				ents.opaque[target] = true
			} else {
				ents.add(target, kindWhiteout)
			}
			f.Path, f.Size, f.Whiteout, f.Opaque = target, 0, true, opaque
			if err := w.call(&f, emptyReader); err != nil {
				return err
			}
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			ents.add(p, kindDir)
		case tar.TypeReg, tar.TypeGNUSparse:
			ents.add(p, kindFile)
			if err := w.file(ctx, &f, tr); err != nil {
				return fmt.Errorf("reading %s: %w", p, err)
			}
		case tar.TypeLink:
			ents.add(p, kindFile)
			f.Link, f.Size = cleanPath(hdr.Linkname), 0
			if err := w.call(&f, emptyReader); err != nil {
				return err
			}
		default: // symlinks, devices, FIFOs: a path, no content
			ents.add(p, kindFile)
		}
	}
	// What follows the end of the tar is padding (a record is 10 KiB);
	// reading it checks the gzip trailer, so a layer truncated there is not
	// taken for whole. More than maxPadding is ignored unread.
	if _, err := io.CopyN(io.Discard, zr, maxPadding); err != nil && err != io.EOF {
		return fmt.Errorf("reading the layer to its end: %w", err)
	}
	return nil
}
