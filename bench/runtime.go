package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/privyhq/privy/api"
	"github.com/privyhq/privy/client"
)

// runtimeSettings are the knobs of `bench runtime`; the defaults are what
// `make bench` uses.
type runtimeSettings struct {
	privy, docker, image string
	work, shm, out       string
	runs                 int // docker runs of each kind
	execRuns             int // privy exec runs (and direct runs) of each kind
	files                int // files of the profile
	valueSize            int // bytes of each secret
}

// Targets of the run-time milestone: a container with a privy volume
// starts within 5 % of one with a plain tmpfs, and privy exec hands over
// to its command within 20 ms.
const (
	targetRunRatio = 1.05
	targetExecTime = 20 * time.Millisecond
)

const (
	// runtimePlugin is the volume driver's name. The engine remembers
	// every plugin it has used until it restarts, and a volume lookup
	// across drivers (docker volume rm of an unknown name) retries each
	// one that no longer answers for 30 s: one name for every run leaves
	// at most one such entry. A second benchmark at the same time fails
	// at once (the server finds the plugin socket answering).
	runtimePlugin  = "privy-bench"
	runtimeProfile = "bench"
	runtimePrefix  = "bench/runtime/" // the store paths of the profile's secrets
	// runtimeLabel marks every container of the benchmark, so that one
	// left by an interrupt can be found and removed, and no one else's.
	runtimeLabel = "privy-bench"
	// runtimeCmdTimeout bounds one docker or privy command, so that a
	// stuck engine cannot hold `make bench`.
	runtimeCmdTimeout = 2 * time.Minute
	// stampArg makes the harness print the time and exit (see stamp): the
	// command privy exec runs, which tells when it started.
	stampArg = "stamp"
)

// rootTokenLine is what `privy server --dev` prints on stdout.
var rootTokenLine = regexp.MustCompile(`Root token \(dev mode, in-memory store\): (\S+)`)

func runtimeCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s runtimeSettings
	fs := flag.NewFlagSet("bench runtime", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.privy, "privy", "", "privy binary to benchmark (required)")
	fs.StringVar(&s.docker, "docker", "/usr/bin/docker", "docker CLI, for both kinds of run")
	fs.StringVar(&s.image, "image", "privy-test/busybox", "image the containers run (scripts/test-env.sh makes it)")
	fs.StringVar(&s.work, "work", "", "scratch directory (required)")
	fs.StringVar(&s.shm, "shm", "/dev/shm", "a tmpfs, for privy exec's --dir")
	fs.StringVar(&s.out, "out", "", "also write the Markdown report to this file")
	fs.IntVar(&s.runs, "n", 20, "measured docker runs of each kind")
	fs.IntVar(&s.execRuns, "exec-n", 100, "measured privy exec runs, and direct runs of the same command")
	fs.IntVar(&s.files, "files", 10, "files of the profile")
	fs.IntVar(&s.valueSize, "size", 64, "bytes of each secret")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.privy == "" || s.work == "" {
		return errors.New("bench runtime: -privy and -work are required")
	}
	if s.runs < 1 || s.execRuns < 1 || s.files < 1 || s.valueSize < 1 {
		return errors.New("bench runtime: -n, -exec-n, -files and -size must be at least 1")
	}
	rep, err := runRuntimeSuite(ctx, s, stderr)
	if err != nil {
		return err
	}
	return writeReport(rep.markdown(), s.out, stdout)
}

// stamp prints the wall clock in nanoseconds since 1970. The harness runs
// itself this way, through privy exec and directly, to learn when the
// command started; it is the first thing bench's run does.
func stamp(stdout io.Writer) int {
	now := time.Now().UnixNano()
	fmt.Fprintln(stdout, now)
	return 0
}

// runtimeBench is the fixture: a dev privy server serving the volume
// plugin, holding a profile of s.files secrets, and a scoped token for it.
type runtimeBench struct {
	s         runtimeSettings
	dir       string // everything of the benchmark's on disk, removed at the end
	socket    string
	plugin    string // the volume driver's name: runtimePlugin
	marker    string // the value of runtimeLabel on its containers
	engine    string // the engine's version, for the report
	self      string // this binary, the command privy exec runs
	execDir   string // privy exec's --dir, on a tmpfs
	tokenFile string // the scoped token, for PRIVY_TOKEN_FILE
}

// runtimeReport holds the measurements of a run of `bench runtime`.
type runtimeReport struct {
	b            *runtimeBench
	privy, plain []time.Duration // docker runs; pair i is privy[i] and plain[i]
	exec         []execRun
}

// execRun is one round of the privy exec benchmark.
type execRun struct {
	// From the harness's start of the process to the command's stamp:
	// through privy exec, and the same command started directly.
	viaPrivy, direct time.Duration
	// Wall time to exit of `privy exec … -- true`, and of `true` alone.
	truePrivy, trueDirect time.Duration
}

func runRuntimeSuite(ctx context.Context, s runtimeSettings, log io.Writer) (rep *runtimeReport, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the privy volume plugin mounts a tmpfs for each container: run bench runtime as root")
	}
	if err := os.MkdirAll(s.work, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(s.work, "runtime-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	shm, err := os.MkdirTemp(s.shm, "privy-bench-")
	if err != nil {
		return nil, fmt.Errorf("making privy exec's directory: %w", err)
	}
	defer os.RemoveAll(shm)
	b := &runtimeBench{s: s, dir: dir, socket: filepath.Join(dir, "privy.sock"),
		plugin: runtimePlugin, marker: randomHex(6), execDir: filepath.Join(shm, "secrets"),
		tokenFile: filepath.Join(dir, "token")}
	if b.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if b.engine, err = b.dockerOut(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		return nil, fmt.Errorf("no Docker Engine answers (start one with scripts/test-env.sh): %w", err)
	}
	if _, err := b.dockerOut(ctx, "image", "inspect", "--format", "{{.Id}}", s.image); err != nil {
		return nil, fmt.Errorf("image %s is missing (scripts/test-env.sh makes it): %w", s.image, err)
	}

	srv, root, err := b.startServer(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := srv.stop(); err == nil && serr != nil {
			err = serr
		}
	}()
	if err := b.fill(ctx, root); err != nil {
		return nil, err
	}
	// Runs before the server stops: the engine can remove a volume only
	// while its driver answers.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := b.cleanEngine(cctx); err == nil && cerr != nil {
			err = cerr
		}
	}()

	rep = &runtimeReport{b: b}
	if rep.exec, err = b.measureExec(ctx, log); err != nil {
		return nil, err
	}
	if rep.privy, rep.plain, err = b.measureRuns(ctx, log); err != nil {
		return nil, err
	}
	return rep, nil
}

// startServer starts `privy server --dev` with the volume plugin and
// returns it with its root token.
func (b *runtimeBench) startServer(ctx context.Context) (*server, string, error) {
	logPath := filepath.Join(b.dir, "server.log")
	argv := []string{b.s.privy, "server", "--dev", "--socket", b.socket,
		"--docker-plugin", b.plugin, "--volume-root", filepath.Join(b.dir, "volumes"),
		// None there: the host's own private files stay out of it.
		"--host-private", filepath.Join(b.dir, "private.d")}
	srv, err := startServer(ctx, argv, b.socket, logPath)
	if err != nil {
		return nil, "", err
	}
	// The token is printed before the server answers, so it is there.
	out, err := os.ReadFile(logPath)
	m := rootTokenLine.FindSubmatch(out)
	if err != nil || m == nil {
		srv.stop()
		return nil, "", fmt.Errorf("privy server --dev printed no root token; its log:\n%s", tail(logPath, 20))
	}
	return srv, string(m[1]), nil
}

// fill stores the secrets and the profile, and writes a token that may
// read only those secrets to b.tokenFile, as a container would get.
func (b *runtimeBench) fill(ctx context.Context, root string) error {
	c, err := client.New(b.socket, client.WithToken(root))
	if err != nil {
		return err
	}
	p := api.Profile{Name: runtimeProfile}
	for i := range b.s.files {
		path := fmt.Sprintf("%ss%02d", runtimePrefix, i)
		val := make([]byte, b.s.valueSize)
		rand.Read(val)
		if _, err := c.PutSecret(ctx, path, val); err != nil {
			return fmt.Errorf("storing secret %s: %w", path, err)
		}
		p.Files = append(p.Files, api.ProfileFile{Name: fmt.Sprintf("secret-%02d", i), Secret: path})
	}
	if _, err := c.PutProfile(ctx, p); err != nil {
		return fmt.Errorf("storing profile %s: %w", p.Name, err)
	}
	tok, err := c.CreateToken(ctx, api.CreateTokenRequest{Name: "bench-exec", Rules: []string{"read:" + runtimePrefix + "**"}})
	if err != nil {
		return fmt.Errorf("creating privy exec's token: %w", err)
	}
	return os.WriteFile(b.tokenFile, []byte(tok.Token+"\n"), 0o600)
}

// measureExec runs privy exec and the same command directly, alternating.
func (b *runtimeBench) measureExec(ctx context.Context, log io.Writer) ([]execRun, error) {
	fmt.Fprintf(log, "bench: privy exec of a %d-file profile: 1 unmeasured run, then %d runs, each paired with the same command started directly\n",
		b.s.files, b.s.execRuns)
	if _, err := b.stamped(ctx, true); err != nil {
		return nil, fmt.Errorf("warm-up, privy exec: %w", err)
	}
	if err := b.checkExecDir(); err != nil {
		return nil, err
	}
	if _, err := b.stamped(ctx, false); err != nil {
		return nil, fmt.Errorf("warm-up, direct: %w", err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		return nil, err
	}
	runs := make([]execRun, b.s.execRuns)
	for i := range runs {
		r := &runs[i]
		// A, B, B, A, …, as in the docker runs below.
		for _, privy := range []bool{i%2 == 0, i%2 == 1} {
			d, err := b.stamped(ctx, privy)
			if err != nil {
				return nil, fmt.Errorf("run %d: %w", i+1, err)
			}
			argv := []string{truePath}
			if privy {
				r.viaPrivy = d
				argv = b.execArgv(truePath)
			} else {
				r.direct = d
			}
			took, _, err := b.timed(ctx, b.execEnv(), argv...)
			if err != nil {
				return nil, fmt.Errorf("run %d: %w", i+1, err)
			}
			if privy {
				r.truePrivy = took
			} else {
				r.trueDirect = took
			}
		}
	}
	return runs, nil
}

// execArgv is privy exec of the profile, with cmd as its command.
func (b *runtimeBench) execArgv(cmd ...string) []string {
	return append([]string{b.s.privy, "exec", "--addr", b.socket, "--profile", runtimeProfile, "--dir", b.execDir, "--"}, cmd...)
}

func (b *runtimeBench) execEnv() []string {
	return append(childEnv(), "PRIVY_TOKEN_FILE="+b.tokenFile)
}

// stamped runs `bench stamp`, through privy exec or directly, and returns
// the time from just before the harness started the process to the
// command's stamp.
func (b *runtimeBench) stamped(ctx context.Context, privy bool) (time.Duration, error) {
	argv := []string{b.self, stampArg}
	if privy {
		argv = b.execArgv(argv...)
	}
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, runtimeCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = b.execEnv(), &out, &errOut
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errOut.String()))
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(out.String()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s printed no time: %q", strings.Join(argv, " "), out.String())
	}
	// Wall clocks of two processes: start's monotonic reading cannot be used.
	return time.Unix(0, ns).Sub(start.Round(0)), nil
}

// checkExecDir checks that privy exec placed every file of the profile.
func (b *runtimeBench) checkExecDir() error {
	ents, err := os.ReadDir(b.execDir)
	if err != nil {
		return fmt.Errorf("reading privy exec's directory: %w", err)
	}
	if len(ents) != b.s.files {
		return fmt.Errorf("privy exec placed %d files in %s, want %d", len(ents), b.execDir, b.s.files)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err != nil || fi.Size() != int64(b.s.valueSize) {
			return fmt.Errorf("privy exec placed %s without the secret's %d bytes (%v)", e.Name(), b.s.valueSize, err)
		}
	}
	return nil
}

// runArgs is `docker run` of cmd with the profile's privy volume, or with
// a plain tmpfs, at /run/secrets. The volume is anonymous, so that --rm
// removes it as it would a real container's, and thus not readonly: the
// engine refuses readonly on an anonymous volume.
func (b *runtimeBench) runArgs(privy bool, cmd ...string) []string {
	args := []string{"run", "--rm", "--network", "none", "--label", runtimeLabel + "=" + b.marker}
	if privy {
		args = append(args, "--mount", "type=volume,dst=/run/secrets,volume-driver="+b.plugin+",volume-opt=profile="+runtimeProfile)
	} else {
		args = append(args, "--tmpfs", "/run/secrets")
	}
	return append(append(args, b.s.image), cmd...)
}

// measureRuns alternates the two kinds of docker run after a warm-up of
// each that checks what /run/secrets holds.
func (b *runtimeBench) measureRuns(ctx context.Context, log io.Writer) (privy, plain []time.Duration, err error) {
	fmt.Fprintf(log, "bench: docker run with a privy volume of %d files and with a plain tmpfs: 1 unmeasured run of each, then %d of each, alternating privy, tmpfs, tmpfs, privy, …\n",
		b.s.files, b.s.runs)
	for _, kind := range []bool{true, false} {
		want := 0
		if kind {
			want = b.s.files
		}
		_, out, err := b.timed(ctx, childEnv(), append([]string{b.s.docker}, b.runArgs(kind, "ls", "/run/secrets")...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("warm-up, %s: %w", runKind(kind), err)
		}
		if got := len(strings.Fields(string(out))); got != want {
			return nil, nil, fmt.Errorf("warm-up, %s: /run/secrets holds %d files, want %d", runKind(kind), got, want)
		}
	}
	for i := range b.s.runs {
		// A, B, B, A, …: each kind runs first in half the pairs, so that a
		// machine getting busier or quieter moves both alike.
		for _, kind := range []bool{i%2 == 0, i%2 == 1} {
			took, _, err := b.timed(ctx, childEnv(), append([]string{b.s.docker}, b.runArgs(kind, "true")...)...)
			if err != nil {
				return nil, nil, fmt.Errorf("run %d, %s: %w", i+1, runKind(kind), err)
			}
			if kind {
				privy = append(privy, took)
			} else {
				plain = append(plain, took)
			}
			fmt.Fprintf(log, "bench: run %2d %-12s %7.3f s\n", i+1, runKind(kind), took.Seconds())
		}
	}
	return privy, plain, nil
}

func runKind(privy bool) string {
	if privy {
		return "privy volume"
	}
	return "tmpfs"
}

// timed runs argv and returns its wall time and stdout.
func (b *runtimeBench) timed(ctx context.Context, env []string, argv ...string) (time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, runtimeCmdTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, &out, &errOut
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		return took, nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(errOut.String()))
	}
	return took, out.Bytes(), nil
}

// dockerOut runs a docker command and returns its trimmed stdout.
func (b *runtimeBench) dockerOut(ctx context.Context, args ...string) (string, error) {
	_, out, err := b.timed(ctx, childEnv(), append([]string{b.s.docker}, args...)...)
	return strings.TrimSpace(string(out)), err
}

// cleanEngine removes the containers of the benchmark that an
// interrupted run may have left, and no one else's, with their anonymous
// volumes. It lists no volumes: the engine asks every volume plugin it has
// ever used for that, each that no longer answers for half a minute.
func (b *runtimeBench) cleanEngine(ctx context.Context) error {
	ids, err := b.dockerOut(ctx, "ps", "--all", "--quiet", "--filter", "label="+runtimeLabel+"="+b.marker)
	if err != nil || ids == "" {
		return err
	}
	_, err = b.dockerOut(ctx, append([]string{"rm", "--force", "--volumes"}, strings.Fields(ids)...)...)
	return err
}

// summary is the median, 90th percentile (nearest rank), minimum and
// maximum of a sample.
type summary struct{ med, p90, min, max float64 }

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Sorted(slices.Values(xs))
	i := int(math.Ceil(0.9*float64(len(s)))) - 1
	return summary{med: median(s), p90: s[max(i, 0)], min: s[0], max: s[len(s)-1]}
}

func durations(ds []time.Duration) []float64 {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return xs
}

// pairs returns f(a[i], b[i]) for every i of both.
func pairs(a, b []time.Duration, f func(a, b time.Duration) float64) []float64 {
	xs := make([]float64, 0, len(a))
	for i := range min(len(a), len(b)) {
		xs = append(xs, f(a[i], b[i]))
	}
	return xs
}

func ratioOf(a, b time.Duration) float64 { return float64(a) / float64(b) }
func diffOf(a, b time.Duration) float64  { return float64(a - b) }

// of returns one field of every exec run.
func (r *runtimeReport) of(f func(execRun) time.Duration) []time.Duration {
	ds := make([]time.Duration, len(r.exec))
	for i, e := range r.exec {
		ds[i] = f(e)
	}
	return ds
}

// nsSecs and nsMsecs format nanoseconds.
func nsSecs(x float64) string  { return fmt.Sprintf("%.3f s", x/1e9) }
func nsMsecs(x float64) string { return fmt.Sprintf("%.2f ms", x/1e6) }

func (r *runtimeReport) markdown() string {
	var b strings.Builder
	s := r.b.s
	b.WriteString("| benchmark | configuration | median | p90 | min | max | target | met? |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|---|---|\n")
	row := func(bench, config string, xs []float64, format func(float64) string, target string, met func(summary) bool) {
		m := summarize(xs)
		ok := "—"
		if met != nil {
			ok = yesNo(len(xs) > 0 && met(m))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", bench, config,
			format(m.med), format(m.p90), format(m.min), format(m.max), target, ok)
	}
	ratio := func(x float64) string { return fmtRatio(x) }
	shown := func(args []string) string {
		return "`docker " + strings.ReplaceAll(strings.Join(args, " "), runtimeLabel+"="+r.b.marker, runtimeLabel+"=…") + "`"
	}

	row("docker run, privy volume", shown(r.b.runArgs(true, "true"))+fmt.Sprintf(", a profile of %d files", s.files),
		durations(r.privy), nsSecs, "—", nil)
	row("docker run, plain tmpfs", shown(r.b.runArgs(false, "true")), durations(r.plain), nsSecs, "— (the baseline)", nil)
	row("privy volume ÷ tmpfs", "wall time, paired by run", pairs(r.privy, r.plain, ratioOf), ratio,
		fmt.Sprintf("median ≤ %.2f×", targetRunRatio), func(m summary) bool { return m.med <= targetRunRatio })
	row("privy volume − tmpfs", "wall time, paired by run", pairs(r.privy, r.plain, diffOf), nsSecs, "—", nil)

	via, direct := r.of(func(e execRun) time.Duration { return e.viaPrivy }), r.of(func(e execRun) time.Duration { return e.direct })
	row("privy exec, start → command", fmt.Sprintf("`privy exec --addr SOCK --profile %s --dir /dev/shm/… -- bench stamp`, a profile of %d files, a read-only token in `PRIVY_TOKEN_FILE`: the harness starts it, the command prints its clock first thing",
		runtimeProfile, s.files), durations(via), nsMsecs, "—", nil)
	row("command alone, start → command", "`bench stamp` started directly", durations(direct), nsMsecs, "—", nil)
	row("privy exec's own time", "the two rows above subtracted, paired by run: privy's start, render, tmpfs check, wipe, writes and exec",
		pairs(via, direct, diffOf), nsMsecs, "median ≤ "+ms(targetExecTime), func(m summary) bool { return m.med <= float64(targetExecTime) })
	tp, td := r.of(func(e execRun) time.Duration { return e.truePrivy }), r.of(func(e execRun) time.Duration { return e.trueDirect })
	row("privy exec -- true", "wall time to exit, as above with `true` as the command", durations(tp), nsMsecs, "—", nil)
	row("true", "wall time to exit, started directly", durations(td), nsMsecs, "—", nil)
	row("privy exec -- true − true", "paired by run: the cross-check of privy exec's own time", pairs(tp, td, diffOf), nsMsecs, "—", nil)

	fmt.Fprintf(&b, "\n%d docker runs of each kind and %d privy exec runs, each after one unmeasured run of each kind. "+
		"Runs alternate A, B, B, A, …, so that each kind runs first in half the pairs; ratios and differences are per pair (run *i* of each), then their median. "+
		"p90 is the nearest-rank 90th percentile. Docker Engine %s; each secret is %d random bytes.\n",
		s.runs, s.execRuns, r.b.engine, s.valueSize)

	b.WriteString("\n### Every docker run\n\n| run | first | privy volume | plain tmpfs | privy ÷ tmpfs |\n|--:|---|--:|--:|--:|\n")
	for i := range min(len(r.privy), len(r.plain)) {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %.2f× |\n", i+1, runKind(i%2 == 0),
			nsSecs(float64(r.privy[i])), nsSecs(float64(r.plain[i])), ratioOf(r.privy[i], r.plain[i]))
	}
	return b.String()
}
