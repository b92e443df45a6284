package policy

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxGlobLen is the longest glob, in bytes, that ParseRule accepts.
const MaxGlobLen = 256

// ErrInvalid is matched by errors.Is for every error that reports malformed
// capabilities, rules or policies.
var ErrInvalid = errors.New("invalid policy")

// invalidError is a description of malformed input that matches ErrInvalid.
type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{fmt.Sprintf(format, args...)}
}

// clip shortens s for quoting in an error, so that a huge input does not
// produce a huge message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// RuleError reports a rule that does not parse. Its message names the rule
// and what is wrong; it matches ErrInvalid.
type RuleError struct {
	Rule string // the rule text as given
	Err  error  // what is wrong with it
}

// Error returns a message such as
// `invalid rule "raed:app/**": unknown capability "raed" (valid: ...)`.
func (e *RuleError) Error() string {
	return fmt.Sprintf("invalid rule %q: %v", clip(e.Rule), e.Err)
}

// Unwrap returns the description of what is wrong.
func (e *RuleError) Unwrap() error { return e.Err }

// Rule grants capabilities on the paths its glob matches. Its text form is
// CAPS:GLOB, such as "read,list:app/**".
type Rule struct {
	Caps Capability // what the rule grants; Admin implies the rest
	Glob string     // which paths it grants them on; see Match
}

// ParseRule parses a rule of the form CAPS:GLOB, where CAPS is a list for
// ParseCapabilities and GLOB a glob as described in the package
// documentation. Space around the rule, a capability name or the glob is
// ignored.
func ParseRule(s string) (Rule, error) {
	capsText, glob, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Rule{}, &RuleError{s, invalidf(`missing ':' between capabilities and glob (want CAPS:GLOB, e.g. "read:app/**")`)}
	}
	caps, err := ParseCapabilities(capsText)
	if err != nil {
		return Rule{}, &RuleError{s, err}
	}
	glob = strings.TrimSpace(glob)
	if err := validateGlob(glob); err != nil {
		return Rule{}, &RuleError{s, err}
	}
	return Rule{Caps: caps, Glob: glob}, nil
}

// String returns the rule in the form ParseRule reads, such as
// "read,list:app/**".
func (r Rule) String() string {
	return r.Caps.String() + ":" + r.Glob
}

// check reports whether r is a rule ParseRule could have returned.
func (r Rule) check() error {
	if r.Caps == 0 || r.Caps&^All != 0 {
		return &RuleError{r.String(), invalidf("capabilities %q are not a non-empty set of %s", r.Caps.String(), validCaps)}
	}
	if err := validateGlob(r.Glob); err != nil {
		return &RuleError{r.String(), err}
	}
	return nil
}

// MarshalText returns the rule's string form, so that a Rule is a JSON
// string. It fails for a rule ParseRule would reject, rather than write
// something that cannot be read back.
func (r Rule) MarshalText() ([]byte, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return []byte(r.String()), nil
}

// UnmarshalText parses text with ParseRule.
func (r *Rule) UnmarshalText(text []byte) error {
	rule, err := ParseRule(string(text))
	if err != nil {
		return err
	}
	*r = rule
	return nil
}

// validateGlob reports what is wrong with glob, or nil if it is valid.
func validateGlob(glob string) error {
	if glob == "" {
		return invalidf("empty glob (use ** for every path)")
	}
	if len(glob) > MaxGlobLen {
		return invalidf("glob is %d bytes long (max %d)", len(glob), MaxGlobLen)
	}
	for rest, more := glob, true; more; {
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		if err := validateSegment(seg); err != nil {
			return err
		}
	}
	return nil
}

// validateSegment reports what is wrong with one '/'-separated glob segment.
func validateSegment(seg string) error {
	switch seg {
	case "":
		return invalidf("empty path segment in glob (no leading, trailing or double '/')")
	case "**":
		return nil
	case ".", "..":
		return invalidf("glob segment %q is not allowed", seg)
	}
	if strings.Contains(seg, "**") {
		return invalidf("glob segment %q: ** must be a whole segment", clip(seg))
	}
	for i := 0; i < len(seg); i++ {
		if !globByte(seg[i]) {
			r, _ := utf8.DecodeRuneInString(seg[i:])
			return invalidf("glob segment %q: character %q not allowed (use a-z 0-9 . _ - * ?)", clip(seg), r)
		}
	}
	return nil
}

// globByte reports whether c may appear in a glob segment.
func globByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-' || c == '*' || c == '?'
}
