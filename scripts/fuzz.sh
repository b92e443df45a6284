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
failed=()
while read -r dir name; do
	echo "fuzz: $name in $dir for $fuzztime"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir"; then
		failed+=("$name in $dir")
	fi
done <<<"$targets"
if ((${#failed[@]} > 0)); then
	echo "fuzz: FAILED: ${failed[*]}" >&2
	exit 1
fi
