// Package match finds every occurrence of many byte strings at once in a
// stream: the known secret values with all their encodings and the
// detectors' keywords. It is the one pass the scanner makes over every byte
// of every layer, so its cost per byte must not grow with the number of
// literals.
//
// # Promises
//
// Every occurrence of every literal is reported, overlapping ones included,
// and nothing else: each candidate is compared in full before it is
// reported. Occurrences that span Write calls are found, whatever the sizes
// of the writes. Hits are delivered in order of End (then ID), and every hit
// that ends inside the bytes of a Write is delivered before that Write
// returns. A Matcher is immutable and may be shared by any number of
// goroutines, each with its own Stream.
//
// # Design
//
// A classic Aho–Corasick automaton over ~10,000 literals of 20–100 bytes has
// hundreds of thousands of states; its transition table does not fit in
// cache and each byte costs a dependent load, which in Go is well under
// 1 GB/s. This package uses sampled q-grams instead, which Go runs at
// memory-like speed because the loop has no dependency from one step to
// the next:
//
//   - Literals are split by length into a few groups, and each group
//     gets a q-gram length q ∈ {1, 2, 3, 4, 8} (at most its shortest
//     literal, m) and a stride s = min(m−q+1, 32). A small dynamic program
//     picks the split and the q's that minimise an estimate of the cost per
//     byte: probes per byte, the cache level of the filter, and how often
//     text holds q-grams that short.
//   - Every occurrence of a literal of length L ≥ q+s−1 contains, at some
//     offset j of a window of s consecutive offsets, a q-gram that starts
//     at a text position that is a multiple of s. So the group registers, for
//     each literal, the s q-grams of one window (chosen among all possible
//     windows to avoid q-grams that are crowded, common in text or
//     repetitive), and the scan probes the text only every s bytes.
//   - A probe loads 8 bytes, masks them to q bytes (ORs 0x20 into each byte
//     when the group holds case-folded literals: a superset filter), hashes
//     them with one multiplication and tests a filter: a 32 KiB byte table
//     indexed with a constant shift for groups of up to 1,024 q-grams (the
//     keywords), four probes per branch; a two-bit Bloom filter of about 32
//     bits per q-gram for larger groups. Only a q-gram that passes is
//     looked up in an open-addressing table listing (literal, offset)
//     pairs, and each candidate is verified in full.
//
// The detector keywords (3–15 bytes) end up in a group with stride 1: one
// probe per byte, in a filter that fits in L1. Known values (≥ 8 bytes,
// their encodings longer) end up in groups with strides of 5 to 32. The
// work per byte is therefore Σ 1/s over the groups plus the cost of
// candidates, and neither depends on the number of literals except through
// the cache footprint of the filters (BenchmarkThroughput: 10 known values
// and 1,000, each with its ~10 forms, plus 60 keywords).
//
// # Complexity and short literals
//
// Building is O(total literal bytes + literals · s). Scanning costs
// O(n · Σ 1/s) probes plus O(L) per candidate; the candidates are the true
// occurrences, the text q-grams that equal a registered one (rare for q = 8,
// common for q ≤ 3) and the filter's false positives (≈ 3% of probes for
// the byte table, well under 1% for the Bloom filters). Short literals are
// the expensive ones: a literal of 1–3 bytes puts its whole group at stride
// 1 with a q-gram of that length, so every text position holding those
// bytes becomes a candidate (a 1-byte literal is verified at every
// occurrence of that byte). Keywords of 3–7 bytes cost about one probe per
// byte; values of 8–15 bytes a probe every 5–12 bytes; longer ones less.
//
// Repetitive literals (all the same byte, or many literals sharing a long
// repetitive head) put many candidates under one q-gram. A table slot with
// more than 16 candidates is "crowded": its candidates are sorted by offset
// and by a hash of their first min(m, 32) bytes, so a probe hashes the text
// once per distinct offset (at most s) and verifies only the literals whose
// heads match. A run of one byte in the text therefore costs O(s) per probe
// beyond the true matches, never O(number of literals).
package match

import (
	"errors"
	"fmt"
	"slices"
)

// ErrEmptyLiteral is returned by New for a literal with no bytes.
var ErrEmptyLiteral = errors.New("empty literal")

// Literal is one byte string to find. ID is the caller's and is reported
// in every Hit of this literal; several literals may share bytes or IDs.
type Literal struct {
	Bytes []byte
	ID    int
	Fold  bool // ASCII case-insensitive (for detector keywords such as "password")
}

// Hit is one occurrence of a literal.
type Hit struct {
	ID  int   // the Literal's ID
	End int64 // offset just past the match in the stream
}

// Matcher finds a fixed set of literals. It is immutable after New and safe
// for concurrent use.
type Matcher struct {
	pats   []pattern
	groups []*group
	maxLen int
}

// pattern is one distinct literal: equal literals share a pattern and the
// pattern reports all their IDs.
type pattern struct {
	b    []byte // lower-cased when fold
	fold bool
	ids  []int
}

// New builds a Matcher for lits. It copies the literals' bytes. It returns
// an error wrapping ErrEmptyLiteral if a literal is empty. An empty set is
// allowed and finds nothing.
func New(lits []Literal) (*Matcher, error) {
	m := &Matcher{}
	index := make(map[string]int, len(lits))
	for i, l := range lits {
		if len(l.Bytes) == 0 {
			return nil, fmt.Errorf("building matcher: literal %d (id %d): %w", i, l.ID, ErrEmptyLiteral)
		}
		b := slices.Clone(l.Bytes)
		key := "c"
		if l.Fold {
			for j, c := range b {
				b[j] = lower[c]
			}
			key = "f"
		}
		key += string(b)
		if k, ok := index[key]; ok {
			m.pats[k].ids = append(m.pats[k].ids, l.ID)
			continue
		}
		index[key] = len(m.pats)
		m.pats = append(m.pats, pattern{b: b, fold: l.Fold, ids: []int{l.ID}})
		m.maxLen = max(m.maxLen, len(b))
	}
	m.groups = buildGroups(m.pats)
	return m, nil
}

// MaxLen returns the length of the longest literal: a Stream keeps this
// many bytes minus one from earlier writes.
func (m *Matcher) MaxLen() int { return m.maxLen }

// Find reports every occurrence of the literals in p, in order of End,
// with offsets counted from the start of p.
func (m *Matcher) Find(p []byte, fn func(Hit)) {
	s := m.NewStream(fn)
	s.Write(p)
}

// lower maps ASCII upper-case letters to lower case and every other byte
// to itself.
var lower = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] += 'a' - 'A'
		}
	}
	return t
}()

// equalFold reports whether text equals the lower-cased pat under ASCII
// case folding. bytes.EqualFold is not used: it folds Unicode too.
func equalFold(text, pat []byte) bool {
	if len(text) != len(pat) {
		return false
	}
	for i, c := range pat {
		if lower[text[i]] != c {
			return false
		}
	}
	return true
}
