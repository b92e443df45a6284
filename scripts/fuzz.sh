#!/usr/bin/env bash
# fuzz.sh runs every fuzz target of the module, one at a time, for FUZZTIME
# each (a go test -fuzztime value: 5s, 1m, 1000x).
#
#   scripts/fuzz.sh 5s
#
# Targets are found by grep: a line `func FuzzName(` in a *_test.go file.
# Inputs that fail are written under the package's testdata/fuzz, to be kept.
set -euo pipefail

fuzztime=${1:?usage: scripts/fuzz.sh FUZZTIME (for example 5s)}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# "dir name" pairs, sorted, skipping folders go ignores (testdata, _x, .x).
targets=$(
	find . -name '*_test.go' -not -path '*/testdata/*' -not -path '*/_*' -not -path '*/.*' \
		-exec grep -HoE '^func Fuzz[A-Za-z0-9_]*\(' {} + |
		sed -E 's|^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\($|\1 \2|' |
		sort -u
)
if [[ -z $targets ]]; then
	echo "fuzz: no fuzz targets found"
	exit 0
fi

# Run them all, then fail if any failed, so one failure hides no other.
#
# go test -fuzz can end a time-bounded run with "context deadline exceeded"
# when the time runs out while a worker is still busy with one slow input;
# that is the fuzzer's own clock, not a finding (a finding always writes
# "Failing input written to ..."). Such a run is tried once more, and if
# it ends the same way again it is reported and not counted as a failure.
failed=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fuzz_once() {
	go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "$1" 2>&1 | tee "$log"
	return "${PIPESTATUS[0]}"
}
deadline_only() {
	grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"
}
while read -r dir name; do
	echo "fuzz: $name in $dir for $fuzztime"
	if fuzz_once "$dir" "$name"; then
		continue
	fi
	if deadline_only; then
		echo "fuzz: $name ran out of time inside one input (no finding); trying once more"
		if fuzz_once "$dir" "$name"; then
			continue
		fi
		if deadline_only; then
			echo "fuzz: $name: the fuzzer's time ran out again inside one input; no failing input was found"
			continue
		fi
	fi
	failed+=("$name in $dir")
done <<<"$targets"
if ((${#failed[@]} > 0)); then
	echo "fuzz: FAILED: ${failed[*]}" >&2
	exit 1
fi
