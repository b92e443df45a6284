package match

import (
	"cmp"
	"slices"
)

// chunkSize bounds the bytes scanned at once, so that a buffer stays in
// cache while each group makes its pass over it.
const chunkSize = 64 << 10

// Stream finds the literals of a Matcher in a stream of bytes written to it
// in pieces of any size. It is not safe for concurrent use: use one Stream
// per goroutine.
type Stream struct {
	m    *Matcher
	fn   func(Hit)
	off  int64
	buf  []byte // the stream's last MaxLen-1 bytes, then room for as many more
	tail int    // len of the kept bytes at the front of buf
	raw  []rawHit
	hits []Hit
}

// NewStream returns a Stream that calls fn for every hit, in order of End
// then ID, before the Write that completes the hit returns.
func (m *Matcher) NewStream(fn func(Hit)) *Stream {
	keep := max(m.maxLen-1, 0)
	return &Stream{m: m, fn: fn, buf: make([]byte, 0, 2*keep)}
}

// Write scans p as the continuation of the bytes written so far. It always
// returns len(p), nil.
func (s *Stream) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		c := p[:min(len(p), chunkSize)]
		s.write(c)
		p = p[len(c):]
	}
	return n, nil
}

func (s *Stream) write(p []byte) {
	m := s.m
	if len(m.groups) == 0 {
		s.off += int64(len(p))
		return
	}
	keep := m.maxLen - 1
	s.raw = s.raw[:0]

	// Occurrences that start in earlier writes and end in p.
	var join []byte
	if s.tail > 0 {
		join = append(s.buf[:s.tail], p[:min(len(p), keep)]...)
		base := s.off - int64(s.tail)
		for _, g := range m.groups {
			lo := max(0, s.tail-(g.maxLen-1))
			hi := min(len(join), s.tail+g.maxLen-1)
			if hi-lo < 2 {
				continue
			}
			from := len(s.raw)
			s.raw = g.scan(m.pats, join[lo:hi], s.tail-lo, s.raw)
			for i := from; i < len(s.raw); i++ {
				s.raw[i].end += lo
			}
		}
		// Make ends relative to p.
		for i := range s.raw {
			s.raw[i].end = int(base + int64(s.raw[i].end) - s.off)
		}
	}
	// Occurrences inside p.
	for _, g := range m.groups {
		s.raw = g.scan(m.pats, p, 0, s.raw)
	}
	s.deliver()

	// Keep the last keep bytes of the stream.
	switch {
	case len(p) >= keep:
		s.buf = append(s.buf[:0], p[len(p)-keep:]...)
	case s.tail == 0:
		s.buf = append(s.buf[:0], p...)
	default: // join holds the old tail and all of p
		s.buf = s.buf[:copy(s.buf[:cap(s.buf)], join[max(0, len(join)-keep):])]
	}
	s.tail = len(s.buf)
	s.off += int64(len(p))
}

func (s *Stream) deliver() {
	if len(s.raw) == 0 {
		return
	}
	s.hits = s.hits[:0]
	for _, r := range s.raw {
		end := s.off + int64(r.end)
		for _, id := range s.m.pats[r.pat].ids {
			s.hits = append(s.hits, Hit{ID: id, End: end})
		}
	}
	slices.SortFunc(s.hits, func(a, b Hit) int {
		if c := cmp.Compare(a.End, b.End); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, h := range s.hits {
		s.fn(h)
	}
}

// Offset returns the number of bytes written since the Stream was made or
// last Reset.
func (s *Stream) Offset() int64 { return s.off }

// Reset makes the Stream ready for a new stream: offset 0, no bytes kept.
func (s *Stream) Reset() {
	s.off = 0
	s.tail = 0
	s.buf = s.buf[:0]
}
