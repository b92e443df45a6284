package testenv

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGitImageRuns(t *testing.T) {
	docker := Docker(t)
	out := Run(t, docker, "run", "--rm", "--network", "none", GitImage(t), "sh", "-c",
		"git --version && ssh -V 2>&1 && id -un")
	for _, want := range []string{"git version ", "OpenSSH_", "root"} {
		if !strings.Contains(out, want) {
			t.Errorf("git image printed %q, want it to contain %q", out, want)
		}
	}
}

func TestPodmanImages(t *testing.T) {
	podman := Podman(t)
	for _, image := range []string{Image, GitImageTag} {
		PodmanImage(t, image)
	}
	// podman run needs explicit rlimits in this sandbox (see Podman).
	out := Run(t, podman, "run", "--rm", "--network", "none",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		GitImageTag, "git", "--version")
	if !strings.HasPrefix(out, "git version ") {
		t.Errorf("podman run of %s printed %q, want a git version", GitImageTag, out)
	}
}

// TestPodmanBuildsWithSecret checks podman does what the project's tests rely
// on: a build from the local image, with no network, whose step mounts a
// secret from a file, which the image does not keep.
func TestPodmanBuildsWithSecret(t *testing.T) {
	podman := Podman(t)
	image := PodmanImage(t, Image)

	dir := t.TempDir()
	secret := []byte("s3cret-for-podman")
	if err := os.WriteFile(filepath.Join(dir, "secret"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	digest := fmt.Sprintf("%x", sha256.Sum256(secret))
	dockerfile := fmt.Sprintf(`FROM %s
RUN --mount=type=secret,id=x,required=true test "$(sha256sum < /run/secrets/x | cut -c1-64)" = %s
RUN test ! -s /run/secrets/x
`, image, digest)
	if err := os.WriteFile(filepath.Join(dir, "Containerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}

	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	tag := "privy-test/podman-probe-" + hex.EncodeToString(suffix)
	Run(t, podman, "build", "--quiet", "--no-cache", "--network", "none",
		"--secret", "id=x,src="+filepath.Join(dir, "secret"),
		"-t", tag, "-f", filepath.Join(dir, "Containerfile"), dir)
	// A failed build tags nothing; this one's image goes with the test.
	t.Cleanup(func() { Run(t, podman, "image", "rm", tag) })
	Run(t, podman, "image", "inspect", "--format", "{{.Id}}", tag)
}
