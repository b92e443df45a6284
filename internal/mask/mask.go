// Package mask hides secret values in a build's output before it reaches
// the user's terminal: a Writer replaces every occurrence of a value, and
// of its common encodings, with Mask.
//
// # Promises
//
//   - The output is the input with every maximal run of masked bytes
//     replaced by one Mask, where a byte is masked if it lies in an
//     occurrence of a form of a value. Overlapping or touching occurrences
//     (a value twice in a row, a value inside its own longer encoding)
//     therefore give a single Mask. Other bytes pass through unchanged.
//   - Forms are found wherever the Write boundaries fall.
//   - No form of a value reaches the underlying writer, whatever the sizes
//     of the writes. The exceptions: a Flush in the middle of a form writes
//     out the part before it (the rest is masked); and a value that itself
//     contains Mask could be spelled out by Masks of other values.
//   - Output is held back as little as possible: after a Write, everything
//     is written out except the shortest tail of the input that could still
//     be the beginning of a form, so a line that starts no secret reaches
//     the terminal at once.
//   - No value is ever formatted into an error or a panic.
//
// # Design
//
// Occurrences are found by one match.Stream over the forms; runs of them
// are merged as they arrive (in order of their ends). The hold-back needs,
// after each Write, the earliest position h such that the input from h on
// is a proper prefix of some form. h never moves back (a string that is
// not a prefix does not become one when it grows), so each position is
// ruled out once:
//
//   - h is after the last byte that occurs in no form, such as the newline
//     that ends most writes: usually that settles it at once;
//   - a filter of the forms' first four bytes rejects most other positions;
//   - the rest are tested with a polynomial hash (modulo 2^61−1, random
//     base) of the input from the position, looked up in a set holding the
//     hash of every proper prefix of every form. The hashes of the input
//     are prefix sums, each byte summed once.
//
// A Write therefore costs O(len(p)) plus the matcher's cost, and a hash
// collision can only make the Writer hold back more, never less. Memory,
// mostly the set of prefixes, is about 30 bytes per byte of the forms, and
// the forms are some 20 times as long as the value: kilobytes for a token,
// 2.6 MB for a 4 KiB key file.
package mask

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"sync"

	"github.com/privyhq/privy/internal/scan/match"
)

// Mask is what replaces a run of masked bytes.
const Mask = "****"

// Value lengths: shorter values are ignored, since masking them would garble
// the output; values up to rawOnly bytes are masked in their raw form only,
// since their encodings, 8 to 14 hexadecimal or base64 characters, turn up
// by chance in build output (digests, ids).
const (
	minValue = 4
	rawOnly  = match.MinForm - 1
)

// span is the input bytes [start, end) of a run of masked bytes.
type span struct{ start, end int64 }

// Writer masks secret values in what is written through it. It is safe for
// concurrent use (the builder's stdout and stderr may share one Writer).
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	err error // the first error of w, returned by every later call

	s      *match.Stream // nil when there is nothing to mask
	lens   []int         // length of each form, by Hit.ID
	maxLen int

	// The proper prefixes of the forms: quads holds a bit for the first
	// four bytes of every prefix of four bytes or more (a hash of them),
	// pairs for the first two of every prefix of two or three, firsts
	// every first byte, and prefixes the hash of every proper prefix.
	// inForms holds every byte that occurs in a form.
	quads    *bitset
	pairs    *bitset
	firsts   [256]bool
	inForms  [256]bool
	prefixes map[uint64]struct{}
	base     uint64   // of the hash
	pow      []uint64 // pow[k] = base^k

	n       int64  // bytes written so far
	buf     []byte // the input from bufAt to n
	bufAt   int64
	hold    int64    // the earliest position that may start a form still
	out     int64    // the input before out is written out
	maskEnd int64    // if the last thing written out is a Mask, the end of its run; else -1
	spans   []span   // runs of masked bytes not written out yet, in order, disjoint and not touching
	sums    []uint64 // sums[i] is the hash of the input from sumsAt to sumsAt+i
	sumsAt  int64
	obuf    []byte
}

// New returns a Writer that writes to w with every form of every value
// replaced by Mask. Values shorter than 4 bytes are ignored (masking them
// would garble output); a value of 4–7 bytes is masked in its raw form
// only; longer values in every form of match.Forms. New copies what it
// keeps of values.
func New(w io.Writer, values [][]byte) (*Writer, error) {
	m := &Writer{w: w, maskEnd: -1}
	var lits []match.Literal
	for _, v := range values {
		switch {
		case len(v) < minValue:
		case len(v) <= rawOnly:
			lits = append(lits, match.Literal{Bytes: v, ID: len(lits)})
		default:
			for _, f := range match.Forms(v) {
				lits = append(lits, match.Literal{Bytes: f.Bytes, ID: len(lits)})
			}
		}
	}
	if len(lits) == 0 {
		return m, nil
	}
	mt, err := match.New(lits)
	if err != nil {
		return nil, fmt.Errorf("building the matcher of secret values: %w", err)
	}
	m.s = mt.NewStream(m.hit)
	m.maxLen = mt.MaxLen()
	m.lens = make([]int, len(lits))
	m.base = 256 + rand.Uint64N(hashMod-256)
	m.pow = make([]uint64, m.maxLen+1)
	m.pow[0] = 1
	for k := 1; k <= m.maxLen; k++ {
		m.pow[k] = mulMod(m.pow[k-1], m.base)
	}
	m.quads, m.pairs = new(bitset), new(bitset)
	m.prefixes = make(map[uint64]struct{})
	for i, l := range lits {
		b := l.Bytes
		m.lens[i] = len(b)
		m.firsts[b[0]] = true
		for _, c := range b {
			m.inForms[c] = true
		}
		m.pairs.set(pair(b))
		if len(b) > 4 {
			m.quads.set(quad(b))
		}
		h := uint64(1) // a leading 1 makes prefixes of different lengths differ
		for _, c := range b[:len(b)-1] {
			h = addMod(mulMod(h, m.base), uint64(c))
			m.prefixes[h] = struct{}{}
		}
	}
	return m, nil
}

// Write masks p as the continuation of what was written before and writes
// out all of it but the tail that may still begin a form. It returns
// len(p) on success, and 0 and the error of the underlying writer (then on
// every later call) if that fails.
func (m *Writer) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return 0, m.err
	}
	if m.s == nil {
		if err := m.writeOut(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	m.buf = append(m.buf, p...)
	m.s.Write(p) // calls m.hit
	m.n += int64(len(p))
	m.advance(m.n - int64(len(p)))
	if err := m.emit(m.hold); err != nil {
		return 0, err
	}
	m.compact()
	return len(p), nil
}

// Flush writes out everything held back. Call it at the end of the stream:
// a form that a Flush cuts in two has its first part written out.
func (m *Writer) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if m.s == nil {
		return nil
	}
	if err := m.emit(m.n); err != nil {
		return err
	}
	m.compact()
	return nil
}

// Close is Flush. It does not close the underlying writer.
func (m *Writer) Close() error { return m.Flush() }

// hit records an occurrence of form h.ID. Hits come in order of End, so
// the new run ends at or after every pending one.
func (m *Writer) hit(h match.Hit) {
	start, end := h.End-int64(m.lens[h.ID]), h.End
	if m.maskEnd >= 0 && start <= m.maskEnd {
		// It continues the Mask written last, and covers every pending
		// run, all of which lie between that Mask and end.
		m.maskEnd = max(m.maskEnd, end)
		m.spans = m.spans[:0]
		return
	}
	// Only after a Flush can an occurrence start before out: mask the rest.
	if start = max(start, m.out); start >= end {
		return
	}
	for len(m.spans) > 0 && m.spans[len(m.spans)-1].end >= start {
		start = min(start, m.spans[len(m.spans)-1].start)
		m.spans = m.spans[:len(m.spans)-1]
	}
	m.spans = append(m.spans, span{start, end})
}

// advance moves hold to the earliest position from which the input written
// so far is a proper prefix of a form, or to n if there is none. The bytes
// from prev to n are new.
func (m *Writer) advance(prev int64) {
	lo := max(m.hold, m.n-int64(m.maxLen-1))
	// A prefix of a form holds only bytes that occur in forms, so the hold
	// starts after the last byte that does not, such as the newline that
	// ends most writes. The bytes from hold to prev all occur in forms.
	for i := m.n - 1; i >= max(lo, prev); i-- {
		if !m.inForms[m.buf[i-m.bufAt]] {
			lo = i + 1
			break
		}
	}
	b := m.buf[lo-m.bufAt:]
	i := 0
	for ; i < len(b); i++ {
		switch r := b[i:]; {
		case len(r) >= 4:
			if !m.quads.has(quad(r)) {
				continue
			}
		case len(r) >= 2:
			if !m.pairs.has(pair(r)) {
				continue
			}
		case !m.firsts[r[0]]:
			continue
		}
		if _, ok := m.prefixes[m.hashFrom(lo+int64(i))]; ok {
			break
		}
	}
	m.hold = lo + int64(i)
}

// hashFrom returns the hash, with its leading 1, of the input from p to n.
// It extends sums to n, or starts them again at p if they do not reach p:
// each byte is summed once.
func (m *Writer) hashFrom(p int64) uint64 {
	if len(m.sums) == 0 || m.sumsAt > p || m.sumsAt+int64(len(m.sums))-1 < p {
		m.sums, m.sumsAt = append(m.sums[:0], 0), p
	}
	h := m.sums[len(m.sums)-1]
	for _, c := range m.buf[m.sumsAt+int64(len(m.sums))-1-m.bufAt:] {
		h = addMod(mulMod(h, m.base), uint64(c))
		m.sums = append(m.sums, h)
	}
	k := m.n - p
	h = subMod(h, mulMod(m.sums[p-m.sumsAt], m.pow[k]))
	return addMod(h, m.pow[k])
}

// emit writes out the input before limit that is not masked, and one Mask
// for every run of masked bytes that starts before limit (the whole run:
// an occurrence that may still extend it will continue that Mask).
func (m *Writer) emit(limit int64) error {
	m.out = max(m.out, m.maskEnd)
	o := m.obuf[:0]
	i := 0
	for ; i < len(m.spans) && m.spans[i].start < limit; i++ {
		sp := m.spans[i]
		o = append(o, m.buf[m.out-m.bufAt:sp.start-m.bufAt]...)
		o = append(o, Mask...)
		m.out, m.maskEnd = sp.end, sp.end
	}
	m.spans = m.spans[:copy(m.spans, m.spans[i:])]
	m.obuf = o
	if m.out < limit {
		raw := m.buf[m.out-m.bufAt : limit-m.bufAt]
		m.out, m.maskEnd = limit, -1
		if len(o) == 0 {
			return m.writeOut(raw) // straight from buf, the usual case
		}
		m.obuf = append(o, raw...)
	}
	if len(m.obuf) == 0 {
		return nil
	}
	return m.writeOut(m.obuf)
}

// writeOut writes p to the underlying writer and keeps its error.
func (m *Writer) writeOut(p []byte) error {
	n, err := m.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		m.err = fmt.Errorf("writing masked output: %w", err)
	}
	return m.err
}

// compact drops the input before hold and out once that is at least half
// of buf, so that each byte is moved O(1) times.
func (m *Writer) compact() {
	keep := min(m.hold, m.out)
	if d := keep - m.bufAt; d > 0 && d >= int64(len(m.buf))/2 {
		m.buf = m.buf[:copy(m.buf, m.buf[d:])]
		m.bufAt = keep
	}
	if len(m.sums) == 0 || m.sumsAt >= m.hold {
		return
	}
	if m.hold >= m.sumsAt+int64(len(m.sums)) || m.hold == m.n {
		m.sums = m.sums[:0]
	} else if d := m.hold - m.sumsAt; d >= int64(len(m.sums))/2 {
		m.sums = m.sums[:copy(m.sums, m.sums[d:])]
		m.sumsAt = m.hold
	}
}

// bitset is a set of 16-bit numbers.
type bitset [1 << 16 / 64]uint64

func (s *bitset) set(i uint16)      { s[i/64] |= 1 << (i % 64) }
func (s *bitset) has(i uint16) bool { return s[i/64]&(1<<(i%64)) != 0 }

// pair returns the first two bytes of b as one number.
func pair(b []byte) uint16 { return uint16(b[0])<<8 | uint16(b[1]) }

// quad returns a hash of the first four bytes of b.
func quad(b []byte) uint16 { return uint16(binary.LittleEndian.Uint32(b) * 0x9e3779b1 >> 16) }

// hashMod is the Mersenne prime 2^61−1: a product of two residues reduces
// with shifts and adds.
const hashMod = 1<<61 - 1

func mulMod(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	r := (hi<<3 | lo>>61) + lo&hashMod
	if r >= hashMod {
		r -= hashMod
	}
	return r
}

func addMod(a, b uint64) uint64 {
	r := a + b
	if r >= hashMod {
		r -= hashMod
	}
	return r
}

func subMod(a, b uint64) uint64 {
	if a >= b {
		return a - b
	}
	return a + hashMod - b
}
