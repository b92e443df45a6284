// Package detect holds the leak scanner's detectors: rules that recognise
// secrets privy does not know by value (private keys, cloud and forge
// tokens, password assignments) and file rules that recognise files which
// are secrets by themselves (id_rsa, an .npmrc with an auth line, ...).
//
// # How rules run
//
// A Rule never scans a whole file. The scanner finds every rule's keywords
// at once with one shared multi-pattern matcher (case-insensitively, over
// all bytes), and for each keyword hit calls Check on a window of about
// WindowRadius bytes on each side of the hit. Check runs the rule's regex
// on the window only, so the cost per scanned byte does not grow with the
// number of rules. Built-in rules whose patterns have no literal prefix
// (case-insensitive names such as PASSWORD) are matched only at the keyword
// hits within the window. Go's regexp skips ahead quickly only to a literal
// prefix, so a user rule's regex is fastest when it starts with one rather
// than with \b or a character class.
//
// # Promises
//
//   - Every rule has at least one keyword of 3 bytes or more, in lower-case
//     ASCII, and each built-in rule's match contains one of its keywords, so
//     the shared matcher triggers it wherever it can fire.
//   - Check returns matches that lie within the window it was given, with a
//     non-empty secret, each distinct secret once. The edges of the window
//     count as the edges of the text: a regex that ends in `$` (without the
//     m flag) matches at the end of the window.
//   - Rules are immutable once built and safe for concurrent use.
//   - Nothing in this package formats a secret into an error; reports show
//     a secret only through Redact, which never shows more than 4 bytes.
//
// # Rules file
//
// LoadRules reads user rules from YAML:
//
//	rules:
//	  - id: acme-api-key             # required; [a-z0-9][a-z0-9._-]*, unique, not a built-in id
//	    description: ACME API key    # optional; shown in reports
//	    keywords: [acme_]            # required; each >= 3 bytes; matched case-insensitively
//	    regex: '(acme_[A-Za-z0-9]{32})\b'    # required; Go RE2 syntax
//	    secret_group: 1              # optional; capture group holding the secret (0, the default, = whole match)
//	    min_entropy: 3.5             # optional; Shannon entropy in bits per byte the secret must reach (0 to 8)
//	    allow:                       # optional; secrets matching any of these regexes are not reported
//	      - '^acme_0+$'
//
// A rule's secret must lie within WindowRadius bytes of one of its keywords,
// and its regex should contain a keyword, or the rule may never run. Unknown
// fields are errors, so a misspelt field is not silently ignored.
package detect

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
)

// WindowRadius is how many bytes on each side of a keyword hit the scanner
// passes to Check. Rules are written so that their secrets lie within it.
const WindowRadius = 512

// Rule is a detector: a regex run around its keywords, with checks on the
// secret it captures.
type Rule struct {
	ID          string           // stable name reported with findings, such as "aws-access-key-id"
	Description string           // one line for reports
	Keywords    []string         // lower-case ASCII, each >= 3 bytes; the scanner runs the rule only around these
	Pattern     *regexp.Regexp   // what a secret looks like, with its context
	SecretGroup int              // which capture group is the secret (0 = the whole match)
	MinEntropy  float64          // Shannon entropy (bits per byte) the secret must reach; 0 = no check
	Allow       []*regexp.Regexp // secrets matching any of these are not findings (placeholders, examples)

	// verify, if set, is a last check on a candidate secret, such as
	// decoding a Docker auth to see that it holds user:password.
	verify func(secret []byte) bool
	// wordStart drops matches that start right after a letter, digit or
	// '_'. It stands for a leading \b, which would stop Go's regexp from
	// skipping ahead to the pattern's literal prefix, 100 times slower.
	wordStart bool
	// anchored runs Pattern (which starts with ^) only at the keyword hits
	// within the window, for patterns without a literal prefix (such as
	// case-insensitive names) that would be slow to search for.
	anchored bool
	// maxSecret, if set, cuts a longer secret to this many bytes, a bound
	// that would make the pattern's program too large if written in it.
	maxSecret int
}

// Match is a secret found by a rule.
type Match struct {
	RuleID     string // the rule that found it
	Start, End int    // where the secret lies within the window passed to Check
	Secret     []byte // a copy of the secret; show it only through Redact
}

// Check runs the rule on window and returns the secrets it finds, in order,
// each distinct secret once. It returns nil for a rule without a pattern or
// whose SecretGroup the pattern does not have.
func (r *Rule) Check(window []byte) []Match {
	if r.Pattern == nil || r.SecretGroup < 0 || r.SecretGroup > r.Pattern.NumSubexp() {
		return nil
	}
	var out []Match
	if r.anchored {
		for _, at := range keywordHits(window, r.Keywords) {
			if loc := r.Pattern.FindSubmatchIndex(window[at:]); loc != nil {
				out = r.add(out, window, at, loc)
			}
		}
		return out
	}
	for _, loc := range r.Pattern.FindAllSubmatchIndex(window, -1) {
		out = r.add(out, window, 0, loc)
	}
	return out
}

// add appends the secret of the match at loc (offsets from off in window)
// to out if it is one to report.
func (r *Rule) add(out []Match, window []byte, off int, loc []int) []Match {
	if start := off + loc[0]; r.wordStart && start > 0 && isWord(window[start-1]) {
		return out
	}
	start, end := loc[2*r.SecretGroup], loc[2*r.SecretGroup+1]
	if start < 0 || start == end {
		return out // the group did not take part in the match
	}
	start, end = off+start, off+end
	if r.maxSecret > 0 && end-start > r.maxSecret {
		end = start + r.maxSecret
	}
	secret := window[start:end]
	if !r.accepts(secret) || seen(out, secret) {
		return out
	}
	return append(out, Match{RuleID: r.ID, Start: start, End: end, Secret: bytes.Clone(secret)})
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// keywordHits returns, in order, the offsets in window where one of the
// keywords (lower-case) occurs, ignoring ASCII case.
func keywordHits(window []byte, keywords []string) []int {
	var buf [2*WindowRadius + 256]byte
	lower := buf[:0]
	if len(window) > len(buf) {
		lower = make([]byte, 0, len(window))
	}
	for _, c := range window {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	var hits []int
	for _, k := range keywords {
		for off := 0; ; {
			i := bytes.Index(lower[off:], []byte(k))
			if i < 0 {
				break
			}
			hits = append(hits, off+i)
			off += i + 1
		}
	}
	slices.Sort(hits)
	return slices.Compact(hits)
}

// accepts reports whether a candidate secret passes the rule's entropy
// threshold, allow-list and verification.
func (r *Rule) accepts(secret []byte) bool {
	// Every secret a rule looks for is text; binary bytes after a keyword
	// (a "password=" string inside an executable) are noise.
	if !printable(secret) {
		return false
	}
	if r.MinEntropy > 0 && Entropy(secret) < r.MinEntropy {
		return false
	}
	for _, a := range r.Allow {
		if a.Match(secret) {
			return false
		}
	}
	return r.verify == nil || r.verify(secret)
}

func seen(ms []Match, secret []byte) bool {
	for _, m := range ms {
		if bytes.Equal(m.Secret, secret) {
			return true
		}
	}
	return false
}

// validate reports what, if anything, makes the rule unusable by the
// scanner, and the rules-file field at fault. Its messages never quote a
// secret: rules hold none.
func (r *Rule) validate() (field string, err error) {
	if !validID(r.ID) {
		return "id", fmt.Errorf("id %q: want 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", clip(r.ID))
	}
	if len(r.Keywords) == 0 {
		return "keywords", fmt.Errorf("no keywords: the scanner runs a rule only around its keywords")
	}
	for _, k := range r.Keywords {
		if err := validateKeyword(k); err != nil {
			return "keywords", err
		}
	}
	if r.Pattern == nil {
		return "regex", fmt.Errorf("no regex")
	}
	if r.Pattern.Match(nil) {
		return "regex", fmt.Errorf("regex matches the empty string")
	}
	if n := r.Pattern.NumSubexp(); r.SecretGroup < 0 || r.SecretGroup > n {
		return "secret_group", fmt.Errorf("secret_group %d: the regex has %d capture groups", r.SecretGroup, n)
	}
	if !(r.MinEntropy >= 0 && r.MinEntropy <= 8) {
		return "min_entropy", fmt.Errorf("min_entropy %v: want 0 to 8 bits per byte", r.MinEntropy)
	}
	return "", nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_' || c == '.') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validateKeyword(k string) error {
	if len(k) < 3 {
		return fmt.Errorf("keyword %q is shorter than 3 bytes", k)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x20 || c > 0x7e || (c >= 'A' && c <= 'Z') {
			return fmt.Errorf("keyword %q: want lower-case printable ASCII", clip(k))
		}
	}
	return nil
}

// clip shortens s for quoting in an error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// Entropy returns the Shannon entropy of b in bits per byte: 0 for empty or
// constant input, at most log2(len(b)) and at most 8.
func Entropy(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	n := float64(len(b))
	var h float64
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// RedactMin is the shortest secret Redact shows any of: shorter secrets
// are redacted to "****" alone.
const RedactMin = 12

// Redact returns an excerpt of secret that is safe to print: its first 4
// bytes, "…" and its length, such as "AKIA…(20 bytes)", or "****" for a
// secret shorter than RedactMin. Bytes outside printable ASCII are shown as
// '?', so an excerpt cannot carry terminal control sequences.
func Redact(secret []byte) string {
	if len(secret) < RedactMin {
		return "****"
	}
	var head [4]byte
	for i := range head {
		c := secret[i]
		if c < 0x21 || c > 0x7e {
			c = '?'
		}
		head[i] = c
	}
	return string(head[:]) + "…(" + strconv.Itoa(len(secret)) + " bytes)"
}

// printable reports whether b is text: printable ASCII, tabs and line ends.
func printable(b []byte) bool {
	for _, c := range b {
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c > 0x7e {
			return false
		}
	}
	return true
}
