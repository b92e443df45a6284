//go:build !linux

package main

import (
	"os"
	"syscall"
)

// childProcAttr has nothing to add where there is no parent-death signal;
// the harness stops its servers itself, and scripts/bench.sh stops the
// harness.
func childProcAttr() *syscall.SysProcAttr { return nil }

// groupProcAttr is childProcAttr; process groups are left alone here.
func groupProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals only the process pid.
func signalGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Signal(sig)
}
