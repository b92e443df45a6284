package image

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
)

// archiveKind tells from its name which archive a file is, "" for none.
func archiveKind(p string) string {
	p = strings.ToLower(p)
	switch {
	case strings.HasSuffix(p, ".gz"), strings.HasSuffix(p, ".tgz"):
		return "gzip"
	case strings.HasSuffix(p, ".tar"):
		return "tar"
	}
	switch path.Ext(p) {
	case ".zip", ".jar", ".whl", ".war", ".ear":
		return "zip"
	}
	return ""
}

// file passes a regular file to fn and, if it is an archive Walk descends
// into, then each file in it. r is the file's content.
func (w *walker) file(ctx context.Context, f *File, r io.Reader) error {
	kind := archiveKind(f.Path)
	if kind == "" || len(f.Inner) >= w.opts.MaxDepth || f.Size < 0 || f.Size > w.opts.MaxArchive {
		return w.call(f, r)
	}
	// Held in memory, within MaxArchive: fn and the descent both read it.
	data := make([]byte, f.Size)
	if _, err := io.ReadFull(r, data); err != nil {
		return err
	}
	if err := w.call(f, bytes.NewReader(data)); err != nil {
		return err
	}
	if err := w.descend(ctx, f, kind, data); err != nil {
		var fe *fnError
		if errors.As(err, &fe) || ctx.Err() != nil {
			return err
		}
		w.index.note(f, err)
	}
	return nil
}

// descend calls fn for each file of the archive f, whose content is data.
func (w *walker) descend(ctx context.Context, f *File, kind string, data []byte) error {
	in := File{
		Layer: f.Layer,
		Blob:  f.Blob,
		Inner: append(append([]string(nil), f.Inner...), f.Path),
	}
	switch kind {
	case "zip":
		return w.zip(ctx, in, data)
	case "tar":
		return w.tar(ctx, in, bytes.NewReader(data))
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("reading gzip: %w", err)
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 4096)
	if head, _ := br.Peek(262); len(head) == 262 && string(head[257:262]) == "ustar" {
		return w.tar(ctx, in, br)
	}
	// A single compressed file: it is named as the archive without ".gz".
	base := path.Base(f.Path)
	in.Path = strings.TrimSuffix(strings.TrimSuffix(base, ".gz"), ".GZ")
	in.Size = -1
	in.Mode = f.Mode
	return w.call(&in, br)
}

// tar calls fn for each regular file of a nested tar.
func (w *walker) tar(ctx context.Context, in File, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse {
			continue
		}
		f := in
		f.Path, f.Size, f.Mode = cleanPath(hdr.Name), hdr.Size, hdr.FileInfo().Mode()
		if f.Path == "" {
			continue
		}
		if err := w.file(ctx, &f, tr); err != nil {
			return err
		}
	}
}

// zip calls fn for each file of a nested zip.
func (w *walker) zip(ctx context.Context, in File, data []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("reading zip: %w", err)
	}
	for _, zf := range zr.File {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if zf.Mode().IsDir() || strings.HasSuffix(zf.Name, "/") {
			continue
		}
		f := in
		f.Path, f.Mode, f.Size = cleanPath(zf.Name), zf.Mode(), -1
		if zf.UncompressedSize64 <= math.MaxInt64 {
			f.Size = int64(zf.UncompressedSize64)
		}
		if f.Path == "" {
			continue
		}
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("reading zip member %s: %w", f.Path, err)
		}
		err = w.file(ctx, &f, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
