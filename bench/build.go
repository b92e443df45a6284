package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/privyhq/privy/client"
)

// buildSettings are the knobs of `bench build`; the defaults are what
// `make bench` uses.
type buildSettings struct {
	privy, docker, base string
	work, out           string
	runs                int
	size                int64 // bytes of random data the Dockerfile writes
}

// Target of the build milestone: privy build, guard included, within 10 %
// of the plain build it wraps.
const targetBuildRatio = 1.10

const (
	privyBuildTag = "bench/build:privy"
	plainBuildTag = "bench/build:plain"
	// buildMarker starts a comment in every RUN line of the benchmark's
	// Dockerfile, so that its build-cache records can be told from anyone
	// else's on a shared engine and pruned, and no one else's.
	buildMarker = "privy-bench-build-"
	// buildCmdTimeout bounds one build or docker call, so that a stuck
	// engine cannot hold `make bench`.
	buildCmdTimeout = 10 * time.Minute
)

// privyBuildLine is what privy build prints on stderr after a clean guard.
var privyBuildLine = regexp.MustCompile(`privy: built (sha256:[0-9a-f]+); guard: no delivered secret in the image \((\d+) secrets checked in ([0-9.]+)s(?:, read from the [a-z ]+)?\)`)

func buildCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s buildSettings
	fs := flag.NewFlagSet("bench build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.privy, "privy", "", "privy binary to benchmark (required)")
	fs.StringVar(&s.docker, "docker", "/usr/bin/docker", "docker CLI with BuildKit built in (before 23.0), for both builds")
	fs.StringVar(&s.base, "base", "privy-test/busybox", "base image of the Dockerfile (scripts/test-env.sh makes it)")
	fs.StringVar(&s.work, "work", "", "scratch directory (required)")
	fs.StringVar(&s.out, "out", "", "also write the Markdown report to this file")
	fs.IntVar(&s.runs, "n", 10, "measured builds of each kind (the report gives medians)")
	fs.Int64Var(&s.size, "size", 100_000_000, "bytes of random data the Dockerfile writes into the image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.privy == "" || s.work == "" {
		return errors.New("bench build: -privy and -work are required")
	}
	if s.runs < 1 || s.size < 1 {
		return errors.New("bench build: -n and -size must be at least 1")
	}
	rep, err := runBuildSuite(ctx, s, stderr)
	if err != nil {
		return err
	}
	return writeReport(rep.markdown(), s.out, stdout)
}

// buildBench is the fixture both kinds of build run against: a privy
// server holding secrets a and b, and a build context mounting both.
type buildBench struct {
	s        buildSettings
	dir      string // everything of the benchmark's, removed at the end
	context  string
	marker   string
	socket   string
	token    string
	values   map[string][]byte // secret id (= store path) → value
	engine   string            // the engine's version, for the report
	imageLen int64             // size of the built image, for the report
}

// buildRun is one timed build.
type buildRun struct {
	took  time.Duration
	guard time.Duration // privy only, as it printed it (0.1 s resolution)
	// export is, for privy only, a second read of the new image's export
	// from the engine after the build, untimed in took: the part of the
	// guard that is the engine's.
	export time.Duration
}

// buildReport holds the measurements of a run of `bench build`.
type buildReport struct {
	b            *buildBench
	privy, plain []buildRun // pair i is privy[i] and plain[i]
}

// dockerfile is the benchmark's Dockerfile: a layer of incompressible
// data, so that the guard has an image of the given size to read, and two
// steps that each mount one secret.
func dockerfile(base string, size int64, marker string) string {
	return fmt.Sprintf(`FROM %s
RUN head -c %d /dev/urandom > /data.bin # %s
RUN --mount=type=secret,id=a,required=true sha256sum /run/secrets/a > /a.sum # %s
RUN --mount=type=secret,id=b,required=true sha256sum /run/secrets/b > /b.sum # %s
`, base, size, marker, marker, marker)
}

func runBuildSuite(ctx context.Context, s buildSettings, log io.Writer) (rep *buildReport, err error) {
	if err := os.MkdirAll(s.work, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.work, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	b := &buildBench{s: s, dir: dir, context: filepath.Join(dir, "ctx"),
		marker: buildMarker + randomHex(6), socket: filepath.Join(dir, "privy.sock"), values: map[string][]byte{}}
	if b.engine, err = b.dockerOut(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		return nil, fmt.Errorf("no Docker Engine answers (start one with scripts/test-env.sh): %w", err)
	}
	if _, err := b.dockerOut(ctx, "image", "inspect", "--format", "{{.Id}}", s.base); err != nil {
		return nil, fmt.Errorf("base image %s is missing (scripts/test-env.sh makes it): %w", s.base, err)
	}
	if err := os.MkdirAll(b.context, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(b.context, "Dockerfile"), []byte(dockerfile(s.base, s.size, b.marker)), 0o644); err != nil {
		return nil, err
	}

	dataDir := filepath.Join(dir, "data")
	if b.token, err = initDataDir(ctx, s.privy, dataDir); err != nil {
		return nil, err
	}
	srv, err := startServer(ctx, privyArgs(s.privy, dataDir, b.socket, "batch"), b.socket, filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := srv.stop(); err == nil && serr != nil {
			err = serr
		}
	}()
	c, err := client.New(b.socket, client.WithToken(b.token))
	if err != nil {
		return nil, err
	}
	for _, id := range []string{"a", "b"} {
		b.values[id] = []byte(randomHex(32))
		if _, err := c.PutSecret(ctx, id, b.values[id]); err != nil {
			return nil, fmt.Errorf("storing secret %s: %w", id, err)
		}
	}
	// Whatever happens, no image or build cache of the benchmark stays in
	// the engine, even after an interrupt.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		b.dockerOut(cctx, "image", "rm", "--force", privyBuildTag, plainBuildTag)
		if perr := b.pruneCache(cctx); err == nil && perr != nil {
			err = perr
		}
	}()

	fmt.Fprintf(log, "bench: images of %s bytes of random data: 1 unmeasured build of each kind, then %d of each, alternating privy, plain, plain, privy, …\n",
		count(int(s.size)), s.runs)
	if _, err := b.measure(ctx, true); err != nil {
		return nil, fmt.Errorf("warm-up, privy build: %w", err)
	}
	if _, err := b.measure(ctx, false); err != nil {
		return nil, fmt.Errorf("warm-up, plain build: %w", err)
	}
	rep = &buildReport{b: b}
	for i := range s.runs {
		// A, B, B, A, …: each kind runs first in half the pairs, so that
		// a machine getting busier or quieter moves both alike.
		for _, privy := range []bool{i%2 == 0, i%2 == 1} {
			r, err := b.measure(ctx, privy)
			if err != nil {
				return nil, fmt.Errorf("run %d, %s build: %w", i+1, kindName(privy), err)
			}
			if privy {
				rep.privy = append(rep.privy, r)
				fmt.Fprintf(log, "bench: run %2d privy %7.2f s (guard %.1f s; the engine's export alone %.2f s)\n",
					i+1, r.took.Seconds(), r.guard.Seconds(), r.export.Seconds())
			} else {
				rep.plain = append(rep.plain, r)
				fmt.Fprintf(log, "bench: run %2d plain %7.2f s\n", i+1, r.took.Seconds())
			}
		}
	}
	return rep, nil
}

func kindName(privy bool) string {
	if privy {
		return "privy"
	}
	return "plain"
}

// measure runs one build of either kind, then removes its image and build
// cache (untimed), so that every build starts from the same engine.
func (b *buildBench) measure(ctx context.Context, privy bool) (buildRun, error) {
	var r buildRun
	var id string
	var err error
	if privy {
		if r, id, err = b.privyBuild(ctx); err == nil {
			r.export, err = exportImage(ctx, id)
		}
	} else {
		r, id, err = b.plainBuild(ctx)
		if err == nil && b.imageLen == 0 {
			if n, ierr := b.dockerOut(ctx, "image", "inspect", "--format", "{{.Size}}", id); ierr == nil {
				b.imageLen, _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	if id != "" {
		if _, rerr := b.dockerOut(ctx, "image", "rm", "--force", id); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return r, err
	}
	return r, b.pruneCache(ctx)
}

// privyBuildArgs and plainBuildArgs are the two commands, with the
// build context last.
func privyBuildArgs() []string {
	return []string{"build", "--no-cache", "--network", "none", "-t", privyBuildTag}
}

func plainBuildArgs() []string {
	return []string{"build", "--no-cache", "--network", "none", "--secret", "id=a,env=A", "--secret", "id=b,env=B", "-t", plainBuildTag}
}

// privyBuild runs privy build with the secrets from the server, and reads
// the image and the guard's time from what it prints.
func (b *buildBench) privyBuild(ctx context.Context) (buildRun, string, error) {
	env := append(childEnv(), "PRIVY_ADDR="+b.socket, "PRIVY_TOKEN="+b.token,
		"PRIVY_DOCKER="+b.s.docker, "PRIVY_PRIVATE_DIR=-")
	took, out, err := b.timedCommand(ctx, env, b.s.privy, append(privyBuildArgs(), b.context)...)
	if err != nil {
		return buildRun{}, "", err
	}
	m := privyBuildLine.FindSubmatch(out)
	if m == nil {
		return buildRun{}, "", fmt.Errorf("privy build printed no guard line; the end of its output:\n%s", lastLines(out, 10))
	}
	if n, _ := strconv.Atoi(string(m[2])); n != len(b.values) {
		return buildRun{}, "", fmt.Errorf("privy build's guard checked %d secrets, want %d", n, len(b.values))
	}
	guard, err := strconv.ParseFloat(string(m[3]), 64)
	if err != nil {
		return buildRun{}, "", fmt.Errorf("reading the guard's time %q: %w", m[3], err)
	}
	return buildRun{took: took, guard: time.Duration(guard * float64(time.Second))}, string(m[1]), nil
}

// plainBuild runs the docker build privy wraps, with the same secrets in
// the docker CLI's environment (never in its arguments).
func (b *buildBench) plainBuild(ctx context.Context) (buildRun, string, error) {
	env := append(childEnv(), "DOCKER_BUILDKIT=1", "A="+string(b.values["a"]), "B="+string(b.values["b"]))
	took, _, err := b.timedCommand(ctx, env, b.s.docker, append(plainBuildArgs(), b.context)...)
	if err != nil {
		return buildRun{}, "", err
	}
	id, err := b.dockerOut(ctx, "image", "inspect", "--format", "{{.Id}}", plainBuildTag)
	return buildRun{took: took}, id, err
}

// timedCommand runs a build and returns its wall-clock time and its
// combined output.
func (b *buildBench) timedCommand(ctx context.Context, env []string, name string, args ...string) (time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, buildCmdTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &out
	cmd.SysProcAttr = childProcAttr()
	// SIGINT lets privy stop its builder, and the docker CLI cancel the
	// build in the engine, before they exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 30 * time.Second
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, out.Bytes(), fmt.Errorf("%s %s: %w; the end of its output:\n%s", filepath.Base(name), args[0], err, lastLines(out.Bytes(), 10))
	}
	return took, out.Bytes(), nil
}

// dockerOut runs a docker command and returns its trimmed stdout.
func (b *buildBench) dockerOut(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, buildCmdTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, b.s.docker, args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = childEnv(), &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// exportImage reads the engine's export of image id (GET
// /images/{id}/get, the `docker save` stream the guard scans) to the end
// and discards it: how long the engine takes to hand the image out.
func exportImage(ctx context.Context, id string) (time.Duration, error) {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		p, ok := strings.CutPrefix(h, "unix://")
		if !ok {
			return 0, fmt.Errorf("DOCKER_HOST=%s: only unix:// sockets are supported", h)
		}
		sock = p
	}
	var d net.Dialer
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression: true,
	}}
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, buildCmdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/images/"+id+"/get", nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("exporting %s from the engine: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("exporting %s from the engine: %s", id, resp.Status)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0, fmt.Errorf("exporting %s from the engine: %w", id, err)
	}
	return time.Since(start), nil
}

// cacheRecord is a build-cache record as `docker system df -v` lists it.
type cacheRecord struct {
	ID, Parent, Description string
}

// pruneCache removes the build-cache records of the benchmark's builds
// (their RUN lines carry the marker), and no one else's: a --no-cache
// build leaves one per step, and the one of the data step holds the
// image's data after the image is gone. A record whose child is still
// there is not pruned, so children go first.
func (b *buildBench) pruneCache(ctx context.Context) error {
	for range 10 {
		out, err := b.dockerOut(ctx, "system", "df", "-v", "--format", "{{json .BuildCache}}")
		if err != nil {
			return err
		}
		var all []cacheRecord
		if err := json.Unmarshal([]byte(out), &all); err != nil {
			return fmt.Errorf("reading the engine's build cache: %w", err)
		}
		ours := slices.DeleteFunc(all, func(r cacheRecord) bool { return !strings.Contains(r.Description, b.marker) })
		if len(ours) == 0 {
			return nil
		}
		parents := map[string]bool{}
		for _, r := range ours {
			parents[r.Parent] = true
		}
		for _, r := range ours {
			if !parents[r.ID] {
				if _, err := b.dockerOut(ctx, "builder", "prune", "--force", "--filter", "id="+r.ID); err != nil {
					return err
				}
			}
		}
	}
	return fmt.Errorf("the build cache still holds records of %s after pruning them", b.marker)
}

func randomHex(n int) string {
	p := make([]byte, n)
	rand.Read(p)
	return hex.EncodeToString(p)
}

// lastLines returns the last n lines of out, for error messages.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func secondsOf(rs []buildRun, f func(buildRun) time.Duration) []float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r).Seconds()
	}
	return xs
}

func tookOfBuild(r buildRun) time.Duration   { return r.took }
func guardOfBuild(r buildRun) time.Duration  { return r.guard }
func exportOfBuild(r buildRun) time.Duration { return r.export }

// paired returns f(privy[i], plain[i]) for every pair.
func (r *buildReport) paired(f func(privy, plain buildRun) float64) []float64 {
	xs := make([]float64, 0, len(r.privy))
	for i, p := range r.privy {
		if i < len(r.plain) {
			xs = append(xs, f(p, r.plain[i]))
		}
	}
	return xs
}

// stats formats the median, min and max of xs.
func stats(xs []float64, format func(float64) string) (string, string, string) {
	if len(xs) == 0 {
		return "", "", ""
	}
	return format(median(xs)), format(slices.Min(xs)), format(slices.Max(xs))
}

func fmtSecs(x float64) string  { return fmt.Sprintf("%.2f s", x) }
func fmtRatio(x float64) string { return fmt.Sprintf("%.2f×", x) }
func fmtShare(x float64) string { return fmt.Sprintf("%.0f %%", 100*x) }

func (r *buildReport) markdown() string {
	var b strings.Builder
	s := r.b.s
	ratios := r.paired(func(p, q buildRun) float64 { return p.took.Seconds() / q.took.Seconds() })
	unguarded := r.paired(func(p, q buildRun) float64 { return (p.took - p.guard).Seconds() / q.took.Seconds() })
	shares := r.paired(func(p, _ buildRun) float64 { return p.guard.Seconds() / p.took.Seconds() })
	ratio := median(ratios)

	b.WriteString("| benchmark | configuration | median | min | max | target | met? |\n")
	b.WriteString("|---|---|--:|--:|--:|---|---|\n")
	row := func(bench, config string, med, lo, hi string, target, met string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", bench, config, med, lo, hi, target, met)
	}
	med, lo, hi := stats(secondsOf(r.privy, tookOfBuild), fmtSecs)
	row("privy build", "`privy "+strings.Join(privyBuildArgs(), " ")+" ctx`: 2 store secrets, masked output, guard, then tagging",
		med, lo, hi, "—", "—")
	med, lo, hi = stats(secondsOf(r.plain, tookOfBuild), fmtSecs)
	row("plain build", "`DOCKER_BUILDKIT=1 docker "+strings.Join(plainBuildArgs(), " ")+" ctx`, A and B in its environment",
		med, lo, hi, "— (the baseline)", "—")
	med, lo, hi = stats(ratios, fmtRatio)
	row("privy ÷ plain", "wall time, paired by run", med, lo, hi,
		fmt.Sprintf("≤ %.2f×", targetBuildRatio), yesNo(len(ratios) > 0 && ratio <= targetBuildRatio))
	med, lo, hi = stats(secondsOf(r.privy, guardOfBuild), fmtSecs)
	row("guard", "privy's own \"checked in X s\" (0.1 s resolution)", med, lo, hi, "—", "—")
	med, lo, hi = stats(secondsOf(r.privy, exportOfBuild), fmtSecs)
	row("the engine's export alone", "the same image's `GET /images/{id}/get` read to the end and discarded, after each privy build (untimed there)",
		med, lo, hi, "— (the stream the guard reads)", "—")
	med, lo, hi = stats(shares, fmtShare)
	row("guard's share", "guard ÷ privy build, per run", med, lo, hi, "—", "—")
	med, lo, hi = stats(unguarded, fmtRatio)
	row("privy without its guard ÷ plain", "(privy build − guard) ÷ plain, paired by run", med, lo, hi, "—", "—")

	fmt.Fprintf(&b, "\nMedians, minima and maxima of %d builds of each kind, after one unmeasured build of each. "+
		"Builds alternate privy, plain, plain, privy, … (A, B, B, A), so that each kind runs first in half the pairs; "+
		"ratios are per pair (run *i* of each), then their median. "+
		"Times are the wall-clock time of the command, started and waited for by the harness. "+
		"Every build is `--no-cache`, and its image and build cache are removed before the next one. "+
		"The image is %s; Docker Engine %s.\n",
		s.runs, sizeOrUnknown(r.b.imageLen), r.b.engine)

	b.WriteString("\n### Every run\n\n| run | first | privy build | guard | engine's export | plain build | privy ÷ plain |\n|--:|---|--:|--:|--:|--:|--:|\n")
	for i, p := range r.privy {
		if i >= len(r.plain) {
			break
		}
		q := r.plain[i]
		fmt.Fprintf(&b, "| %d | %s | %s | %.1f s | %s | %s | %.2f× |\n", i+1, kindName(i%2 == 0),
			fmtSecs(p.took.Seconds()), p.guard.Seconds(), fmtSecs(p.export.Seconds()), fmtSecs(q.took.Seconds()), p.took.Seconds()/q.took.Seconds())
	}
	fmt.Fprintf(&b, "\nThe Dockerfile (ctx/Dockerfile; the comment marks the benchmark's build-cache records, pruned after each build):\n\n```Dockerfile\n%s```\n",
		dockerfile(s.base, s.size, buildMarker+"…"))
	return b.String()
}

func sizeOrUnknown(n int64) string {
	if n <= 0 {
		return "of unknown size"
	}
	return fmt.Sprintf("%s bytes (%s, `docker image inspect`'s Size)", count(int(n)), size(n))
}
