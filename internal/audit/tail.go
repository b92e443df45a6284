package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// FollowInterval is how often Follow looks for new lines.
const FollowInterval = 100 * time.Millisecond

// Tail returns the last n complete lines of r, oldest first, without their
// newlines. A partial line at the end (a write in progress, or a crash) is
// not a line yet and is left out. It reads backwards from the end, so its
// cost depends on n, not on the size of the file.
func Tail(r io.ReadSeeker, n int) ([][]byte, error) {
	size, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("tailing audit log: %w", err)
	}
	ra, ok := r.(io.ReaderAt)
	if !ok {
		ra = seekReaderAt{r}
	}
	end, err := completeEnd(ra, size)
	if err != nil {
		return nil, fmt.Errorf("tailing audit log: %w", err)
	}
	if end == 0 || n <= 0 {
		return nil, nil
	}
	p, err := backNewline(ra, end, n+1)
	if err != nil {
		return nil, fmt.Errorf("tailing audit log: %w", err)
	}
	data := make([]byte, end-(p+1))
	if err := readFullAt(ra, data, p+1); err != nil {
		return nil, fmt.Errorf("tailing audit log: %w", err)
	}
	return bytes.Split(data[:len(data)-1], []byte{'\n'}), nil
}

// seekReaderAt reads at an offset by seeking first.
type seekReaderAt struct{ rs io.ReadSeeker }

func (s seekReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if _, err := s.rs.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	return io.ReadFull(s.rs, p)
}

// Follow calls fn with each complete line appended to the file at path,
// starting with the line that contains byte offset from (so from may be a
// file size taken before Tail, even mid-line), and polls for more every
// FollowInterval until ctx is done, when it returns ctx.Err(). It stops
// with fn's error if fn fails. The line passed to fn, without its newline,
// is valid only until fn returns. If the file is replaced (rotated),
// Follow reads what is left of the old one and goes on with the new one
// from its start; if it shrinks below lines already delivered, Follow
// fails.
func Follow(ctx context.Context, path string, from int64, fn func(line []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("following audit log: %w", err)
	}
	defer func() { f.Close() }()
	if from < 0 {
		return fmt.Errorf("following audit log %s: negative offset %d", path, from)
	}
	if from > 0 {
		p, err := backNewline(f, from, 1)
		if err != nil {
			return fmt.Errorf("following audit log %s: %w", path, err)
		}
		from = p + 1
	}

	fl := follower{path: path, f: f, off: from, buf: make([]byte, scanChunk), fn: fn}
	tick := time.NewTicker(FollowInterval)
	defer tick.Stop()
	for {
		if err := fl.drain(); err != nil {
			return err
		}
		st, err := fl.f.Stat()
		if err != nil {
			return fmt.Errorf("following audit log %s: %w", path, err)
		}
		switch size := st.Size(); {
		case size < fl.off:
			return fmt.Errorf("following audit log %s: file shrank to %d bytes, below the %d already read", path, size, fl.off)
		case size < fl.off+int64(len(fl.carry)):
			fl.carry = fl.carry[:0] // a partial line was dropped by recovery
		}
		if cur, err := os.Stat(path); err == nil && !os.SameFile(st, cur) {
			if err := fl.drain(); err != nil {
				return err
			}
			nf, err := os.Open(path)
			if err != nil {
				return fmt.Errorf("following audit log %s: %w", path, err)
			}
			fl.f.Close()
			f = nf
			fl.f, fl.off, fl.carry = nf, 0, fl.carry[:0]
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// follower hands the complete lines of f past off to fn.
type follower struct {
	path  string
	f     *os.File
	off   int64  // start of the first line not yet delivered
	carry []byte // bytes read past off that do not yet end a line
	buf   []byte
	fn    func(line []byte) error
}

// drain delivers every complete line now in the file. It returns fn's
// error as it is.
func (fl *follower) drain() error {
	for {
		n, err := fl.f.ReadAt(fl.buf, fl.off+int64(len(fl.carry)))
		data := fl.buf[:n]
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				fl.carry = append(fl.carry, data...)
				break
			}
			line := data[:i]
			if len(fl.carry) > 0 {
				fl.carry = append(fl.carry, line...)
				line = fl.carry
			}
			if err := fl.fn(line); err != nil {
				return err
			}
			fl.off += int64(len(line)) + 1
			fl.carry = fl.carry[:0]
			data = data[i+1:]
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("following audit log %s: %w", fl.path, err)
		}
	}
}
