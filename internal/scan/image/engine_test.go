package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/privyhq/privy/internal/testenv"
)

// TestEngineImage builds an image with the real engine and opens it three
// ways (the engine's export stream, a docker save file, an OCI layout made
// from it): all must report the same files with the same presence.
func TestEngineImage(t *testing.T) {
	docker := testenv.Docker(t)
	base := testenv.BusyboxImage(t)
	ctx := context.Background()

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("copied-then-removed\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(`FROM `+base+`
COPY secret.txt /app/secret.txt
RUN rm /app/secret.txt
RUN mkdir -p /dir && echo old > /dir/old && echo keep > /dir/keep
RUN rm -rf /dir && mkdir /dir && echo new > /dir/x
RUN echo linked > /hk && ln /hk /hk2 && ln -s /hk /hs && mkdir -p /e/f && echo deep > /e/f/g
ENV PRIVY_SCAN_TEST=1
LABEL privy.test=scan-image
`), 0o644)
	tag := fmt.Sprintf("privy-test/scan-image:%d", time.Now().UnixNano())
	testenv.RunEnv(t, []string{"DOCKER_BUILDKIT=1"}, docker, "build", "--network", "none", "-q", "-t", tag, dir)
	t.Cleanup(func() { testenv.Run(t, docker, "image", "rm", "-f", tag) })

	archive := filepath.Join(t.TempDir(), "image.tar")
	testenv.Run(t, docker, "save", "-o", archive, tag)
	timg, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	oci := writeLayout(t, timg)

	refs := []string{tag, "docker-archive:" + archive, "oci:" + oci}
	var first []string
	for _, ref := range refs {
		img, err := Open(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		got, x := walkAll(t, img, WalkOptions{})
		cfg, err := img.Config(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Config.Labels["privy.test"] != "scan-image" || !contains(cfg.Config.Env, "PRIVY_SCAN_TEST=1") {
			t.Errorf("%s: config lacks the label or env: %+v", ref, cfg.Config)
		}
		layers, err := img.Layers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(layers); n != x.Layers() || n < 5 {
			t.Fatalf("%s: got %d layers (index %d), want at least 5", ref, n, x.Layers())
		}
		secret := -1
		for _, l := range layers {
			if strings.Contains(l.CreatedBy, "COPY") && strings.Contains(l.CreatedBy, "secret.txt") {
				secret = l.Index
			}
		}
		wantLines := []string{
			fmt.Sprintf("%d app/secret.txt present=false %q", secret, "copied-then-removed\n"),
			fmt.Sprintf("%d app/secret.txt whiteout present=false \"\"", secret+1),
			fmt.Sprintf("%d dir/old present=false \"old\\n\"", secret+2),
			fmt.Sprintf("%d dir/keep present=false \"keep\\n\"", secret+2),
			fmt.Sprintf("%d dir/x present=true \"new\\n\"", secret+3),
			"0 bin/busybox present=true",
		}
		for _, w := range wantLines {
			if !containsPrefix(got, w) {
				t.Errorf("%s: no file %s", ref, w)
			}
		}
		if !containsPrefix(got, fmt.Sprintf("%d dir opaque", secret+3)) {
			t.Logf("%s: no opaque whiteout for /dir (the storage driver wrote whiteouts per file)", ref)
		}
		if first == nil {
			first = got
			continue
		}
		if g, w := strings.Join(got, "\n"), strings.Join(first, "\n"); g != w {
			t.Errorf("%s: got files\n%s\nwant (as from %s)\n%s", ref, g, refs[0], w)
		}
	}

	// Read from the engine's overlay2 storage directly, the same image must
	// give the same files, whiteouts, links and contents as its export.
	img, err := OpenEngineStorage(ctx, tag)
	if err != nil {
		testenv.Unavailable(t, "the engine's overlay2 storage (root, a local engine)", testenv.SetupHint, err)
	}
	got, _ := walkAll(t, img, WalkOptions{})
	if g, w := strings.Join(got, "\n"), strings.Join(first, "\n"); g != w {
		t.Errorf("engine storage: got files\n%s\nwant (as from the export)\n%s", g, w)
	}
	cfg, err := img.Config(ctx)
	if err != nil || cfg.Config.Labels["privy.test"] != "scan-image" {
		t.Errorf("engine storage: config %v, %v; want the image's", cfg, err)
	}
}

func TestEngineMissingImage(t *testing.T) {
	testenv.Docker(t)
	_, err := Open(context.Background(), "privy-test/no-such-image:404")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "docker image ls") {
		t.Errorf("got %v, want ErrNotFound with a hint to list images", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsPrefix(list []string, prefix string) bool {
	for _, x := range list {
		if strings.HasPrefix(x, prefix) {
			return true
		}
	}
	return false
}
