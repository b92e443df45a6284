// Package build runs container builds with secrets from privy: it reads
// the Dockerfile's secret and ssh mounts with BuildKit's parser, resolves
// each id (a --private file, privy.yaml, the host's private files, the
// store), runs the real builder with the values in its environment or on a
// private tmpfs and ssh ids served by an agent whose keys stay in the
// server, masks the values in the builder's output, and scans the new image
// for them before tagging it.
package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/manifest"
	"github.com/privyhq/privy/internal/mask"
	"github.com/privyhq/privy/internal/scan"
	"github.com/privyhq/privy/internal/scan/image"
)

// Options configure one build.
type Options struct {
	// Args are the builder's arguments as the user typed them, build
	// context included; privy passes them through, except that it tags the
	// image itself (-t) once the guard has passed.
	Args    []string
	Private []Private
	// Builder is docker, buildx, podman, buildah, or "" to detect.
	Builder string
	// Docker is the docker CLI to run ("" = docker on PATH).
	Docker string
	// Manifest is privy.yaml's path; "" means privy.yaml beside the
	// Dockerfile, if there is one.
	Manifest   string
	PrivateDir string // "" = DefaultPrivateDir; "-" = none
	NoGuard    bool
	DryRun     bool
	// BustCache folds a fingerprint of each delivered value into the steps
	// that mount it (see cache.go), keyed by the key in CacheKeyFile.
	BustCache    bool
	CacheKeyFile string
	// Client reads the store; nil when there is no token (store ids then
	// do not resolve).
	Client *client.Client
	// ID names the build in the server's audit log (see NewID).
	ID string

	Stdout, Stderr io.Writer
	Environ        []string            // the builder's base environment (os.Environ())
	Getenv         func(string) string // for env: sources
}

// Result describes a finished build.
type Result struct {
	Builder   string // kind and program, e.g. "docker (/usr/bin/docker)"
	ImageID   string
	Tags      []string
	Secrets   []*Secret
	SSH       []*SSH
	Warnings  []Unresolved
	Unguarded []string // ids whose values the guard could not look for
	BuildTime time.Duration
	GuardTime time.Duration
	GuardRead string // how the guard read the image: readStorage, readExport or "KIND export"
	Findings  []scan.Finding
}

// BuilderError is a builder that failed.
type BuilderError struct {
	Builder string
	Code    int
}

func (e *BuilderError) Error() string {
	return fmt.Sprintf("%s build failed with exit status %d (its output is above)", e.Builder, e.Code)
}

// LeakError is a build whose image holds a delivered secret.
type LeakError struct {
	ImageID  string
	Tags     []string // the tags that were not given
	Findings []scan.Finding
}

func (e *LeakError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the build leaked delivered secrets into image %s (%d findings); it was not tagged", short(e.ImageID), len(e.Findings))
	for i, f := range e.Findings {
		if i == 20 {
			fmt.Fprintf(&b, "\n  … and %d more", len(e.Findings)-i)
			break
		}
		fmt.Fprintf(&b, "\n  %s: %s", f.Secret, f.Location())
	}
	return b.String()
}

func short(id string) string {
	if s, ok := strings.CutPrefix(id, "sha256:"); ok && len(s) > 12 {
		return s[:12]
	}
	return id
}

// NewID returns a fresh build id for the audit log.
func NewID() string {
	var b [6]byte
	rand.Read(b[:])
	return "b-" + hex.EncodeToString(b[:])
}

// Run performs the build. Nothing is started until every id is resolved;
// whatever happens, the private directory and the agents are gone when it
// returns.
func Run(ctx context.Context, o Options) (res *Result, err error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	a, err := parseBuildArgs(o.Args)
	if err != nil {
		return nil, err
	}
	dockerfile := a.dockerfile
	if dockerfile == "" {
		dockerfile = filepath.Join(a.context, "Dockerfile")
	} else if dockerfile == "-" {
		return nil, errors.New("a Dockerfile from stdin (-f -) is not supported: privy must read it to resolve its secrets")
	}
	if fi, err := os.Stat(a.context); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("build context %s is not a directory", a.context)
	}
	ms, err := ParseDockerfile(dockerfile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no Dockerfile at %s (pass -f FILE, or give the context directory that has one): %w", dockerfile, fs.ErrNotExist)
		}
		return nil, err
	}
	mf, err := loadManifest(o.Manifest, dockerfile)
	if err != nil {
		return nil, err
	}
	privateDirPath := o.PrivateDir
	switch privateDirPath {
	case "":
		privateDirPath = DefaultPrivateDir
	case "-":
		privateDirPath = ""
	}
	r := &resolver{
		manifest:   mf,
		private:    map[string]string{},
		privateDir: privateDirPath,
		client:     o.Client,
		getenv:     o.Getenv,
		argSecrets: set(a.secrets),
		argSSH:     set(a.ssh),
	}
	for _, p := range o.Private {
		r.private[p.ID] = p.Src
	}
	// Finding the builder starts docker CLIs; do it while ids resolve.
	type found struct {
		b   *builder
		err error
	}
	builderCh := make(chan found, 1)
	go func() {
		b, err := findBuilder(ctx, o.Builder, o.Docker)
		builderCh <- found{b, err}
	}()
	secrets, sshIDs, warnings, err := r.resolveAll(ctx, ms)
	fb := <-builderCh
	if err != nil {
		return nil, err
	}
	res = &Result{Secrets: secrets, SSH: sshIDs, Warnings: warnings, Tags: a.tags}
	defer func() {
		for _, s := range secrets {
			clear(s.Value)
		}
	}()
	b := fb.b
	if fb.err != nil {
		return nil, fb.err
	}
	res.Builder = b.kind + " (" + b.path + ")"
	if a.push && !o.NoGuard {
		return nil, errors.New("the build pushes its image (--push or an --output to a registry or file), so the guard cannot scan it first: build into the local image store, let privy scan it, then push; or pass --no-guard")
	}
	if o.DryRun {
		return res, nil
	}

	dir, err := privateDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	values := map[string][]byte{}
	var ds []delivery
	for i, s := range secrets {
		if s.From == FromArgs {
			continue
		}
		values[s.ID] = s.Value
		d := delivery{id: s.ID}
		if b.usesEnv() && len(s.Value) <= maxEnvValue && bytes.IndexByte(s.Value, 0) < 0 {
			d.env = envPrefix + strconv.Itoa(i)
		} else {
			d.file = filepath.Join(dir, "secret-"+strconv.Itoa(i))
			if err := os.WriteFile(d.file, s.Value, 0o600); err != nil {
				return nil, fmt.Errorf("writing secret %s to the build's tmpfs: %w", s.ID, err)
			}
		}
		ds = append(ds, d)
	}
	agents := map[string]string{}
	for i, s := range sshIDs {
		if s.From == FromArgs {
			continue
		}
		ka, err := newKeyAgent(ctx, o.Client, s.Keys)
		if err != nil {
			return nil, err
		}
		sock := filepath.Join(dir, "agent-"+strconv.Itoa(i)+".sock")
		srv, err := serveAgent(sock, ka)
		if err != nil {
			return nil, err
		}
		defer srv.close()
		agents[s.ID] = sock
	}

	if o.BustCache {
		if err := bust(a, dockerfile, dir, o.CacheKeyFile, ms, secrets); err != nil {
			return nil, err
		}
	}

	iidfile := a.iidfile
	if iidfile == "" {
		iidfile = filepath.Join(dir, "iid")
	}
	var vals [][]byte
	for _, v := range values {
		vals = append(vals, v)
	}
	stdout, err := mask.New(o.Stdout, vals)
	if err != nil {
		return nil, err
	}
	stderr, err := mask.New(o.Stderr, vals)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, b.path, b.argv(a, ds, agents, iidfile)...)
	cmd.Env = b.env(o.Environ, ds, values)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	err = cmd.Run()
	stdout.Flush()
	stderr.Flush()
	res.BuildTime = time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("build interrupted: %w", ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &BuilderError{Builder: b.kind, Code: ee.ExitCode()}
		}
		return nil, fmt.Errorf("running %s: %w", b.path, err)
	}
	id, err := os.ReadFile(iidfile)
	if err != nil || len(bytes.TrimSpace(id)) == 0 {
		return nil, fmt.Errorf("the builder wrote no image id (%s): %v", iidfile, err)
	}
	res.ImageID = string(bytes.TrimSpace(id))

	if !o.NoGuard {
		start := time.Now()
		findings, unguarded, err := guard(ctx, b, res.ImageID, secrets, &res.GuardRead)
		res.GuardTime = time.Since(start)
		res.Unguarded = unguarded
		if err != nil {
			return res, fmt.Errorf("the leak guard could not scan image %s, so it was not tagged: %w", short(res.ImageID), err)
		}
		if len(findings) > 0 {
			res.Findings = findings
			return res, &LeakError{ImageID: res.ImageID, Tags: a.tags, Findings: findings}
		}
	}
	for _, t := range a.tags {
		// Through the API when the guard read the engine's own storage (so
		// it is the engine the builder used); else, or if that fails, the
		// builder's CLI.
		if res.GuardRead == readStorage && image.TagEngineImage(ctx, res.ImageID, t) == nil {
			continue
		}
		if err := b.tag(ctx, res.ImageID, t); err != nil {
			return res, err
		}
	}
	return res, nil
}

// bust writes the Dockerfile with the cache arguments into dir and points
// the builder at it.
func bust(a *buildArgs, dockerfile, dir, keyFile string, ms *Mounts, secrets []*Secret) error {
	key, err := cacheKey(keyFile)
	if err != nil {
		return err
	}
	index := map[string]int{}
	for i, s := range secrets {
		if s.From == FromArgs {
			continue
		}
		index[s.ID] = i
		a.rest = append(a.rest, "--build-arg", cacheArg(i)+"="+fingerprint(key, s.Value))
	}
	text, err := os.ReadFile(dockerfile)
	if err != nil {
		return fmt.Errorf("reading Dockerfile: %w", err)
	}
	out := filepath.Join(dir, filepath.Base(dockerfile))
	if err := os.WriteFile(out, bustCache(text, ms.Runs, index), 0o644); err != nil {
		return fmt.Errorf("writing the cache-busting Dockerfile: %w", err)
	}
	// The builder looks for DOCKERFILE.dockerignore beside the Dockerfile.
	if ig, err := os.ReadFile(dockerfile + ".dockerignore"); err == nil {
		if err := os.WriteFile(out+".dockerignore", ig, 0o644); err != nil {
			return fmt.Errorf("copying %s.dockerignore: %w", dockerfile, err)
		}
	}
	a.dockerfile = out
	return nil
}

// maxEnvValue is the largest value passed in the builder's environment;
// larger ones go through a tmpfs file (Linux limits one variable to 128 KiB).
const maxEnvValue = 64 << 10

// guard scans the built image for every delivered value and its encodings.
func guard(ctx context.Context, b *builder, id string, secrets []*Secret, read *string) ([]scan.Finding, []string, error) {
	var known []scan.Known
	var unguarded []string
	for _, s := range secrets {
		if s.From == FromArgs {
			unguarded = append(unguarded, s.ID)
			continue
		}
		known = append(known, scan.Known{Name: s.Name(), Value: s.Value})
	}
	if len(known) == 0 {
		return nil, unguarded, nil
	}
	sc, err := scan.New(scan.Options{Known: known, NoRules: true, NoFileRules: true})
	if err != nil {
		return nil, nil, err
	}
	for _, name := range sc.Skipped() {
		unguarded = append(unguarded, name)
	}
	img, how, err := b.image(ctx, id)
	if err != nil {
		return nil, unguarded, err
	}
	*read = how
	r, err := sc.ScanImage(ctx, img)
	if err != nil {
		return nil, unguarded, err
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return r.Findings[i].Layer < r.Findings[j].Layer })
	return r.Findings, unguarded, nil
}

// loadManifest reads privy.yaml: the one named, or the one beside the
// Dockerfile if it exists.
func loadManifest(name, dockerfile string) (*manifest.File, error) {
	if name == "" {
		p := filepath.Join(filepath.Dir(dockerfile), "privy.yaml")
		if _, err := os.Stat(p); err != nil {
			return nil, nil
		}
		name = p
	}
	return manifest.Load(name)
}

func set(ids []string) map[string]bool {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
