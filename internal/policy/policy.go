// Package policy holds the authorization rules attached to privy tokens and
// decides what a token may do.
//
// A token carries a Policy: a list of rules written CAPS:GLOB, such as
// "read,list:app/**" or "admin:**". A rule grants its capabilities (read,
// list, write, delete, admin) on every path its glob matches. Admin implies
// every other capability on the paths it covers.
//
// # Globs
//
// Globs and paths are split on '/' and matched segment by segment:
//
//   - a literal segment matches itself;
//   - '*' matches any run of characters within one segment, never '/';
//   - '?' matches exactly one character within a segment;
//   - "**" as a whole segment matches zero or more whole segments, so
//     "app/**" matches "app", "app/x" and "app/x/y", "a/**/z" matches "a/z"
//     and "a/b/c/z", and "**" matches every path, the empty one included.
//
// A glob segment may hold only a-z, 0-9, '.', '_', '-', '*' and '?'; "**"
// must be a whole segment; segments are never empty, "." or ".."; and a glob
// is at most MaxGlobLen bytes.
//
// Paths are not validated here: they are treated as opaque segments. privy
// names system operations with pseudo-paths such as ":sys/tokens". A path
// segment that starts with ':' is matched only by "**", never by a segment
// holding '*' or '?' (a literal cannot match it either, since globs cannot
// contain ':'). So "*/tokens" does not match ":sys/tokens", and only a rule
// such as "admin:**" reaches system operations.
//
// # Promises
//
//   - Parsing is strict. ParseCapabilities, ParseRule and ParsePolicy reject
//     anything outside the grammar with an error that names the input and
//     what is wrong and that matches ErrInvalid.
//   - Evaluation fails closed. A capability is allowed on a path only if
//     rules matching that path grant it; the zero Capability is never
//     allowed; an invalid glob passed to Match matches nothing.
//   - Match does not allocate and runs in time proportional to
//     len(glob)·len(path) at worst, however many wildcards the glob holds.
//   - Covers never reports that one policy covers another when the other
//     could allow something the first does not.
package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrDenied is matched by errors.Is for every *DeniedError.
var ErrDenied = errors.New("permission denied")

// DeniedError reports that a token lacks a capability on a path. Paths are
// not secret, so the message names the path.
type DeniedError struct {
	Capability Capability // the capabilities that were asked for and not granted
	Path       string     // the path they were asked for on
}

// Error returns a message such as
// `permission denied: this token lacks "write" on "app/web/x"`.
func (e *DeniedError) Error() string {
	return fmt.Sprintf("permission denied: this token lacks %q on %q", e.Capability.String(), e.Path)
}

// Is reports whether target is ErrDenied.
func (e *DeniedError) Is(target error) bool { return target == ErrDenied }

// Policy is the list of rules a token carries. It allows a capability on a
// path when the rules that match the path grant it between them. The zero
// Policy allows nothing.
//
// Policy methods expect rules as ParseRule returns them; they do not
// validate a hand-built Rule's glob again.
type Policy []Rule

// ParsePolicy parses each rule with ParseRule. An empty list is an error: a
// token must be allowed something. The first bad rule is reported as a
// *RuleError.
func ParsePolicy(rules []string) (Policy, error) {
	if len(rules) == 0 {
		return nil, invalidf("empty policy: a token needs at least one rule, such as %q", "read:app/**")
	}
	p := make(Policy, len(rules))
	for i, s := range rules {
		r, err := ParseRule(s)
		if err != nil {
			return nil, err
		}
		p[i] = r
	}
	return p, nil
}

// Strings returns the rules in the form ParsePolicy reads.
func (p Policy) Strings() []string {
	s := make([]string, len(p))
	for i, r := range p {
		s[i] = r.String()
	}
	return s
}

// Granted returns every capability the policy grants on path, with Admin
// expanded to All.
func (p Policy) Granted(path string) Capability {
	var caps Capability
	for _, r := range p {
		if match(r.Glob, path) {
			caps |= r.Caps
		}
	}
	return caps.effective()
}

// Allows reports whether the policy grants every capability in c on path.
// Different rules may grant different parts of c. Allows reports false for
// the zero Capability, so that a forgotten capability fails closed.
func (p Policy) Allows(c Capability, path string) bool {
	if c == 0 || c&^All != 0 {
		return false
	}
	var caps Capability
	for _, r := range p {
		if r.Caps&c != 0 || r.Caps&Admin != 0 { // skip matching rules that cannot help
			if match(r.Glob, path) {
				if caps |= r.Caps.effective(); caps&c == c {
					return true
				}
			}
		}
	}
	return false
}

// Missing returns nil if the policy allows c on path, and otherwise a
// *DeniedError naming the capabilities in c that it does not grant.
//
// Because the result is a pointer, assigning a nil result to a variable of
// type error makes a non-nil error; use Check where an error is wanted.
func (p Policy) Missing(c Capability, path string) *DeniedError {
	if p.Allows(c, path) {
		return nil
	}
	lacking := c &^ p.Granted(path)
	if lacking == 0 { // c is zero
		lacking = c
	}
	return &DeniedError{Capability: lacking, Path: path}
}

// Check is Missing with an error result: nil if the policy allows c on
// path, and otherwise a *DeniedError.
func (p Policy) Check(c Capability, path string) error {
	if d := p.Missing(c, path); d != nil {
		return d
	}
	return nil
}

// Covers reports whether every rule of q is certainly within p, so that a
// token holding p may create a child token holding q. It is conservative: it
// may report false for a q that allows nothing p does not, but when it
// reports true, q allows no capability on any path that p does not.
//
// A rule of q is within p when the rules of p whose globs contain its glob
// grant, between them, all the rule's capabilities (Admin granting all but
// being needed for Admin). A glob of p contains a glob of q when it is "**",
// when they are equal, or when it is PREFIX/** and q's glob is PREFIX or
// starts with PREFIX/.
func (p Policy) Covers(q Policy) bool {
	for _, rq := range q {
		var caps Capability
		for _, rp := range p {
			if globCovers(rp.Glob, rq.Glob) {
				caps |= rp.Caps
			}
		}
		if rq.Caps.effective()&^caps.effective() != 0 {
			return false
		}
	}
	return true
}

// globCovers reports whether every path q matches is certainly matched by
// p. It holds when p's leading segments are q's leading segments followed by
// "**", because a match of q splits the path into a part matched by those
// leading segments and a part matched by the rest of q, which "**" matches.
func globCovers(p, q string) bool {
	if p == "**" || p == q {
		return true
	}
	prefix, ok := strings.CutSuffix(p, "/**")
	if !ok {
		return false
	}
	return q == prefix || len(q) > len(prefix) && q[len(prefix)] == '/' && strings.HasPrefix(q, prefix)
}
