package engine

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrNotInContainer means a process runs on the host, in no container.
var ErrNotInContainer = errors.New("process is not in a container")

// ContainerOfPID returns the id (64 hex digits) of the container the
// process pid runs in, read from /proc/<pid>/cgroup, or ErrNotInContainer.
// A process that is gone gives an error wrapping fs.ErrNotExist.
//
// It knows the paths of Docker (cgroupfs and systemd drivers, cgroup v1 and
// v2), podman and containerd/CRI-O, nested under any prefix: the last
// container id in the path wins, so a container in a container (a CI
// runner in Docker) maps to the inner one. The caller must bear in mind
// that a pid can be reused once its process ends.
func ContainerOfPID(pid int) (string, error) {
	return containerOfPID("/proc", pid)
}

// containerOfPID is ContainerOfPID with procfs at procRoot.
func containerOfPID(procRoot string, pid int) (string, error) {
	if pid <= 0 {
		return "", fmt.Errorf("finding the container of pid %d: not a process id", pid)
	}
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", fmt.Errorf("finding the container of pid %d: %w", pid, err)
	}
	id, err := parseCgroup(b)
	if err != nil {
		return "", fmt.Errorf("finding the container of pid %d: %w", pid, err)
	}
	return id, nil
}

// parseCgroup returns the container id in the contents of a
// /proc/<pid>/cgroup file: lines "hierarchy-ID:controllers:path", one per
// hierarchy in cgroup v1, a single "0::path" in v2. Lines whose path names
// no container (a v1 controller left at "/") are ignored; lines naming
// different containers are an error, as the caller could not tell which
// one the process belongs to.
func parseCgroup(b []byte) (string, error) {
	var found string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		id := lastContainerID(parts[2])
		switch {
		case id == "":
		case found == "":
			found = id
		case id != found:
			return "", fmt.Errorf("its cgroups name two containers, %s and %s", found, id)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if found == "" {
		return "", ErrNotInContainer
	}
	return found, nil
}

// lastContainerID returns the last container id in a cgroup path, or "".
// The runtimes name a container's cgroup "<id>" (Docker's cgroupfs driver,
// under /docker/ or a custom parent), "docker-<id>.scope" (systemd
// driver), "libpod-<id>.scope" or "libpod-<id>" (podman),
// "cri-containerd-<id>.scope" or "crio-<id>.scope" (Kubernetes).
func lastContainerID(path string) string {
	elems := strings.Split(path, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		e := strings.TrimSuffix(elems[i], ".scope")
		// podman's and CRI-O's monitor runs on the host, beside the
		// container, in a cgroup named after it.
		if strings.HasPrefix(e, "libpod-conmon-") || strings.HasPrefix(e, "crio-conmon-") {
			continue
		}
		if j := strings.LastIndexByte(e, '-'); j >= 0 {
			e = e[j+1:]
		}
		if isID(e) {
			return e
		}
	}
	return ""
}

// isID reports whether s is a full container id: 64 lower-case hex digits.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
