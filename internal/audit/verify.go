package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Summary describes a verified log.
type Summary struct {
	Lines     int    // complete lines checked
	FirstSeq  uint64 // seq of the first line: 1, or more if the file continues a rotated one
	FirstPrev string // Prev of the first line: GenesisHash, or the Head of the file before it
	LastSeq   uint64 // seq of the last line checked
	Head      string // hex SHA-256 of the last line; GenesisHash if there are none
}

// ChainError says where and how a log's chain is broken.
type ChainError struct {
	Line   int    // 1-based line number in the file
	Seq    uint64 // seq of that line, 0 if it cannot be read
	Reason string
	Err    error // ErrTruncated, a JSON syntax error, or nil
}

// Error says where the chain breaks and why.
func (e *ChainError) Error() string {
	if e.Seq == 0 {
		return fmt.Sprintf("audit log broken at line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("audit log broken at line %d (seq %d): %s", e.Line, e.Seq, e.Reason)
}

// Unwrap returns the underlying cause, such as ErrTruncated.
func (e *ChainError) Unwrap() error { return e.Err }

// Verify reads a log and checks that every line is an entry, that seqs are
// consecutive and that each line's Prev is the hash of the line before it
// (GenesisHash for a first line with seq 1; a file starting at a later seq
// is taken as the continuation of a rotated one). At the first break it
// returns a *ChainError naming the line that was edited, inserted or moved,
// or the line after lines were removed, along with the Summary of the
// lines before it. Removing lines at the very end or the very start leaves
// a valid chain (the file then looks rotated): compare Head, FirstSeq and
// FirstPrev with values recorded elsewhere to catch that.
func Verify(r io.Reader) (Summary, error) {
	lr := lineReader{br: bufio.NewReaderSize(r, 64<<10)}
	sum := Summary{Head: GenesisHash}
	before := sum // the summary without p1, in case p1 turns out to be the culprit
	var p1 *link  // the last line accepted
	for {
		cur, err := lr.next()
		if err == io.EOF {
			return sum, nil
		}
		if err != nil {
			return sum, err
		}
		switch {
		case p1 == nil && cur.seq == 1 && cur.prev != GenesisHash:
			return sum, &ChainError{Line: cur.line, Seq: cur.seq,
				Reason: "the first line has seq 1 but its prev is not the genesis hash (64 zeros)"}
		case p1 == nil:
			sum.FirstSeq, sum.FirstPrev = cur.seq, cur.prev
		case cur.seq != p1.seq+1 || cur.prev != p1.hash:
			next, _ := lr.next() // a look at the following line tells edits from inserts
			ce := diagnose(p1, cur, next)
			if ce.Line == p1.line {
				return before, ce
			}
			return sum, ce
		}
		before = sum
		sum.Lines++
		sum.LastSeq, sum.Head = cur.seq, cur.hash
		p1 = cur
	}
}

// link is what Verify keeps of a line.
type link struct {
	line int
	seq  uint64
	prev string // as written in the line
	hash string // of the line's bytes
}

// diagnose explains why cur does not follow p1, the last good line. next is
// the line after cur, or nil.
func diagnose(p1, cur, next *link) *ChainError {
	at := func(l *link, format string, args ...any) *ChainError {
		return &ChainError{Line: l.line, Seq: l.seq, Reason: fmt.Sprintf(format, args...)}
	}
	want := p1.seq + 1
	switch {
	case cur.prev == p1.prev && (cur.seq == p1.seq || cur.seq == want):
		return at(p1, "the line was inserted: line %d chains from the line before it", cur.line)
	case next != nil && next.prev == p1.hash && cur.prev == next.hash:
		return at(cur, "lines %d and %d were swapped", cur.line, next.line)
	case next != nil && next.prev == p1.hash:
		return at(cur, "the line was inserted or moved here: line %d chains from line %d", next.line, p1.line)
	case cur.seq == want && next != nil && next.prev == cur.hash && next.seq == cur.seq+1:
		return at(p1, "the line was edited: its hash does not match the prev recorded in line %d", cur.line)
	case cur.seq == want:
		return at(cur, "prev hash does not match line %d; the line was edited, or line %d was, or lines between them were removed",
			p1.line, p1.line)
	case cur.prev == p1.hash:
		return at(cur, "seq %d does not follow seq %d of line %d, yet the line chains from it: its seq was edited",
			cur.seq, p1.seq, p1.line)
	case cur.seq > want && next != nil && next.seq == want:
		return at(cur, "the line is out of order: it has seq %d and the next line has seq %d", cur.seq, want)
	case cur.seq > want:
		return at(cur, "seq %d follows seq %d of line %d: %d line(s) were removed before this line, or it was moved here",
			cur.seq, p1.seq, p1.line, cur.seq-want)
	default:
		return at(cur, "seq %d does not follow seq %d of line %d: the line was inserted or moved here",
			cur.seq, p1.seq, p1.line)
	}
}

// lineReader reads a log line by line, with no limit on line length.
type lineReader struct {
	br   *bufio.Reader
	buf  []byte
	line int
}

// next reads and parses the next line. It returns io.EOF at the end, and a
// *ChainError for a line that is not an entry or has no newline.
func (lr *lineReader) next() (*link, error) {
	lr.buf = lr.buf[:0]
	for {
		frag, err := lr.br.ReadSlice('\n')
		lr.buf = append(lr.buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(lr.buf) == 0 {
			return nil, io.EOF
		}
		lr.line++
		if err == io.EOF {
			return nil, &ChainError{Line: lr.line, Err: ErrTruncated,
				Reason: "the last line has no newline: a write was cut short (opening the log drops it)"}
		}
		if err != nil {
			return nil, fmt.Errorf("reading audit log: %w", err)
		}
		return lr.parse(lr.buf[:len(lr.buf)-1])
	}
}

func (lr *lineReader) parse(line []byte) (*link, error) {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil {
		return nil, &ChainError{Line: lr.line, Err: err,
			Reason: fmt.Sprintf("the line is not an audit entry: %v", err)}
	}
	if e.Seq == 0 {
		return nil, &ChainError{Line: lr.line, Reason: "the line has no seq"}
	}
	if !isHash(e.Prev) {
		return nil, &ChainError{Line: lr.line, Seq: e.Seq, Reason: "prev is not a hex SHA-256"}
	}
	sum := sha256.Sum256(line)
	return &link{line: lr.line, seq: e.Seq, prev: e.Prev, hash: hex.EncodeToString(sum[:])}, nil
}

// isHash reports whether s is a SHA-256 in lower-case hex, as the log
// writes it.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
