package main

import "syscall"

// childProcAttr makes the kernel kill a server the harness started if the
// harness dies without stopping it (SIGKILL, a crash), so that no server is
// left holding a socket or a store.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// groupProcAttr is childProcAttr for a command that starts processes of its
// own (`go test` starts the test binary, which starts servers): it gets a
// process group of its own, so that signalGroup reaches all of them.
func groupProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

// signalGroup sends sig to every process in the group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
