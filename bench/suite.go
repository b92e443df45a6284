package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/privyhq/privy/client"
	"github.com/privyhq/privy/internal/paths"
)

// defaultFillWorkers is enough concurrent Puts to fill bbolt's batches of
// 1,000 while the previous batch commits.
const defaultFillWorkers = 2048

// settings are the knobs of a run; the defaults are what `make bench` uses.
type settings struct {
	privy      string // the privy binary under test
	work       string // scratch directory for data dirs and sockets
	out        string // where to write the Markdown report, besides stdout
	repo       string // module root, for the crash-recovery test
	rounds     int
	window     window
	clients    int
	small      int // secrets in the store of the read and put benchmarks
	large      int // secrets in the store of the scale benchmark
	valueSize  int
	crashRuns  int // PRIVY_CRASH_ROUNDS; 0 skips the crash-recovery test
	fillWorker int
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var s settings
	fs := flag.NewFlagSet("bench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.privy, "privy", "", "privy binary to benchmark (required)")
	fs.StringVar(&s.work, "work", "", "empty scratch directory, removed by the caller (required)")
	fs.StringVar(&s.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&s.repo, "repo", ".", "module root, where ./e2e/ holds the crash-recovery test")
	fs.IntVar(&s.rounds, "rounds", 3, "measurement rounds per configuration (the report gives medians)")
	fs.DurationVar(&s.window.length, "duration", 10*time.Second, "measured time per round and configuration")
	fs.DurationVar(&s.window.warm, "warmup", 2*time.Second, "unmeasured load before each measurement")
	fs.IntVar(&s.clients, "clients", 64, "concurrent clients")
	fs.IntVar(&s.small, "secrets", 1000, "secrets stored for the read and put benchmarks")
	fs.IntVar(&s.large, "large", 1_000_000, "secrets stored for the scale benchmark")
	fs.IntVar(&s.valueSize, "value-size", 1024, "secret value size in bytes")
	fs.IntVar(&s.crashRuns, "crash-rounds", 20, "PRIVY_CRASH_ROUNDS for TestCrashRecovery; 0 skips it")
	fs.IntVar(&s.fillWorker, "fill-workers", defaultFillWorkers, "concurrent Puts while filling stores")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.privy == "" || s.work == "" {
		return errors.New("bench run: -privy and -work are required")
	}
	if s.rounds < 1 || s.clients < 1 || s.small < 1 || s.large < 1 {
		return errors.New("bench run: -rounds, -clients, -secrets and -large must be at least 1")
	}
	rep, err := runSuite(ctx, s, stderr)
	if err != nil {
		return err
	}
	return writeReport(rep.markdown(), s.out, stdout)
}

// dataset is an initialised data directory holding secrets secretPath(0)
// … secretPath(secrets-1).
type dataset struct {
	dir     string
	token   string
	secrets int
	fill    fillStats
}

func newDataset(ctx context.Context, s settings, name string, secrets int, log io.Writer) (*dataset, error) {
	dir := filepath.Join(s.work, name)
	tok, err := initDataDir(ctx, s.privy, dir)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "bench: filling %s with %d secrets of %d bytes\n", dir, secrets, s.valueSize)
	st, err := fill(ctx, dir, secrets, s.valueSize, s.fillWorker, log)
	if err != nil {
		return nil, err
	}
	return &dataset{dir: dir, token: tok, secrets: secrets, fill: st}, nil
}

// config is one benchmarked configuration: a store, an audit mode and an
// operation.
type config struct {
	id    string // short name for progress lines
	data  *dataset
	audit string // --audit-sync
	puts  bool   // PutSecret instead of GetSecret
	// baseline serves the reads with `bench baseline` instead of privy.
	baseline bool
}

// measurement is one round of one configuration.
type measurement struct {
	rate         float64
	p50, p99     time.Duration
	server       procCounters  // what the server used during the window
	harnessCPU   time.Duration // CPU this process (the clients) used
	memIdle, mem memStatus     // server memory after start and after the load
	ops          int
	window       time.Duration
}

func runSuite(ctx context.Context, s settings, log io.Writer) (*report, error) {
	small, err := newDataset(ctx, s, "reads", s.small, log)
	if err != nil {
		return nil, err
	}
	putData, err := newDataset(ctx, s, "puts", s.small, log)
	if err != nil {
		return nil, err
	}
	large, err := newDataset(ctx, s, "large", s.large, log)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "bench: filled %d secrets in %v\n", s.large, large.fill.took.Round(time.Second))

	configs := []*config{
		{id: "reads/batch", data: small, audit: "batch"},
		{id: "reads/none", data: small, audit: "none"},
		{id: "reads/baseline", data: small, baseline: true},
		{id: "reads-large/batch", data: large, audit: "batch"},
		{id: "puts/batch", data: putData, audit: "batch", puts: true},
		{id: "puts/none", data: putData, audit: "none", puts: true},
	}
	rep := &report{settings: s, large: large.fill, results: map[string][]measurement{}}
	for r := range s.rounds {
		// Rotate the order each round so no configuration always runs
		// first, or always right after the write-heavy ones.
		for i := range configs {
			c := configs[(i+r)%len(configs)]
			m, err := measure(ctx, s, c)
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, c.id, err)
			}
			fmt.Fprintf(log, "bench: round %d/%d %-18s %8.0f/s  p50 %v  p99 %v  server %.2f cores, clients %.2f cores\n",
				r+1, s.rounds, c.id, m.rate, m.p50.Round(time.Microsecond), m.p99.Round(time.Microsecond),
				cores(m.server.cpu, m.window), cores(m.harnessCPU, m.window))
			rep.results[c.id] = append(rep.results[c.id], m)
		}
	}
	if s.crashRuns > 0 {
		fmt.Fprintf(log, "bench: running TestCrashRecovery with PRIVY_CRASH_ROUNDS=%d\n", s.crashRuns)
		rep.crash = runCrashTest(ctx, s.repo, s.crashRuns, filepath.Join(s.work, "crash-test.log"), log)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// measure starts a server for c, runs one window of load against it and
// stops it again. A fresh process per round keeps one configuration's heap
// and connections out of the next one's numbers.
func measure(ctx context.Context, s settings, c *config) (measurement, error) {
	socket := filepath.Join(s.work, "privy.sock")
	argv := privyArgs(s.privy, c.data.dir, socket, c.audit)
	if c.baseline {
		self, err := os.Executable()
		if err != nil {
			return measurement{}, err
		}
		argv = []string{self, "baseline", "-socket", socket, "-size", strconv.Itoa(s.valueSize)}
	}
	if err := warmPageCache(paths.StoreFile(c.data.dir)); err != nil {
		return measurement{}, err
	}
	srv, err := startServer(ctx, argv, socket, filepath.Join(s.work, "server.log"))
	if err != nil {
		return measurement{}, err
	}
	m, err := load(ctx, s, c, srv)
	if serr := srv.stop(); err == nil {
		err = serr
	}
	return m, err
}

func load(ctx context.Context, s settings, c *config, srv *server) (measurement, error) {
	var m measurement
	var err error
	if m.memIdle, err = readMemStatus(srv.pid()); err != nil {
		return m, err
	}
	cl, err := client.New(srv.socket, client.WithToken(c.data.token))
	if err != nil {
		return m, err
	}
	do := secretOp(cl, c.data.secrets, s.valueSize, c.puts)

	// Counters at the two edges of the measured window.
	var at [2]struct{ server, self procCounters }
	var edgeErr error
	edges := 0
	edge := func() {
		sv, err1 := readCounters(srv.pid())
		self, err2 := readCounters(os.Getpid())
		edgeErr = errors.Join(edgeErr, err1, err2)
		at[edges].server, at[edges].self = sv, self
		edges++
	}
	res, err := runLoad(ctx, s.clients, s.window, do, edge)
	if err != nil {
		return m, err
	}
	if edgeErr != nil {
		return m, edgeErr
	}
	if m.mem, err = readMemStatus(srv.pid()); err != nil {
		return m, err
	}
	m.rate, m.p50, m.p99 = res.rate(), res.percentile(50), res.percentile(99)
	m.ops, m.window = res.ops, res.length
	m.server, m.harnessCPU = at[1].server.sub(at[0].server), at[1].self.cpu-at[0].self.cpu
	return m, nil
}

// secretOp returns the benchmark's request: read a random one of n secrets
// and check its size, or with puts write a random one of them.
func secretOp(c *client.Client, n, size int, puts bool) op {
	if puts {
		value := make([]byte, size)
		crand.Read(value)
		return func(ctx context.Context, rnd *rand.Rand) error {
			_, err := c.PutSecret(ctx, secretPath(rnd.IntN(n)), value)
			return err
		}
	}
	return func(ctx context.Context, rnd *rand.Rand) error {
		p := secretPath(rnd.IntN(n))
		sec, err := c.GetSecret(ctx, p, 0)
		if err == nil && len(sec.Value) != size {
			err = fmt.Errorf("reading %s: got %d bytes, want %d", p, len(sec.Value), size)
		}
		return err
	}
}

// cores is how many CPUs' worth of time cpu is over wall.
func cores(cpu, wall time.Duration) float64 {
	if wall <= 0 {
		return 0
	}
	return cpu.Seconds() / wall.Seconds()
}
