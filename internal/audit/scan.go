package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// scanChunk is how much is read at a time when scanning a file backwards.
const scanChunk = 64 << 10

// readFullAt reads exactly len(p) bytes at off.
func readFullAt(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// backNewline returns the offset of the k-th '\n' before end, counting
// backwards from end, or -1 if there are fewer than k.
func backNewline(r io.ReaderAt, end int64, k int) (int64, error) {
	buf := make([]byte, min(end, scanChunk))
	for end > 0 {
		n := min(end, int64(len(buf)))
		chunk := buf[:n]
		if err := readFullAt(r, chunk, end-n); err != nil {
			return 0, err
		}
		for {
			i := bytes.LastIndexByte(chunk, '\n')
			if i < 0 {
				break
			}
			if k--; k == 0 {
				return end - n + int64(i), nil
			}
			chunk = chunk[:i]
		}
		end -= n
	}
	return -1, nil
}

// completeEnd returns the end of the last complete line among the first
// size bytes of r: size itself if they end in '\n'.
func completeEnd(r io.ReaderAt, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if err := readFullAt(r, last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	p, err := backNewline(r, size, 1)
	return p + 1, err
}

// lastEntry returns the seq and hash of the line that ends at end (just
// past its '\n'), or 0 and the genesis hash if end is 0.
func lastEntry(r io.ReaderAt, end int64) (uint64, [sha256.Size]byte, error) {
	if end == 0 {
		return 0, [sha256.Size]byte{}, nil
	}
	p, err := backNewline(r, end-1, 1)
	if err != nil {
		return 0, [sha256.Size]byte{}, fmt.Errorf("reading last line: %w", err)
	}
	line := make([]byte, end-1-(p+1))
	if err := readFullAt(r, line, p+1); err != nil {
		return 0, [sha256.Size]byte{}, fmt.Errorf("reading last line: %w", err)
	}
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return 0, [sha256.Size]byte{}, fmt.Errorf("last line is not an audit entry: %w", err)
	}
	if e.Seq == 0 {
		return 0, [sha256.Size]byte{}, errors.New("last line is not an audit entry: it has no seq")
	}
	return e.Seq, sha256.Sum256(line), nil
}
