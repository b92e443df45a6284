package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

const (
	// GitImageTag is the local image scripts/test-env.sh builds for build
	// steps that clone over ssh: busybox plus the host's git and OpenSSH
	// client (ssh, ssh-add) with their shared libraries.
	GitImageTag = "privy-test/git:latest"

	// DefaultPodman is the podman the tests use unless PRIVY_TEST_PODMAN
	// names another or it is missing, when podman is looked up in PATH.
	DefaultPodman = "/usr/bin/podman"
)

// GitImage returns the tag of the local git test image after checking that
// the Docker Engine has it, or skips (fails, in CI) the test if it does not.
func GitImage(t testing.TB) string {
	t.Helper()
	docker := Docker(t)
	if err := dockerImages.probe(docker, GitImageTag); err != nil {
		Unavailable(t, "image "+GitImageTag, SetupHint, err)
	}
	return GitImageTag
}

// Podman returns the path of a podman that answers, or skips (fails, in CI)
// the test. Podman needs no daemon; scripts/test-env.sh imports the test
// images into its store (see PodmanImage).
//
// Every podman build or run in a test must pass --network none, or
// --network host to reach a server on 127.0.0.1: podman's default network
// is a CNI bridge on 10.88.0.0/16 that adds iptables rules and turns on IP
// forwarding. podman run also needs --ulimit nofile=1024:1024 --ulimit
// nproc=1024:1024 here, as its default rlimits cannot be set in the sandbox.
func Podman(t testing.TB) string {
	t.Helper()
	p := probePodman()
	if p.err != nil {
		Unavailable(t, "podman", SetupHint, p.err)
	}
	return p.path
}

// PodmanImage returns image (Image or GitImageTag) after checking that
// podman's store has it, or skips (fails, in CI) the test. Podman names
// imported images localhost/NAME and finds them by NAME.
func PodmanImage(t testing.TB, image string) string {
	t.Helper()
	podman := Podman(t)
	if err := podmanImages.probe(podman, image); err != nil {
		Unavailable(t, "podman image "+image, SetupHint, err)
	}
	return image
}

// imageProbes remembers, per image, whether an engine's store has it, so
// that each image is inspected once per test binary.
type imageProbes struct {
	mu   sync.Mutex
	errs map[string]error
}

var dockerImages, podmanImages imageProbes

func (p *imageProbes) probe(engine, image string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err, ok := p.errs[image]; ok {
		return err
	}
	_, err := output(context.Background(), probeTimeout, nil, engine,
		"image", "inspect", "--format", "{{.Id}}", image)
	if p.errs == nil {
		p.errs = make(map[string]error)
	}
	p.errs[image] = err
	return err
}

type podmanProbe struct {
	path string
	err  error
}

var (
	podmanOnce   sync.Once
	podmanResult podmanProbe
)

// probePodman finds podman and asks it for its version once per test binary.
func probePodman() podmanProbe {
	podmanOnce.Do(func() {
		path := os.Getenv("PRIVY_TEST_PODMAN")
		if path == "" {
			path = DefaultPodman
			if _, err := os.Stat(path); err != nil {
				if path, err = exec.LookPath("podman"); err != nil {
					podmanResult.err = err
					return
				}
			}
		}
		podmanResult.path = path
		out, err := output(context.Background(), probeTimeout, nil, path,
			"version", "--format", "{{.Client.Version}}")
		switch {
		case err != nil:
			podmanResult.err = err
		case strings.TrimSpace(out) == "":
			podmanResult.err = fmt.Errorf("%s version: no version", path)
		}
	})
	return podmanResult
}
