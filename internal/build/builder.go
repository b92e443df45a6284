package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/privyhq/privy/internal/scan/image"
)

// Builder kinds.
const (
	Docker  = "docker"  // docker build with BuildKit (a client with BuildKit built in)
	Buildx  = "buildx"  // docker buildx build
	Podman  = "podman"  // podman build
	Buildah = "buildah" // buildah build
)

// builder is the program that runs the build.
type builder struct {
	kind string
	path string
}

// findBuilder picks the builder: kind if given, else the first that works
// of docker (buildx, or a client with BuildKit built in), podman, buildah.
// docker is the docker CLI to use (PRIVY_DOCKER), or "" for the one on PATH.
func findBuilder(ctx context.Context, kind, docker string) (*builder, error) {
	if docker == "" {
		docker = "docker"
	}
	switch kind {
	case Docker, Buildx:
		p, err := exec.LookPath(docker)
		if err != nil {
			return nil, fmt.Errorf("builder %s: %s not found: install docker or set PRIVY_DOCKER to the docker CLI", kind, docker)
		}
		return dockerKind(ctx, p, kind)
	case Podman, Buildah:
		p, err := exec.LookPath(kind)
		if err != nil {
			return nil, fmt.Errorf("builder %s: not found on PATH", kind)
		}
		return &builder{kind: kind, path: p}, nil
	case "":
		if p, err := exec.LookPath(docker); err == nil {
			return dockerKind(ctx, p, "")
		}
		for _, k := range []string{Podman, Buildah} {
			if p, err := exec.LookPath(k); err == nil {
				return &builder{kind: k, path: p}, nil
			}
		}
		return nil, errors.New("no builder found: install docker (with buildx), podman or buildah, or set PRIVY_DOCKER to a docker CLI")
	default:
		return nil, fmt.Errorf("unknown builder %q: use docker, buildx, podman or buildah", kind)
	}
}

// dockerKind decides how to drive the docker CLI at p: through buildx if it
// has the plugin, else `docker build` if the client has BuildKit built in
// (clients before 23.0); newer clients without buildx cannot run BuildKit
// builds with secrets.
func dockerKind(ctx context.Context, p, want string) (*builder, error) {
	// Both probes run at once: each is a docker CLI start (≈0.1 s).
	buildx := make(chan error, 1)
	go func() {
		if want == Docker {
			buildx <- errors.New("not asked for")
			return
		}
		buildx <- probe(ctx, p, "buildx", "version")
	}()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, p, "version", "--format", "{{.Client.Version}}")
	cmd.Stdout = &out
	_ = cmd.Run() // the client's version prints even when no engine answers
	if <-buildx == nil {
		return &builder{kind: Buildx, path: p}, nil
	}
	if want == Buildx {
		return nil, fmt.Errorf("builder buildx: %s has no buildx plugin; install docker-buildx, or use --builder docker with a docker CLI that has BuildKit built in", p)
	}
	v := strings.TrimSpace(out.String())
	major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if err != nil {
		return nil, fmt.Errorf("builder docker: cannot tell the version of %s (%q)", p, v)
	}
	if major >= 23 {
		return nil, fmt.Errorf("builder docker: %s (docker %s) needs the buildx plugin for BuildKit builds with secrets; "+
			"install docker-buildx, or set PRIVY_DOCKER to a docker CLI that has BuildKit built in (before 23.0)", p, v)
	}
	return &builder{kind: Docker, path: p}, nil
}

func probe(ctx context.Context, p string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, p, args...).Run()
}

// delivery is how one secret reaches the builder.
type delivery struct {
	id   string
	env  string // variable of the builder's environment holding the value
	file string // or a file on the private tmpfs
}

// argv returns the builder's arguments for a build of a, with the secrets
// and ssh agents privy serves, writing the image id to iidfile.
func (b *builder) argv(a *buildArgs, ds []delivery, agents map[string]string, iidfile string) []string {
	var args []string
	if b.kind == Buildx {
		args = append(args, "buildx")
	}
	args = append(args, "build")
	args = append(args, a.rest...)
	if a.dockerfile != "" {
		args = append(args, "-f", a.dockerfile)
	}
	for _, d := range ds {
		if d.env != "" {
			args = append(args, "--secret", "id="+d.id+",env="+d.env)
		} else {
			args = append(args, "--secret", "id="+d.id+",src="+d.file)
		}
	}
	for _, id := range sortedKeys(agents) {
		args = append(args, "--ssh", id+"="+agents[id])
	}
	if a.iidfile == "" {
		args = append(args, "--iidfile", iidfile)
	}
	if b.kind == Buildx && !a.load && !a.push {
		args = append(args, "--load")
	}
	if strings.HasPrefix(a.context, "-") {
		args = append(args, "--") // a context named like a flag
	}
	return append(args, a.context)
}

// usesEnv reports whether the builder takes secrets from its environment
// (docker and buildx do; podman and buildah only from files).
func (b *builder) usesEnv() bool { return b.kind == Docker || b.kind == Buildx }

// env returns the builder's environment: privy's own, without privy's
// credentials, plus the secrets delivered through it.
func (b *builder) env(base []string, ds []delivery, values map[string][]byte) []string {
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PRIVY_TOKEN" || k == "PRIVY_MASTER_KEY" || strings.HasPrefix(k, envPrefix) ||
			k == "DOCKER_BUILDKIT" && b.kind == Docker {
			continue
		}
		env = append(env, kv)
	}
	if b.kind == Docker {
		env = append(env, "DOCKER_BUILDKIT=1")
	}
	for _, d := range ds {
		if d.env != "" {
			env = append(env, d.env+"="+string(values[d.id]))
		}
	}
	return env
}

// envPrefix names the variables that carry secrets to the builder.
const envPrefix = "PRIVY_BUILD_SECRET_"

// tag gives the built image its name.
func (b *builder) tag(ctx context.Context, id, tag string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, b.path, "tag", id, tag)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tagging %s as %s: %v: %s", id, tag, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// How the guard reads an image.
const (
	readStorage = "engine storage" // the engine's overlay2 layer directories
	readExport  = "engine export"  // GET /images/{id}/get
)

// image opens the built image for the guard, and says how it is read.
// Beside a local overlay2 engine, as root, docker's and buildx's layers
// are read where they lie (the engine's export re-packs the whole image,
// several times slower); else the engine's export is streamed. podman's
// and buildah's images are streamed from `podman save` / `buildah push` to
// stdout: never copied to a file, since a leaky image holds the secret.
func (b *builder) image(ctx context.Context, id string) (image.Image, string, error) {
	switch b.kind {
	case Docker, Buildx:
		if img, err := image.OpenEngineStorage(ctx, id); err == nil {
			return img, readStorage, nil
		}
		img, err := image.Open(ctx, id)
		return img, readExport, err
	}
	args := []string{"save", "--format", "docker-archive", id}
	if b.kind == Buildah {
		args = []string{"push", "--quiet", id, "docker-archive:/dev/stdout"}
	}
	open := func(ctx context.Context) (io.ReadCloser, error) { return startOutput(ctx, b.path, args...) }
	return image.OpenStream(b.kind+":"+id, open), b.kind + " export", nil
}

// cmdOutput is the stdout of a running command. Its end is an error if
// the command failed; Close stops the command if it still runs.
type cmdOutput struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr bytes.Buffer
	done   bool
}

func startOutput(ctx context.Context, name string, args ...string) (*cmdOutput, error) {
	c := &cmdOutput{cmd: exec.CommandContext(ctx, name, args...)}
	c.cmd.Stderr = &c.stderr
	var err error
	if c.out, err = c.cmd.StdoutPipe(); err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("exporting the image for the guard: %w", err)
	}
	return c, nil
}

func (c *cmdOutput) Read(p []byte) (int, error) {
	n, err := c.out.Read(p)
	if err == io.EOF && !c.done {
		c.done = true
		if werr := c.cmd.Wait(); werr != nil {
			return n, fmt.Errorf("exporting the image for the guard: %s %s: %v: %s",
				filepath.Base(c.cmd.Path), c.cmd.Args[1], werr, strings.TrimSpace(c.stderr.String()))
		}
	}
	return n, err
}

func (c *cmdOutput) Close() error {
	if c.done {
		return nil
	}
	c.done = true
	c.out.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
	return nil
}
