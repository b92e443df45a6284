package engine

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	id1 = "b3599aa35710ff8667420f970b004ccea99dab0e0fe76656f31b628b20d458b2"
	id2 = "4e1ee3c4b4d0a3c2f8f5d3b0d6b7a9e1c2f3a4b5c6d7e8f90123456789abcdef"
)

// v1 builds a cgroup v1 file with every controller at path, as Docker's
// cgroupfs driver writes it (copied from a container on the test machine).
func v1(path string) string {
	var b strings.Builder
	for _, c := range []string{"9:name=systemd", "8:pids", "7:blkio", "6:freezer", "5:devices",
		"4:memory", "3:cpuset", "2:cpuacct", "1:cpu"} {
		b.WriteString(c + ":" + path + "\n")
	}
	return b.String() + "0::" + path + "\n"
}

func TestContainerOfPID(t *testing.T) {
	tests := []struct {
		name, cgroup string
		want         string // "" means ErrNotInContainer
	}{
		{"docker cgroupfs v1", v1("/docker/" + id1), id1},
		{"docker cgroupfs v1 under a prefix",
			"4:memory:/process_api/5a5e82da3fa06e52854652246c798cb3/docker/" + id1 + "\n3:cpuset:/\n0::/\n", id1},
		{"docker cgroupfs v1, custom cgroup parent", "5:devices:/ci-runners/" + id1 + "\n", id1},
		{"kubernetes cgroupfs v1",
			"11:memory:/kubepods/burstable/pod0f8b7d4e-3a8c-4a8e-9d36-1c2c3f1a9b7e/" + id1 + "\n" +
				"10:cpu,cpuacct:/kubepods/burstable/pod0f8b7d4e-3a8c-4a8e-9d36-1c2c3f1a9b7e/" + id1 + "\n", id1},
		{"docker cgroup v2", "0::/docker/" + id1 + "\n", id1},
		{"docker systemd v1",
			"12:pids:/system.slice/docker-" + id1 + ".scope\n1:name=systemd:/system.slice/docker-" + id1 + ".scope\n0::/\n", id1},
		{"docker systemd v2", "0::/system.slice/docker-" + id1 + ".scope\n", id1},
		{"docker in docker", "0::/docker/" + id2 + "/docker/" + id1 + "\n", id1},
		{"docker in docker, systemd outside", "0::/system.slice/docker-" + id2 + ".scope/docker/" + id1 + "\n", id1},
		{"podman v2", "0::/machine.slice/libpod-" + id1 + ".scope/container\n", id1},
		{"podman rootless", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope/container\n", id1},
		{"podman cgroupfs v1", v1("/libpod_parent/libpod-" + id1), id1},
		{"containerd cri systemd v2",
			"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f8b7d4e_3a8c_4a8e_9d36_1c2c3f1a9b7e.slice/cri-containerd-" + id1 + ".scope\n", id1},
		{"cri-o", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/crio-" + id1 + ".scope\n", id1},
		{"v1 with some controllers at the root", "9:name=systemd:/\n4:memory:/docker/" + id1 + "\n0::/\n", id1},

		{"host v2 root", "0::/\n", ""},
		{"host v2 session", "0::/user.slice/user-1000.slice/session-3.scope\n", ""},
		{"host v1 (the test machine's own)", "9:name=systemd:/\n4:memory:/process_api/5a5e82da3fa06e52854652246c798cb3\n3:cpuset:/\n0::/\n", ""},
		{"dockerd", "0::/system.slice/docker.service\n", ""},
		{"podman conmon", "0::/machine.slice/libpod-conmon-" + id1 + ".scope\n", ""},
		{"cri-o conmon", "0::/kubepods.slice/crio-conmon-" + id1 + ".scope\n", ""},
		{"short id", "0::/docker/b3599aa35710\n", ""},
		{"upper case", "0::/docker/" + strings.ToUpper(id1) + "\n", ""},
		{"65 hex digits", "0::/docker/" + id1 + "0\n", ""},
		{"empty", "", ""},
	}
	root := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid := 100 + i // a file of its own for each case
			writeCgroup(t, root, pid, tt.cgroup)
			got, err := containerOfPID(root, pid)
			if tt.want == "" {
				if !errors.Is(err, ErrNotInContainer) {
					t.Fatalf("ContainerOfPID = %q, %v; want ErrNotInContainer", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ContainerOfPID = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestContainerOfPIDErrors(t *testing.T) {
	root := t.TempDir()
	writeCgroup(t, root, 7, "4:memory:/docker/"+id1+"\n1:cpu:/docker/"+id2+"\n")

	tests := []struct {
		name     string
		pid      int
		notExist bool
	}{
		{"gone", 12345, true},
		{"zero", 0, false},
		{"negative", -1, false},
		{"two containers", 7, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := containerOfPID(root, tt.pid)
			if err == nil || errors.Is(err, ErrNotInContainer) {
				t.Fatalf("ContainerOfPID(%d) = %q, %v; want an error other than ErrNotInContainer", tt.pid, got, err)
			}
			if errors.Is(err, fs.ErrNotExist) != tt.notExist {
				t.Errorf("ContainerOfPID(%d): errors.Is(%v, fs.ErrNotExist) = %v, want %v", tt.pid, err, !tt.notExist, tt.notExist)
			}
		})
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte(v1("/docker/" + id1)))
	f.Add([]byte("0::/system.slice/docker-" + id1 + ".scope\n"))
	f.Add([]byte("0::/machine.slice/libpod-conmon-" + id1 + ".scope\n"))
	f.Add([]byte("0::/\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := parseCgroup(b)
		if err != nil {
			if id != "" {
				t.Fatalf("parseCgroup = %q with error %v", id, err)
			}
			return
		}
		if !isID(id) || !strings.Contains(string(b), id) {
			t.Fatalf("parseCgroup = %q: not an id of the input", id)
		}
	})
}

func writeCgroup(t *testing.T, root string, pid int, content string) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
