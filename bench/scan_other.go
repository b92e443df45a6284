//go:build !linux

package main

import "os"

// maxRSS is not measured here: rusage's units differ between systems.
func maxRSS(ps *os.ProcessState) int64 { return 0 }

// watchRSS is not measured here.
func watchRSS(pid int) (stop func() int64) { return func() int64 { return 0 } }
