#!/usr/bin/env bash
# bench.sh builds privy and its benchmark harness (bench/), runs every
# benchmark against the real `privy server` binary, writes
# docs/benchmarks.md and prints the results table. `make bench` runs it.
#
#   scripts/bench.sh                          what `make bench` runs (~10 minutes)
#   scripts/bench.sh -rounds 1 -duration 3s   a quick look; flags go to `bench run`
#
# Everything lives in one temporary folder, removed at exit, and every
# process started here is stopped at exit, however the script exits. The
# harness stops the servers it starts, and the kernel kills them if the
# harness itself dies (parent-death signal).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "bench: $*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/privy-bench.XXXXXX")
harness=
cleanup() {
	if [[ -n $harness ]] && kill -0 "$harness" 2>/dev/null; then
		kill -TERM "$harness" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$harness" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$harness" 2>/dev/null || true
		wait "$harness" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The command line to record in the report.
if [[ -n ${MAKELEVEL:-} ]]; then
	command="make bench"
else
	command="scripts/bench.sh${*:+ $*}"
fi
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

say "building privy and the harness in $work"
# The same build as `make build`, so the numbers are the release binary's.
CGO_ENABLED=0 go build -trimpath -o "$work/privy" ./cmd/privy
go build -o "$work/bench" ./bench

say "running the benchmarks (progress below; the table comes at the end)"
# In the background, so that the traps above run as soon as a signal comes.
"$work/bench" run -privy "$work/privy" -work "$work" -out "$work/results.md" -repo . "$@" >/dev/null &
harness=$!
wait "$harness"
harness=

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_total=$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
{
	cat <<EOF
# Benchmarks

Produced by \`$command\` on $started.

Machine: $(nproc) CPUs ($cpu_model), $mem_total RAM, Linux $(uname -r),
$(go version | sed 's/^go version //'). Load average before the run:
$load_before (the machine is shared; see "Reading the numbers").

## Results

EOF
	cat "$work/results.md"
	cat <<'EOF'

## What is measured

Each benchmark runs the real `privy server` binary (built as `make build`
does) as its own process on a unix socket. The harness (`bench run`, in
bench/) drives it with the public `client` package: one `client.Client`,
whose transport keeps its connections, shared by 64 goroutines that each
send one request after another (closed loop). Every request is
authenticated with the root token and audited, as in production.

- **Secret reads**: `GET` of a random one of 1,000 secrets with 1 KiB values.
  Run with the default `--audit-sync batch` (an fsync per group of audit
  lines before the replies go out) and with `--audit-sync none` side by side;
  the ratio row is the audit's cost.
- **HTTP baseline**: `bench baseline`, a plain `net/http` server on a unix
  socket that answers every read with a reply of the same JSON shape and
  size, without token, store, decryption or audit. It is the most any server
  speaking this API over HTTP/1.1 can do on this machine with these clients.
- **Secret puts**: `PUT` of a random one of 1,000 secrets (each put is a new
  version; 10 are kept), with both audit modes.
- **Scale**: the read benchmark against a store of 1,000,000 secrets, filled
  beforehand by `bench fill`, which opens the bbolt file directly and seals
  each value with the data directory's master key as the server would.
  Paths are picked uniformly at random over the whole store. The target is on
  the ratio of p50 latencies between the two store sizes.
- **Server memory**: `/proc/PID/status` of the server after the reads of each
  scale round (the largest value of the rounds).
- **Crash recovery**: `go test -count=1 -run TestCrashRecovery ./e2e/` with
  `PRIVY_CRASH_ROUNDS=20`; a skipped test is reported as skipped.

Every configuration gets a fresh server process per round, 2 s of warm-up,
then a measured window; rounds alternate configurations (rotating their
order), and the table gives medians across rounds. Ratios are medians of the
ratios within each round, so that both sides saw the same machine.

## Reading the numbers

- **The load generator shares the machine's cores with the server.** The
  clients' own CPU use is in the "Every round" table: whatever they use is
  not available to the server, so these rates are lower than a server with
  the cores to itself would reach. The HTTP baseline row shows the ceiling
  under the same handicap.
- The machines are shared with other work, so absolute numbers move from run
  to run; compare ratios within one run. "Server CPU per request" (server
  CPU time in the window ÷ requests) moves less than the rates and is the
  better number to compare across runs, though contention inflates it too.
- With 64 closed-loop clients, mean latency = 64 ÷ throughput (Little's law):
  at 30,000 reads/s the mean is 2.1 ms, so in practice the rate and p99
  targets can only hold together from about 32,000 reads/s up.
- **VmRSS counts the store file's pages.** bbolt reads the store through a
  read-only `mmap` of the file, so every page a read touches counts in the
  server's RSS as RssFile. Those pages are the kernel's page cache, shared
  and clean: the kernel drops them under memory pressure and reads them
  again on the next access. RssAnon is the memory the server itself holds
  (Go heap, stacks) and is what grows with load or leaks. The random reads
  over 1,000,000 secrets touch most of the file, so RssFile approaches the
  size of the file over time.
- Before each round the harness reads the store file once, so that it is
  in the page cache as it is for a server that has been running (others on
  a shared machine may drop the cache). The major page faults column shows
  whether reads still went to disk.
- Each round starts a fresh server, whose mmap of the store is not yet in
  its page tables: the first read of each page of the large store takes a
  minor page fault (the page is in the page cache; only the mapping is
  made). The minor page faults column shows how many; a server that has run
  for a while no longer pays them, so the scale rows are on the pessimistic
  side.

## Profiling the server

To see where a read's time goes, run a server by hand and drive it with the
harness's load generator while `perf` records it (Go binaries keep their
symbols):

    go build -trimpath -o /tmp/privy ./cmd/privy && go build -o /tmp/bench ./bench
    /tmp/privy init --data-dir /tmp/d > /tmp/d.token
    /tmp/bench fill -data-dir /tmp/d -n 1000
    /tmp/privy server --data-dir /tmp/d --socket /tmp/d.sock &
    PRIVY_TOKEN=$(cat /tmp/d.token) /tmp/bench load -socket /tmp/d.sock -duration 20s &
    perf record -F 999 -g -p $(pgrep -f 'privy server --data-dir /tmp/d') -- sleep 15
    perf report --children --sort symbol
EOF
} >docs/benchmarks.md

say "wrote docs/benchmarks.md"
cat "$work/results.md"
