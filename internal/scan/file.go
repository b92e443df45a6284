package scan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
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
	// maxPerFile bounds the findings listed for one secret or rule in one
	// file; the rest are counted in the last one's More.
	maxPerFile = 20
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
	listed := map[string]int{} // per secret or rule: index of its last listed finding
	counts := map[string]int{} // per secret or rule: findings listed
	emit := func(fd Finding) {
		what := fd.Kind + "\x00" + fd.Secret + "\x00" + fd.Rule
		key := what + "\x00" + strconv.Itoa(fd.Line) + "\x00" + strconv.FormatInt(fd.off, 10)
		if seen[key] {
			return
		}
		if counts[what] >= maxPerFile {
			out[listed[what]].More++
			return
		}
		seen[key] = true
		counts[what]++
		listed[what] = len(out)
		fd.Where = "layer"
		// Paths come from the image: mask any value in them and escape
		// control characters before a terminal or report sees them.
		fd.Path = s.redact(f.Path)
		if len(f.Inner) > 0 {
			// Inner names archives outermost first; the file's own path is
			// inside the innermost one.
			fd.Path = s.redact(f.Inner[0])
			for _, in := range append(append([]string{}, f.Inner[1:]...), f.Path) {
				fd.Inner = append(fd.Inner, s.redact(in))
			}
		}
		out = append(out, fd)
	}

	var hits []match.Hit
	st := s.m.NewStream(func(h match.Hit) { hits = append(hits, h) })
	var waiting []match.Hit // keyword hits whose window is not read yet
	// checkedTo[r] is where the last window rule r was checked on ends. A
	// rule's check finds every secret in its window, so a later keyword
	// hit of the same rule well inside that window needs no check of its
	// own; dense keywords (a config full of "token") would otherwise have
	// the same bytes checked over and over.
	checkedTo := make([]int64, len(s.rules))

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
			if s.opts.Progress != nil {
				s.opts.Progress(int64(n))
			}
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
			if l.known < 0 {
				if s.bounded[l.rule] && h.End+ruleWindow/2 <= checkedTo[l.rule] {
					continue
				}
				checkedTo[l.rule] = min(h.End+ruleWindow, end)
			}
			for _, fd := range s.resolve(h, data, start, lines, [2]bool{start > 0, !eof}) {
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
//
// cut says whether data starts after the file's start ([0]) and ends
// before its end ([1]): context that may reach past such an edge is left
// out of excerpts, since a value there cannot be seen whole to be masked.
func (s *Scanner) resolve(h match.Hit, data []byte, start int64, lines int, cut [2]bool) []Finding {
	l := s.lits[h.ID]
	end := int(h.End - start)
	begin := max(end-l.length, 0)
	if l.known >= 0 {
		// Count lines from the match's end: its start may lie before the
		// buffer for values longer than what the buffer keeps.
		line := lines + bytes.Count(data[:end], []byte{'\n'}) - l.newlines + 1
		return []Finding{{
			Kind:     "known",
			Secret:   s.known[l.known].Name,
			Encoding: l.encoding,
			Line:     max(line, 1),
			Excerpt:  s.excerpt(data, begin, min(end, len(data)), cut),
		}}
	}
	ws, we := max(begin-ruleWindow, 0), min(end+ruleWindow, len(data))
	rule := s.rules[l.rule]
	var out []Finding
	for _, m := range rule.Check(data[ws:we]) {
		out = append(out, Finding{
			Kind:    "rule",
			Rule:    m.RuleID,
			Line:    lines + bytes.Count(data[:ws+m.Start], []byte{'\n'}) + 1,
			Excerpt: detect.Redact(m.Secret),
			off:     start + int64(ws+m.Start),
		})
	}
	return out
}

// findings resolves the hits of a buffer scanned whole (config fields).
func (s *Scanner) findings(hits []match.Hit, data []byte) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, h := range hits {
		for _, fd := range s.resolve(h, data, 0, 0, [2]bool{}) {
			key := fd.Kind + "\x00" + fd.Secret + "\x00" + fd.Rule + "\x00" + strconv.FormatInt(fd.off, 10)
			if !seen[key] {
				seen[key] = true
				out = append(out, fd)
			}
		}
	}
	return out
}

// excerpt shows a little context around data[b:e] on its line, with the
// match replaced, so a reader can find the place without seeing the value.
// Any other known value or detector secret within the context is replaced
// too: two values often sit side by side (user:password in a URL).
func (s *Scanner) excerpt(data []byte, b, e int, cut [2]bool) string {
	const ctx = 16
	from, to := max(b-ctx, 0), min(e+ctx, len(data))
	// A value that starts in the context but runs past a buffer edge that
	// is not the file's edge could not be recognised to be masked.
	if cut[0] && from-s.maxLen < 0 {
		from = b
	}
	if cut[1] && to+s.maxLen > len(data) {
		to = e
	}
	if i := bytes.LastIndexByte(data[from:b], '\n'); i >= 0 {
		from += i + 1
	}
	if i := bytes.IndexByte(data[e:to], '\n'); i >= 0 {
		to = e + i
	}
	// Look far enough around the context to see whole values and the
	// keywords of rules whose secrets reach into it.
	margin := max(s.maxLen, ruleWindow)
	lo, hi := max(from-margin, 0), min(to+margin, len(data))
	hide := make([]bool, to-from)
	mark := func(x, y int) {
		for i := max(x, from); i < min(y, to); i++ {
			hide[i-from] = true
		}
	}
	mark(b, e)
	for _, r := range s.secrets(data[lo:hi]) {
		mark(lo+r[0], lo+r[1])
	}
	return masked(data[from:to], hide)
}

// secrets returns the ranges of text that hold a known value (in any of its
// forms) or a detector's secret.
func (s *Scanner) secrets(text []byte) [][2]int {
	var out [][2]int
	for _, v := range s.short {
		for off := 0; ; {
			i := bytes.Index(text[off:], v)
			if i < 0 {
				break
			}
			out = append(out, [2]int{off + i, off + i + len(v)})
			off += i + 1
		}
	}
	s.m.Find(text, func(h match.Hit) {
		l := s.lits[h.ID]
		end := int(h.End)
		if l.known >= 0 {
			out = append(out, [2]int{max(end-l.length, 0), end})
			return
		}
		ws, we := max(end-l.length-ruleWindow, 0), min(end+ruleWindow, len(text))
		for _, m := range s.rules[l.rule].Check(text[ws:we]) {
			out = append(out, [2]int{ws + m.Start, ws + m.End})
		}
	})
	return out
}

// redact returns text with every known value and detector secret in it
// replaced by "****", for text a report shows whole (a layer's created_by,
// where build arguments land).
func (s *Scanner) redact(text string) string {
	rs := s.secrets([]byte(text))
	if len(rs) == 0 && !hasControl(text) {
		return text
	}
	hide := make([]bool, len(text))
	for _, r := range rs {
		for i := r[0]; i < r[1]; i++ {
			hide[i] = true
		}
	}
	return masked([]byte(text), hide)
}

// masked quotes text for a report, writing each run of hidden bytes as
// "****".
func masked(text []byte, hide []bool) string {
	q := func(b []byte) string {
		s := strconv.QuoteToASCII(string(b))
		return s[1 : len(s)-1]
	}
	var out strings.Builder
	for i := 0; i < len(text); {
		j := i
		for j < len(text) && hide[j] == hide[i] {
			j++
		}
		if hide[i] {
			out.WriteString("****")
		} else {
			out.WriteString(q(text[i:j]))
		}
		i = j
	}
	return out.String()
}

// hasControl reports whether text holds control characters, which a report
// must not pass to a terminal as they are (file names come from images).
func hasControl(text string) bool {
	for i := 0; i < len(text); i++ {
		if c := text[i]; c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}
