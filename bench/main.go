// Command bench measures privy's server the way production runs it: it
// starts the real `privy server` binary as a separate process on a unix
// socket, drives it with the public client package from many goroutines,
// and reports rates and latency percentiles as a Markdown table.
//
// It is run by scripts/bench.sh (`make bench`), which builds both binaries,
// and writes docs/benchmarks.md. Subcommands:
//
//	bench run  -privy BIN -work DIR [-out FILE] …   every benchmark
//	bench fill -data-dir DIR -n N [-size B]         load secrets into a stopped store
//	bench load -socket S [-secrets N] [-puts] …     drive a running server (for profiling)
//	bench baseline -socket S                        plain net/http server: the ceiling
//	bench scan -privy BIN -work DIR [-out FILE] …   the image scanner against trufflehog and gitleaks
//	bench build -privy BIN -work DIR [-n N] …       privy build against the plain docker build it wraps
//	bench runtime -privy BIN -work DIR [-n N] …     docker run with a privy volume against a plain tmpfs, and privy exec
//
// Timing on shared machines is noisy, so every configuration is measured in
// several rounds, configurations alternate within a round, and the report
// gives medians across rounds and ratios between configurations measured
// side by side.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/privyhq/privy/client"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == stampArg {
		return stamp(stdout) // first: its time is the benchmark's measurement
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: bench run|fill|load|baseline|scan|build|runtime [flags] (see -h of each)")
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = runCommand(ctx, args[1:], stdout, stderr)
	case "fill":
		err = fillCommand(ctx, args[1:], stderr)
	case "load":
		err = loadCommand(ctx, args[1:], stdout, stderr)
	case "baseline":
		err = baselineCommand(ctx, args[1:], stderr)
	case "scan":
		err = scanCommand(ctx, args[1:], stdout, stderr)
	case "build":
		err = buildCommand(ctx, args[1:], stdout, stderr)
	case "runtime":
		err = runtimeCommand(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "bench: unknown subcommand %q: use run, fill, load, baseline, scan, build or runtime\n", args[0])
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: error: %v\n", err)
		return 1
	}
	return 0
}

func fillCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench fill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", "", "data directory made by `privy init`, whose server is stopped")
	n := fs.Int("n", 1_000_000, "number of secrets to store")
	size := fs.Int("size", 1024, "value size in bytes")
	workers := fs.Int("workers", defaultFillWorkers, "concurrent Puts (boltstore commits them in groups)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("bench fill: -data-dir is required")
	}
	st, err := fill(ctx, *dir, *n, *size, *workers, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "bench: stored %d secrets in %v (%.0f/s); store file %d MiB\n",
		st.secrets, st.took.Round(time.Millisecond), float64(st.secrets)/st.took.Seconds(), st.fileBytes>>20)
	return nil
}

// loadCommand drives a server that is already running, for profiling it
// (see docs/benchmarks.md) or for trying other settings by hand.
func loadCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "the server's unix socket (required)")
	secrets := fs.Int("secrets", 1000, "read or write secretPath(0 … N-1), as `bench fill` names them")
	size := fs.Int("size", 1024, "value size in bytes")
	clients := fs.Int("clients", 64, "concurrent clients")
	puts := fs.Bool("puts", false, "write secrets instead of reading them")
	var w window
	fs.DurationVar(&w.length, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&w.warm, "warmup", 2*time.Second, "unmeasured load first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok := os.Getenv("PRIVY_TOKEN")
	if *socket == "" || tok == "" {
		return errors.New("bench load: give -socket, and the token in PRIVY_TOKEN")
	}
	c, err := client.New(*socket, client.WithToken(tok))
	if err != nil {
		return err
	}
	res, err := runLoad(ctx, *clients, w, secretOp(c, *secrets, *size, *puts), nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%.0f requests/s  p50 %v  p99 %v  (%d requests in %v)\n",
		res.rate(), res.percentile(50), res.percentile(99), res.ops, w.length)
	return nil
}
