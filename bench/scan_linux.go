package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// maxRSS returns the peak resident set of a process that has exited, from
// wait4's rusage. On Linux a child started by os/exec (vfork, then exec)
// inherits the harness's high-water mark in ru_maxrss, so the benchmark
// prefers watchRSS.
func maxRSS(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10 // KiB on Linux
	}
	return 0
}

// watchRSS polls the VmHWM (peak RSS of its own address space) of a
// running process until stop is called, which returns the last value
// read: within one poll interval of the process's end.
func watchRSS(pid int) (stop func() int64) {
	done := make(chan struct{})
	result := make(chan int64, 1)
	go func() {
		var hwm int64
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v := vmHWM(pid); v > hwm {
				hwm = v
			}
			select {
			case <-done:
				result <- hwm
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 { close(done); return <-result }
}

func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	return 0
}
