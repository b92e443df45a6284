#!/usr/bin/env bash
# bench.sh builds privy and its benchmark harness (bench/), runs every
# benchmark against the real `privy server` binary, writes
# docs/benchmarks.md and prints the results table. `make bench` runs it.
#
#   scripts/bench.sh                          what `make bench` runs (~10 minutes, plus the scanner,
#                                             the build and the run-time benchmarks)
#   scripts/bench.sh -rounds 1 -duration 3s   a quick look; flags go to `bench run`
#   BENCH_ONLY=server scripts/bench.sh        only the server benchmarks
#   BENCH_ONLY=scan scripts/bench.sh [-rounds 1]
#                                             only the scanner benchmark (`bench scan`,
#                                             which gets the flags); it replaces the
#                                             "Scanner" section of docs/benchmarks.md
#                                             and keeps the rest
#   BENCH_ONLY=build scripts/bench.sh [-n 10]
#                                             only the build benchmark (`bench build`,
#                                             which gets the flags): privy build against
#                                             the plain docker build, on the Docker Engine
#                                             (scripts/test-env.sh starts it); it replaces
#                                             the "privy build" section of
#                                             docs/benchmarks.md and keeps the rest
#   BENCH_ONLY=run scripts/bench.sh [-n 20] [-exec-n 100]
#                                             only the run-time benchmarks (`bench runtime`,
#                                             which gets the flags): docker run with a privy
#                                             volume against a plain tmpfs, and privy exec's
#                                             time to its command, on the Docker Engine (as
#                                             root); it replaces the "privy run and privy
#                                             exec" section of docs/benchmarks.md and keeps
#                                             the rest
#
# The scanner benchmark compares `privy scan` with trufflehog and gitleaks,
# which it installs once with the Go toolchain into $PRIVY_BENCH_CACHE/bin
# (default ~/.cache/privy-bench/bin); a peer that fails to install is
# reported as skipped. Tests never use them.
#
# Everything lives in one temporary folder, removed at exit, and every
# process started here is stopped at exit, however the script exits. The
# harness stops the servers it starts, and the kernel kills them if the
# harness itself dies (parent-death signal).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "bench: $*" >&2; }

only=${BENCH_ONLY:-}
case $only in
"" | server | scan | build | run) ;;
*)
	say "BENCH_ONLY must be server, scan, build or run, not $only"
	exit 2
	;;
esac
cache=${PRIVY_BENCH_CACHE:-$HOME/.cache/privy-bench}
gitleaks_version=${GITLEAKS_VERSION:-v8.30.1}
trufflehog_version=${TRUFFLEHOG_VERSION:-v3.90.0}

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
[[ -n $only ]] && command="BENCH_ONLY=$only $command"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

say "building privy and the harness in $work"
# The same build as `make build`, so the numbers are the release binary's.
CGO_ENABLED=0 go build -trimpath -o "$work/privy" ./cmd/privy
go build -o "$work/bench" ./bench

# run_server runs the server benchmarks and writes docs/benchmarks.md
# afresh. (Its body is not indented: it holds heredocs.)
run_server() {
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
}

# install_peers puts gitleaks and trufflehog into $cache/bin, once per
# version, and prints the flags that hand them to `bench scan`. A peer that
# fails to install (no module proxy, over 10 minutes) is skipped, loudly.
install_peers() {
	local bin=$cache/bin
	mkdir -p "$bin"
	local gl=$bin/gitleaks-$gitleaks_version th=$bin/trufflehog-$trufflehog_version
	if [[ ! -x $gl ]]; then
		say "installing gitleaks $gitleaks_version into $bin (once)"
		local tmp=$work/gobin-gitleaks
		if (cd "$work" && GOBIN=$tmp GOFLAGS= timeout 600 go install "github.com/zricethezav/gitleaks/v8@$gitleaks_version") >&2; then
			mv "$tmp/gitleaks" "$gl"
		else
			say "could not install gitleaks $gitleaks_version: skipping it"
		fi
	fi
	if [[ ! -x $th ]]; then
		# `go install …@version` cannot build trufflehog: its go.mod has
		# replace directives. Build its module as a main module instead.
		say "installing trufflehog $trufflehog_version into $bin (once; a large build)"
		local dir
		if dir=$(cd "$work" && GOFLAGS=-mod=mod timeout 300 go mod download -json "github.com/trufflesecurity/trufflehog/v3@$trufflehog_version" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [[ -n $dir ]] &&
			(cd "$dir" && GOFLAGS=-mod=mod timeout 600 go build -trimpath -o "$th.tmp" .) >&2; then
			mv "$th.tmp" "$th"
		else
			rm -f "$th.tmp"
			say "could not install trufflehog $trufflehog_version within 10 minutes: skipping it"
		fi
	fi
	[[ -x $gl ]] && printf -- '-gitleaks\n%s\n' "$gl"
	[[ -x $th ]] && printf -- '-trufflehog\n%s\n' "$th"
	return 0
}

# run_scan runs the scanner benchmark and appends its section to
# docs/benchmarks.md, replacing a "Scanner" section already there (the
# last section of the file).
run_scan() {
	local peers=()
	mapfile -t peers < <(install_peers)
	mkdir -p "$work/scan"
	say "running the scanner benchmark (generates a 1 GiB image in $work/scan)"
	"$work/bench" scan -privy "$work/privy" -work "$work/scan" -out "$work/scan.md" "${peers[@]}" "$@" >/dev/null &
	harness=$!
	wait "$harness"
	harness=
	rm -rf "$work/scan"

	local doc=docs/benchmarks.md
	if [[ -f $doc ]]; then
		local kept
		kept=$(sed '/^## Scanner$/,$d' "$doc") # $(…) drops trailing blank lines
		printf '%s\n\n' "$kept" >"$doc"
	fi
	{
		cat <<EOF
## Scanner

Produced by \`$command\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) CPUs,
load average before: $(cut -d' ' -f1-3 /proc/loadavg)).

EOF
		cat "$work/scan.md"
		cat <<'EOF'

### What is measured

`bench scan` (bench/scan*.go) generates a seeded, reproducible image of
about 1 GiB as a `docker save` tarball written directly (no registry, no
engine), with five values planted the ways leaks land in images, and a
file of 1,000 known values that holds them. Then, in each round, it runs
as child processes and times:

- **privy scan** with the 1,000 known values (each also in base64, hex,
  URL- and JSON-escaped forms) and every built-in detector, on the
  tarball; its JSON report tells which planted values it found. Also with
  `--no-rules` (known values only), to show what the detectors cost.
- **trufflehog** on the same tarball (`file://`), without verification or
  update checks: it matches its detectors' patterns and knows no values.
- **gitleaks** on the layers extracted once into one folder each, before
  the rounds (deleted files are thus still there, as in the tarball).
- **read**: reading the tarball in the harness, the ceiling for any tool.

Peak RSS is the child's `ru_maxrss`; CPU is its user + system time over
its wall-clock time. Everything is in the page cache (the image was just
written, 24 GiB of RAM), so these are CPU costs, not disk speed.

To see where privy's time goes, scan the same image in-process (the same
`internal/scan` call `privy scan --known-file` makes) under the CPU
profiler:

    go build -o /tmp/bench ./bench && mkdir -p /tmp/sb
    /tmp/bench scan -work /tmp/sb -cpuprofile /tmp/scan.prof
    go tool pprof -top /tmp/bench /tmp/scan.prof
EOF
	} >>"$doc"
	say "appended the Scanner section to $doc"
	cat "$work/scan.md"
}

# run_build runs the build benchmark and puts its section into
# docs/benchmarks.md: in place of a "privy build" section already there,
# else before the "Scanner" section (which run_scan replaces to the end of
# the file), else at the end.
run_build() {
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	mkdir -p "$work/build"
	say "running the build benchmark (privy build against docker build, about 5 s a build)"
	"$work/bench" build -privy "$work/privy" -work "$work/build" -out "$work/build.md" "$@" >/dev/null &
	harness=$!
	wait "$harness"
	harness=
	rm -rf "$work/build"

	{
		cat <<EOF
## privy build

Produced by \`$command\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) CPUs,
load average before: $load).

EOF
		cat "$work/build.md"
		cat <<'EOF'

### What is measured

`bench build` (bench/build.go) starts a `privy server` of its own (`privy
init` on a fresh data directory, as `bench run` does) on a unix socket,
stores the two secrets `a` and `b` in it, and writes a build context whose
Dockerfile adds a layer of random data and mounts each secret in one `RUN`
step. Then it alternates two commands, each a child process it times:

- **privy build**, with `PRIVY_ADDR` and `PRIVY_TOKEN` for the server,
  `PRIVY_DOCKER=/usr/bin/docker` and `PRIVY_PRIVATE_DIR=-`: privy reads the
  Dockerfile, reads both secrets from the server, runs the same `docker
  build` with them in the docker CLI's environment and its output masked,
  then the guard streams the new image out of the engine (Engine API, the
  export `docker save` uses) and scans its config, history and every layer
  for both values and their encodings, and only then tags the image.
- **plain build**: the `docker build` privy wraps, with the same two values
  in the CLI's environment (`--secret id=a,env=A`), tagging the image
  itself.

The guard's time is what privy prints ("checked in X s"); "privy without
its guard" subtracts it, leaving privy's start, the secret reads, the
builder probe (`docker buildx version`, `docker version`), the masking and
`docker tag`. After each privy build, outside its timed command, the
harness reads the new image's export from the engine once more and
discards it ("the engine's export alone"): the part of the guard that is
the engine handing the image out rather than privy scanning it.
EOF
	} >"$work/build-section.md"

	put_section "privy build" "$work/build-section.md"
	cat "$work/build.md"
}

# put_section puts the section in file $2, whose first line is "## $1",
# into docs/benchmarks.md: in place of a section of that title already
# there, else before the "Scanner" section (which run_scan replaces to the
# end of the file), else at the end.
put_section() {
	local title=$1 section=$2 doc=docs/benchmarks.md
	touch "$doc"
	awk -v section="$section" -v heading="## $title" '
		function put(   line) {
			while ((getline line < section) > 0) print line
			done = 1
		}
		$0 == heading { put(); skip = 1; next }
		skip && /^## / { skip = 0; print "" }
		skip { next }
		/^## Scanner$/ && !done { put(); print "" }
		{ print; last = $0 }
		END { if (!done) { if (NR > 0 && last != "") print ""; put() } }
	' "$doc" >"$work/benchmarks.md"
	cat "$work/benchmarks.md" >"$doc"
	say "wrote the $title section of $doc"
}

# run_runtime runs the run-time benchmarks (a privy volume against a plain
# tmpfs, and privy exec) and puts their section into docs/benchmarks.md
# the way run_build puts its own.
run_runtime() {
	local load
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	mkdir -p "$work/runtime"
	say "running the run-time benchmarks (privy exec, then docker run with a privy volume against a plain tmpfs, about 1 s a run)"
	"$work/bench" runtime -privy "$work/privy" -work "$work/runtime" -out "$work/runtime.md" "$@" >/dev/null &
	harness=$!
	wait "$harness"
	harness=
	rm -rf "$work/runtime"

	{
		cat <<EOF
## privy run and privy exec

Produced by \`$command\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) CPUs,
load average before: $load).

EOF
		cat "$work/runtime.md"
		cat <<'EOF'

### What is measured

`bench runtime` (bench/runtime.go) starts `privy server --dev` with the
Docker volume plugin (`--docker-plugin privy-bench`), stores 10 secrets
of 64 random bytes, a profile `bench` that places each of them as a file,
and a token that may only read them. Then it times child processes:

- **docker run**: it alternates the two commands of the table, a privy
  volume and a plain `--tmpfs` at `/run/secrets`, each running `true` in
  `privy-test/busybox` without a network. For the privy one the engine
  creates an anonymous volume with the plugin, mounts it (the plugin
  renders the profile in the server, audited, mounts a fresh tmpfs and
  places the 10 files), starts and waits for the container, unmounts the
  volume (the plugin wipes and unmounts its tmpfs) and removes it. The
  mount is not `readonly`: the engine refuses that on an anonymous volume.
  The unmeasured first run of each kind lists `/run/secrets`, to check that
  it holds the 10 files, or none.
- **privy exec**, on the host (no container): `privy exec` with the token
  in `PRIVY_TOKEN_FILE` starts, checks that its `--dir` (under `/dev/shm`)
  is a tmpfs, wipes it, renders the profile over the server's unix socket,
  writes the 10 files and execs its command: the harness binary, which
  prints its clock first thing. The harness reads its own clock just
  before it starts privy; the difference is privy exec's start → command.
  The same command started directly (fork, exec, the Go runtime's start)
  is subtracted pair by pair: what remains is privy exec's own time, from
  its start to the exec of its command. `privy exec -- true` against
  `true`, both timed to their exit, is the same difference without the
  clocks of two processes.

To see where privy exec's time goes: `perf stat -e
user_time,system_time,page-faults privy exec …` splits its CPU time
between privy and the kernel (page faults of the binary and of the heap
its package initializers fill), `GODEBUG=inittrace=1 privy exec` times
each package's initialization, and `perf record -g` over a loop of runs
shows the rest (Go binaries keep their symbols). `privy exec` with no
flags exits at once with a usage error: its wall time is privy's start
alone.
EOF
	} >"$work/runtime-section.md"
	put_section "privy run and privy exec" "$work/runtime-section.md"
	cat "$work/runtime.md"
}

case $only in
server) run_server "$@" ;;
scan) run_scan "$@" ;;
build) run_build "$@" ;;
run) run_runtime "$@" ;;
*)
	run_server "$@"
	run_scan
	run_build
	run_runtime
	;;
esac
