//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package audit

import "os"

// lock does nothing where flock(2) is missing; callers must not open one
// file twice there.
func lock(*os.File) error { return nil }
