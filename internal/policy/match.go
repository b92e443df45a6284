package policy

import (
	"strings"
	"unicode/utf8"
)

// Match reports whether path matches glob, segment by segment as the
// package documentation describes. An invalid glob (one ParseRule would
// reject) matches nothing. Match does not allocate, and it takes time
// proportional to len(glob)·len(path) at worst, however many wildcards the
// glob holds.
func Match(glob, path string) bool {
	if validateGlob(glob) != nil {
		return false
	}
	return match(glob, path)
}

// match is Match for a glob already known to be valid.
//
// It is the classic two-pointer wildcard match, run over segments with "**"
// as the star: a segment other than "**" matches exactly one path segment,
// so on a mismatch it is enough to let the most recent "**" absorb one more
// segment and retry from there. Earlier "**"s need no retrying, because
// whatever they could absorb the latest one can absorb too.
func match(glob, path string) bool {
	gEnd, pEnd := len(glob)+1, len(path)+1 // offsets past the last segment
	gi, pi := 0, 0                         // start of the current segments
	if path == "" {
		pi = pEnd // the empty path has no segments
	}
	starG, starP := -1, -1 // after the latest "**": glob offset, path offset
	for pi < pEnd {
		if gi < gEnd {
			gs, gn := segment(glob, gi)
			if gs == "**" {
				gi, starG, starP = gn, gn, pi
				continue
			}
			if ps, pn := segment(path, pi); matchSegment(gs, ps) {
				gi, pi = gn, pn
				continue
			}
		}
		if starG < 0 {
			return false
		}
		_, starP = segment(path, starP)
		gi, pi = starG, starP
	}
	for gi < gEnd { // the path is used up: only "**"s may remain
		gs, gn := segment(glob, gi)
		if gs != "**" {
			return false
		}
		gi = gn
	}
	return true
}

// segment returns the '/'-separated segment of s that starts at offset i,
// and the offset of the next one (len(s)+1 after the last).
func segment(s string, i int) (seg string, next int) {
	if j := strings.IndexByte(s[i:], '/'); j >= 0 {
		return s[i : i+j], i + j + 1
	}
	return s[i:], len(s) + 1
}

// matchSegment reports whether the path segment p matches the glob segment
// g, which is not "**": '*' matches any run of characters, '?' exactly one
// character (a UTF-8 rune, or one byte that is not valid UTF-8), and any
// other byte itself. A segment that starts with ':' names a pseudo-path and
// matches nothing here; only "**" matches it.
//
// This is the same two-pointer algorithm as match, over characters.
func matchSegment(g, p string) bool {
	if strings.HasPrefix(p, ":") {
		return false
	}
	gi, pi := 0, 0
	starG, starP := -1, -1
	for pi < len(p) {
		if gi < len(g) {
			switch c := g[gi]; {
			case c == '*':
				gi++
				starG, starP = gi, pi
				continue
			case c == '?':
				_, w := utf8.DecodeRuneInString(p[pi:])
				gi, pi = gi+1, pi+w
				continue
			case c == p[pi]:
				// Glob bytes are ASCII, so this is a whole character.
				gi, pi = gi+1, pi+1
				continue
			}
		}
		if starG < 0 {
			return false
		}
		_, w := utf8.DecodeRuneInString(p[starP:])
		starP += w
		gi, pi = starG, starP
	}
	for gi < len(g) && g[gi] == '*' {
		gi++
	}
	return gi == len(g)
}
