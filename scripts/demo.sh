#!/usr/bin/env bash
# privy's main job, end to end on the embedded store, on a fresh machine:
# store a secret, build an image whose build step uses it, run a container
# that receives it, and scan the image for the value with privy scan.
#
# Everything lives in a temporary directory and a private server that this
# script starts and stops; the secret value is passed through stdin and the
# environment of child processes only, never argv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n\033[1mdemo: %s\033[0m\n' "$*"; }

scripts/test-env.sh
DOCKER=/usr/bin/docker

work=$(mktemp -d /tmp/privy-demo.XXXXXX)
server_pid=""
image="privy-demo/app:$$"
plugin="privy-demo"
cleanup() {
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" && wait "$server_pid" || true
	fi
	"$DOCKER" image rm -f "$image" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

say "building privy"
CGO_ENABLED=0 go build -trimpath -o "$work/privy" ./cmd/privy
privy="$work/privy"

say "privy init: a new encrypted store, master key file and root token"
export PRIVY_DATA_DIR="$work/data" PRIVY_ADDR="$work/privy.sock"
"$privy" init >"$work/root-token"
PRIVY_TOKEN=$(cat "$work/root-token")
export PRIVY_TOKEN

say "privy server: serving the API on $PRIVY_ADDR, and the Docker volume plugin $plugin"
"$privy" server --socket "$PRIVY_ADDR" --docker-plugin "$plugin" --volume-root "$work/volumes" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 50); do "$privy" status >/dev/null 2>&1 && break; sleep 0.1; done
"$privy" status

say "privy secret put: the value comes from stdin, never argv"
head -c 24 /dev/urandom | base64 | tr -d '/+=' | head -c 24 >"$work/value"
"$privy" secret put demo/registry-token <"$work/value"
rm -f "$work/value"
"$privy" secret ls

say "a read-only token for the build"
build_token=$("$privy" token create --allow 'read:demo/**' --ttl 10m --name demo-build)

say "privy build: the Dockerfile's secret ids resolve from privy.yaml; the value reaches the RUN step by a BuildKit secret mount"
mkdir -p "$work/ctx"
cat >"$work/ctx/Dockerfile" <<'EOF'
FROM privy-test/busybox:latest
RUN --mount=type=secret,id=registry-token,required=true \
    test -s /run/secrets/registry-token && \
    echo "the build step sees the token: $(cat /run/secrets/registry-token)" && \
    sha256sum /run/secrets/registry-token | cut -d' ' -f1 > /build-saw-sha256
CMD ["sh", "-c", "sha256sum /run/secrets/registry-token | cut -d' ' -f1"]
EOF
cat >"$work/ctx/privy.yaml" <<'EOF'
build:
  secrets:
    registry-token: demo/registry-token
EOF
export PRIVY_DOCKER=$DOCKER PRIVY_PRIVATE_DIR=-
PRIVY_TOKEN=$build_token "$privy" build --dry-run "$work/ctx"
# The value travels in the builder's environment only; privy masks it in
# the build output (the echo above shows ****), then its guard scans the
# new image for it before tagging it.
PRIVY_TOKEN=$build_token "$privy" build --no-cache --network none -t "$image" "$work/ctx" 2>&1 | grep -E 'sees the token|privy:'
want=$("$privy" secret get demo/registry-token | sha256sum | cut -d' ' -f1)
got=$("$DOCKER" run --rm --network none "$image" cat /build-saw-sha256)
[ "$got" = "$want" ] || { echo "demo: the build step did not see the secret" >&2; exit 1; }
echo "the build step saw the secret (sha256 $got)"

say "privy profile apply: the run: section says what each kind of container receives"
cat >>"$work/ctx/privy.yaml" <<'EOF'
run:
  profiles:
    app:
      files:
        registry-token: demo/registry-token
EOF
"$privy" profile apply "$work/ctx/privy.yaml"

say "privy run: the container gets a fresh tmpfs from the volume plugin with only its profile's files"
got=$("$privy" run --profile app --driver "$plugin" -- "$DOCKER" run --rm --network none "$image" \
	sh -c 'grep " /run/secrets " /proc/mounts | cut -d" " -f3; env | grep -c registry-token; sha256sum /run/secrets/registry-token | cut -d" " -f1' || true)
echo "$got" | sed -n 1p | grep -qx tmpfs || { echo "demo: /run/secrets is not a tmpfs in the container" >&2; exit 1; }
echo "$got" | sed -n 2p | grep -qx 0 || { echo "demo: the secret is in the container's environment" >&2; exit 1; }
[ "$(echo "$got" | sed -n 3p)" = "$want" ] || { echo "demo: the container did not receive the secret" >&2; exit 1; }
echo "the container received the secret on a tmpfs, not in its environment (sha256 $want)"
leftover=$(find "$work/volumes" -mindepth 1 -not -name volumes.json | head -1)
[ -z "$leftover" ] || { echo "demo: the volume left $leftover behind" >&2; exit 1; }
echo "after the container ended, its tmpfs was unmounted and nothing is left on the host"

say "privy scan: the image's config, history and every layer, for every value in the store"
"$privy" scan --prefix demo/ "$image"

say "privy build's guard catches the classic mistake: a build step that copies the secret into a layer"
leaky="privy-demo/leaky:$$"
cat >"$work/ctx/Dockerfile" <<'EOF2'
FROM privy-test/busybox:latest
RUN --mount=type=secret,id=registry-token cat /run/secrets/registry-token > /token.txt
RUN rm /token.txt
EOF2
set +e
PRIVY_TOKEN=$build_token "$privy" build --no-cache --network none -t "$leaky" "$work/ctx" 2>"$work/leak.err" >/dev/null
rc=$?
set -e
grep -E '^privy: error|^  ' "$work/leak.err"
leaked_id=$(grep -o 'untagged, as sha256:[0-9a-f]*' "$work/leak.err" | cut -d' ' -f3)
[ "$rc" = 6 ] || { echo "demo: privy build should have failed with the guard's exit status 6, got $rc" >&2; exit 1; }
if "$DOCKER" image inspect "$leaky" >/dev/null 2>&1; then echo "demo: the leaky image was tagged" >&2; exit 1; fi
echo "privy build exited 6 and left the image untagged: the deleted /token.txt is still in its layer"

say "privy scan finds the same leak in the untagged image, for every value in the store"
set +e
"$privy" scan --prefix demo/ "$leaked_id"
rc=$?
set -e
"$DOCKER" image rm -f "$leaked_id" >/dev/null
[ "$rc" = 1 ] || { echo "demo: privy scan should have reported the leak (exit 1), got $rc" >&2; exit 1; }

say "the audit log: every request, hash-chained"
"$privy" audit tail -n 5
"$privy" audit verify

say "done: the secret was used at build and run time, is in no artifact of the image, and a leaky build is caught"
