#!/usr/bin/env bash
# test-env.sh prepares the real things privy's tests run against, the same way
# on a fresh machine, a developer's machine and CI (see shared/TESTING.md):
#
#   - the Debian packages the tests use (Docker Engine, busybox-static, etcd,
#     sshd, git), installed only when missing;
#   - a Docker Engine on /var/run/docker.sock, started with networking off
#     only when none answers;
#   - the base image privy-test/busybox:latest, built only when missing.
#
# It is idempotent and prints one line per action it takes.
#
#   scripts/test-env.sh        set everything up
#   scripts/test-env.sh stop   stop the dockerd this script started, if any
#
# The Docker CLI is always /usr/bin/docker (Debian's, matching the engine):
# the first docker on PATH here may be a newer client without buildx that
# refuses BuildKit builds.
set -euo pipefail

readonly DOCKER=/usr/bin/docker
readonly DOCKER_SOCK=/var/run/docker.sock
readonly IMAGE=privy-test/busybox:latest
# Bump IMAGE_RECIPE when the image's contents change, so existing machines
# rebuild it instead of keeping a stale image under the same tag.
readonly IMAGE_RECIPE=1
readonly PACKAGES=(docker.io busybox-static etcd-server openssh-server git)
readonly STATE_DIR=${PRIVY_TEST_ENV_DIR:-/tmp/privy-test-env}
readonly DOCKERD_LOG=$STATE_DIR/dockerd.log
readonly DOCKERD_PID=$STATE_DIR/dockerd.pid

say() { echo "test-env: $*"; }
die() {
	echo "test-env: error: $*" >&2
	exit 1
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# Paths removed when the script exits, however it exits.
CLEANUP=()
cleanup() { ((${#CLEANUP[@]} == 0)) || rm -rf -- "${CLEANUP[@]}"; }
trap cleanup EXIT

# lock serialises concurrent runs (several engineers share a machine) where
# the state folder can be written; a read-only user only probes and builds.
lock() {
	mkdir -p "$STATE_DIR" 2>/dev/null || true
	if { exec 9>>"$STATE_DIR/lock"; } 2>/dev/null; then
		flock 9
	fi
}

installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

install_packages() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		installed "$p" || missing+=("$p")
	done
	((${#missing[@]} == 0)) && return 0
	is_root || die "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"

	say "installing ${missing[*]}"
	local log=$STATE_DIR/apt.log
	# Keep package scripts from starting services (sshd, etcd, dockerd) on
	# their default ports: this script starts only what the tests need.
	local policy=/usr/sbin/policy-rc.d
	if [[ ! -e $policy ]]; then
		CLEANUP+=("$policy")
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	if ! { apt-get update -q &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
		tail -n 20 "$log" >&2
		die "apt-get install ${missing[*]} failed (log: $log)"
	fi
}

# server_version prints the engine's version, or fails if none answers.
server_version() {
	timeout 20 "$DOCKER" version --format '{{.Server.Version}}' 2>/dev/null
}

# our_dockerd prints the pid in our pid file if that process is still a
# dockerd; it fails otherwise.
our_dockerd() {
	local pid
	[[ -r $DOCKERD_PID ]] || return 1
	pid=$(<"$DOCKERD_PID")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1
	echo "$pid"
}

start_dockerd() {
	server_version >/dev/null && return 0
	if [[ -n ${DOCKER_HOST:-} && $DOCKER_HOST != "unix://$DOCKER_SOCK" ]]; then
		die "no Docker Engine answers at DOCKER_HOST=$DOCKER_HOST; start it, or unset DOCKER_HOST to use $DOCKER_SOCK"
	fi
	if ! is_root; then
		[[ -S $DOCKER_SOCK && ! -w $DOCKER_SOCK ]] &&
			die "cannot use $DOCKER_SOCK: add your user to the docker group, or run sudo $0"
		die "no Docker Engine answers on $DOCKER_SOCK and starting one needs root: run sudo $0"
	fi
	local pid i
	if pid=$(our_dockerd); then
		# Ours, but not answering yet (another run just started it): wait below.
		:
	else
		say "starting dockerd (log: $DOCKERD_LOG)"
		# The bridge, iptables and forwarding stay off: containers get only a
		# loopback interface, so nothing is ever sent to a private range.
		# setsid and closing every inherited descriptor (our lock, the
		# caller's pipes) detach it from make, CI and this script: it outlives
		# them without keeping their pipes or our lock open.
		(
			for fd in /proc/self/fd/*; do
				fd=${fd##*/}
				if ((fd > 2)); then eval "exec $fd>&-"; fi
			done
			exec setsid dockerd --bridge=none --iptables=false --ip-forward=false \
				</dev/null >>"$DOCKERD_LOG" 2>&1
		) &
		pid=$!
		echo "$pid" >"$DOCKERD_PID"
	fi
	for ((i = 0; i < 120; i++)); do
		server_version >/dev/null && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$DOCKERD_PID"
			tail -n 30 "$DOCKERD_LOG" >&2 || true
			die "dockerd exited while starting (log: $DOCKERD_LOG)"
		fi
		sleep 0.5
	done
	tail -n 30 "$DOCKERD_LOG" >&2 || true
	die "dockerd (pid $pid) did not answer within 60s (log: $DOCKERD_LOG)"
}

stop_dockerd() {
	local pid i
	if ! pid=$(our_dockerd); then
		rm -f "$DOCKERD_PID"
		say "no dockerd started by test-env is running"
		return 0
	fi
	say "stopping dockerd (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || die "cannot signal dockerd (pid $pid): run as root"
	for ((i = 0; i < 60; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$DOCKERD_PID"
			return 0
		fi
		sleep 0.5
	done
	die "dockerd (pid $pid) did not stop within 30s after SIGTERM (log: $DOCKERD_LOG)"
}

image_recipe() {
	"$DOCKER" image inspect --format '{{index .Config.Labels "privy.test-env.recipe"}}' "$IMAGE" 2>/dev/null
}

build_image() {
	[[ $(image_recipe || true) == "$IMAGE_RECIPE" ]] && return 0
	say "building image $IMAGE"
	local busybox=/bin/busybox root old
	old=$("$DOCKER" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
	[[ -x $busybox ]] || die "$busybox not found: is busybox-static installed?"
	root=$(mktemp -d "${TMPDIR:-/tmp}/privy-test-rootfs.XXXXXX")
	CLEANUP+=("$root")

	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,run,proc,sys,dev,home}
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	cp "$busybox" "$root/bin/busybox"
	# Link every applet at its usual place (bin/sh, usr/bin/env, sbin/...).
	local applet
	while IFS= read -r applet; do
		[[ $applet == */* && $applet != bin/busybox ]] || continue # skip /linuxrc
		mkdir -p "$root/$(dirname "$applet")"
		ln -sf /bin/busybox "$root/$applet"
	done < <("$busybox" --list-full)
	[[ -L $root/bin/sh ]] || die "busybox has no sh applet"

	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		nogroup:x:65534:
		nobody:x:65534:
	EOF

	tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
		"$DOCKER" import \
			--change 'CMD ["/bin/sh"]' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change "LABEL privy.test-env.recipe=$IMAGE_RECIPE" \
			- "$IMAGE" >/dev/null ||
		die "docker import of $IMAGE failed"
	# Drop the stale image the tag pointed to; it stays if a container uses it.
	if [[ -n $old ]]; then
		"$DOCKER" image rm "$old" >/dev/null 2>&1 || true
	fi
}

main() {
	case ${1:-up} in
	up) ;;
	stop)
		lock
		stop_dockerd
		return
		;;
	*) die "usage: $0 [stop]" ;;
	esac

	lock
	install_packages
	[[ -x $DOCKER ]] || die "$DOCKER not found: is docker.io installed?"
	start_dockerd
	build_image
	say "ready (docker $(server_version))"
}

main "$@"
