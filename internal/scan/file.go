package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/privyhq/privy/internal/scan/detect"
	"github.com/privyhq/privy/internal/scan/image"
	"github.com/privyhq/privy/internal/scan/match"
)

const (
	chunkSize = 256 << 10
	// ruleWindow is how many bytes on each side of a keyword hit a rule's
	// check sees.
	ruleWindow = 512
	// keep is how much of the previous chunk stays in the buffer, so that
	// rule windows and excerpts reach back across chunk boundaries.
	keep = 2*ruleWindow + 256
	// headSize is how much of a file the file rules see.
	headSize = 4 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, keep+chunkSize); return &b }}

// scanFile streams one file through the matcher in chunks, once. Known
// values are matched across chunk boundaries by the matcher's stream;
// keyword hits wait until their right-hand window has been read.
func (s *Scanner) scanFile(f *image.File, r io.Reader) ([]Finding, int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp

	var out []Finding
	seen := map[string]bool{}
	emit := func(fd Finding) {
		key := fd.Kind + "\x00" + fd.Secret + "\x00" + fd.Rule + "\x00" + strconv.Itoa(fd.Line)
		if seen[key] {
			return
		}
		seen[key] = true
		fd.Where = "layer"
		fd.Path = f.Path
		if len(f.Inner) > 0 {
			// Inner names archives outermost first; the file's own path is
			// inside the innermost one.
			fd.Path = f.Inner[0]
			fd.Inner = append(append([]string{}, f.Inner[1:]...), f.Path)
		}
		out = append(out, fd)
	}

	var hits []match.Hit
	st := s.m.NewStream(func(h match.Hit) { hits = append(hits, h) })
	var waiting []match.Hit // keyword hits whose window is not read yet

	var (
		start int64 // stream offset of buf[0]
		fill  int   // bytes of buf in use
		lines int   // newlines before buf[0]
		total int64
		head  []byte
	)
	for {
		n, err := io.ReadFull(r, buf[fill:fill+chunkSize])
		if n > 0 {
			if head == nil && !s.opts.NoFileRules {
				head = append([]byte(nil), buf[fill:fill+min(n, headSize)]...)
			}
			st.Write(buf[fill : fill+n])
			fill += n
			total += int64(n)
		}
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return out, total, fmt.Errorf("reading %s: %w", f.Path, err)
		}
		data, end := buf[:fill], start+int64(fill)
		all := append(waiting, hits...)
		waiting, hits = waiting[:0:0], hits[:0]
		for _, h := range all {
			l := s.lits[h.ID]
			if l.known < 0 && !eof && h.End+ruleWindow > end {
				waiting = append(waiting, h)
				continue
			}
			for _, fd := range s.resolve(h, data, start, lines) {
				emit(fd)
			}
		}
		if eof {
			break
		}
		// Slide: keep the tail for windows and excerpts that reach back.
		drop := fill - keep
		if drop > 0 {
			lines += bytes.Count(buf[:drop], []byte{'\n'})
			copy(buf, buf[drop:fill])
			start += int64(drop)
			fill = keep
		}
	}
	if head != nil {
		for _, id := range detect.CheckFile(f.Path, head) {
			emit(Finding{Kind: "file", Rule: id})
		}
	}
	return out, total, nil
}

// resolve turns one hit into findings: a known value found, or the
// findings of a rule's check on the window around a keyword.
func (s *Scanner) resolve(h match.Hit, data []byte, start int64, lines int) []Finding {
	l := s.lits[h.ID]
	end := int(h.End - start)
	begin := max(end-l.length, 0)
	if l.known >= 0 {
		return []Finding{{
			Kind:     "known",
			Secret:   s.known[l.known].Name,
			Encoding: l.encoding,
			Line:     lines + bytes.Count(data[:begin], []byte{'\n'}) + 1,
			Excerpt:  excerpt(data, begin, min(end, len(data))),
		}}
	}
	ws, we := max(begin-ruleWindow, 0), min(end+ruleWindow, len(data))
	rule := s.rules[l.rule]
	var out []Finding
	for _, m := range rule.Check(data[ws:we]) {
		if !printable(m.Secret) {
			continue // a "password=" in a binary followed by binary bytes
		}
		out = append(out, Finding{
			Kind:    "rule",
			Rule:    m.RuleID,
			Line:    lines + bytes.Count(data[:ws+m.Start], []byte{'\n'}) + 1,
			Excerpt: detect.Redact(m.Secret),
		})
	}
	return out
}

// findings resolves the hits of a buffer scanned whole (config fields).
func (s *Scanner) findings(hits []match.Hit, data []byte, start int64, lines int, _ []Finding) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, h := range hits {
		for _, fd := range s.resolve(h, data, start, lines) {
			key := fd.Kind + "\x00" + fd.Secret + "\x00" + fd.Rule
			if !seen[key] {
				seen[key] = true
				out = append(out, fd)
			}
		}
	}
	return out
}

// excerpt shows a little context around data[b:e] with the match itself
// replaced, so a reader can find the place without seeing the value.
func excerpt(data []byte, b, e int) string {
	const ctx = 16
	pre := data[max(b-ctx, 0):b]
	post := data[e:min(e+ctx, len(data))]
	if i := bytes.LastIndexByte(pre, '\n'); i >= 0 {
		pre = pre[i+1:]
	}
	if i := bytes.IndexByte(post, '\n'); i >= 0 {
		post = post[:i]
	}
	q := func(b []byte) string {
		s := strconv.QuoteToASCII(string(b))
		return s[1 : len(s)-1]
	}
	return q(pre) + "****" + q(post)
}

// printable reports whether a detector's secret is text: secrets that
// detectors look for are, and binary bytes after a keyword are noise.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c > 0x7e {
			return false
		}
	}
	return true
}
