package store

import (
	"errors"
	"fmt"
	"strings"
)

// MaxPathLen is the longest secret path ValidatePath accepts, in bytes.
const MaxPathLen = 256

// ErrInvalidPath matches every *PathError with errors.Is.
var ErrInvalidPath = errors.New("invalid secret path")

// PathError reports a secret path that ValidatePath rejected and why.
type PathError struct {
	Path   string // the rejected path, as given
	Reason string // what is wrong with it and how to fix it
}

// Error quotes the path (paths are not secret) and gives the reason.
func (e *PathError) Error() string {
	return fmt.Sprintf("invalid secret path %q: %s", e.Path, e.Reason)
}

// Is reports whether target is ErrInvalidPath.
func (e *PathError) Is(target error) bool { return target == ErrInvalidPath }

// ValidatePath checks that p is a secret path: lowercase segments of
// [a-z0-9._-] joined by '/', with no empty, "." or ".." segment, and at most
// MaxPathLen bytes. It returns a *PathError otherwise.
func ValidatePath(p string) error {
	fail := func(format string, args ...any) error {
		return &PathError{Path: p, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case p == "":
		return fail(`path is empty; name the secret with lowercase segments separated by '/', like "app/db-password"`)
	case len(p) > MaxPathLen:
		return fail("path is %d bytes long; the limit is %d bytes", len(p), MaxPathLen)
	case strings.HasPrefix(p, "/"):
		return fail("path starts with '/'; paths are relative to the store, so drop the leading '/'")
	case strings.HasSuffix(p, "/"):
		return fail("path ends with '/'; drop the trailing '/'")
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return fail("path has an empty segment (\"//\"); separate segments with a single '/'")
		case seg == "." || seg == "..":
			return fail("segment %q is not allowed; paths cannot contain '.' or '..' segments", seg)
		case !validSegment(seg):
			return fail("segment %q has a character outside [a-z0-9._-]; use lowercase letters, digits, '.', '_' and '-' separated by '/'", seg)
		}
	}
	return nil
}

// validSegment reports whether every byte of seg is in [a-z0-9._-].
func validSegment(seg string) bool {
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
