#!/usr/bin/env bash
# test-env.sh prepares the real things privy's tests run against, the same way
# on a fresh machine, a developer's machine and CI (see shared/TESTING.md):
#
#   - the Debian packages the tests use (Docker Engine, busybox-static, etcd,
#     sshd and the ssh client, git, podman, docker-compose), installed only
#     when missing;
#   - a Docker Engine on /var/run/docker.sock, started with networking off
#     only when none answers;
#   - the local test images, each built only when missing or made by an older
#     recipe:
#       privy-test/busybox:latest  busybox-static and its applets;
#       privy-test/git:latest      the same, plus the host's git and OpenSSH
#                                  client (ssh, ssh-add) with the shared
#                                  libraries they load, for build steps that
#                                  clone over ssh;
#     both in Docker's store and, when podman is installed, in podman's, all
#     imported from one root filesystem made from the host's files (no image
#     can be pulled here, and copying is faster than debootstrap).
#
# It is idempotent and prints one line per action it takes.
#
#   scripts/test-env.sh        set everything up
#   scripts/test-env.sh stop   stop the dockerd this script started, if any
#
# The Docker CLI is always /usr/bin/docker (Debian's, matching the engine):
# the first docker on PATH here may be a newer client without buildx that
# refuses BuildKit builds.
#
# Podman (Debian's 4.3, rootful) needs no daemon and, here, no storage or
# cgroup flags (overlay, cgroupfs and runc are its defaults), but every
# podman build and run must say --network none (or --network host to reach a
# test server on 127.0.0.1): its default network is a CNI bridge that creates
# cni-podman0 with 10.88.0.0/16, adds iptables chains and turns on IPv4
# forwarding, which the tests must never do. Verified here:
#
#   podman build --network none --secret id=x,src=FILE -t TAG DIR
#     (RUN --mount=type=secret,id=x reads /run/secrets/x; FROM privy-test/busybox
#     finds localhost/privy-test/busybox)
#   podman run --rm --network none \
#     --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 IMAGE CMD
#     (its default rlimits cannot be set in this sandbox)
set -euo pipefail

readonly DOCKER=/usr/bin/docker
readonly DOCKER_SOCK=/var/run/docker.sock
readonly PODMAN=/usr/bin/podman
readonly BUSYBOX_IMAGE=privy-test/busybox:latest
readonly GIT_IMAGE=privy-test/git:latest
# Bump an image's recipe when its contents change, so existing machines
# rebuild it instead of keeping a stale image under the same tag.
readonly BUSYBOX_RECIPE=1
readonly GIT_RECIPE=1
readonly PACKAGES=(docker.io busybox-static etcd-server openssh-server openssh-client git podman docker-compose)
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

# recipe prints the recipe label of image in the store of engine (docker or
# podman), or fails if the image is missing.
recipe() {
	local engine=$1 image=$2
	"$engine" image inspect --format '{{index .Config.Labels "privy.test-env.recipe"}}' "$image" 2>/dev/null
}

# fill_busybox puts busybox-static in the folder root, with a link for every
# applet at its usual place (bin/sh, usr/bin/env, sbin/...), and the few files
# every test image needs.
fill_busybox() {
	local root=$1 busybox=/bin/busybox applet
	[[ -x $busybox ]] || die "$busybox not found: is busybox-static installed?"
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,run,proc,sys,dev,home}
	chmod 1777 "$root/tmp"
	chmod 700 "$root/root"
	cp "$busybox" "$root/bin/busybox"
	while IFS= read -r applet; do
		[[ $applet == */* && $applet != bin/busybox ]] || continue # skip /linuxrc
		mkdir -p "$root/$(dirname "$applet")"
		ln -sf /bin/busybox "$root/$applet"
	done < <("$busybox" --list-full)
	[[ -L $root/bin/sh ]] || die "busybox has no sh applet"

	# ssh refuses to run for a uid without a passwd entry.
	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		nogroup:x:65534:
		nobody:x:65534:
	EOF
}

# copy_libraries copies into root every shared library the ELF files given
# need, as ldd finds them, the dynamic loader included. Each lands in the
# real folder of the host's (/lib/x86_64-linux-gnu/libc.so.6 goes to
# usr/lib/x86_64-linux-gnu on a merged-/usr host, where root gets the same
# lib -> usr/lib links).
copy_libraries() {
	local root=$1
	shift
	local d lib dir
	for d in lib lib32 lib64 libx32; do
		if [[ -L /$d && ! -e $root/$d ]]; then
			ln -s "$(readlink "/$d")" "$root/$d"
		fi
	done
	local -A seen=()
	while IFS= read -r lib; do
		[[ -n $lib && -z ${seen[$lib]:-} ]] || continue
		seen[$lib]=1
		dir=$(realpath -e "$(dirname "$lib")") || die "cannot resolve the folder of $lib"
		mkdir -p "$root$dir"
		cp -L "$lib" "$root$dir/$(basename "$lib")" || die "copying $lib"
	done < <(
		# "libz.so.1 => /lib/.../libz.so.1 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
		# scripts among the files are "not a dynamic executable".
		for f in "$@"; do
			ldd "$f" 2>/dev/null || true
		done | sed -n -e 's/^.*=> \(\/[^ ]*\) (0x.*$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*$/\1/p' | sort -u
	)
	((${#seen[@]} > 0)) || die "ldd found no shared libraries"
}

# fill_git is fill_busybox plus the host's git (with git-core and its
# templates; tar keeps its links as they are) and OpenSSH client.
fill_git() {
	local root=$1 p
	fill_busybox "$root"
	local files=(usr/bin/git usr/lib/git-core usr/share/git-core/templates usr/bin/ssh usr/bin/ssh-add)
	for p in "${files[@]}"; do
		[[ -e /$p ]] || die "/$p not found: are git and openssh-client installed?"
	done
	tar -C / -c "${files[@]}" | tar -C "$root" -x || die "copying git and ssh from the host"
	local elves=()
	while IFS= read -r -d '' p; do
		elves+=("$p")
	done < <(find /usr/bin/git /usr/lib/git-core /usr/bin/ssh /usr/bin/ssh-add -type f -perm -u+x -print0)
	copy_libraries "$root" "${elves[@]}"
	# glibc looks users up in files only, as it does without this file; ssh
	# looks up the uid.
	printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
}

# verify_git checks in a container of engine (docker or podman) that git and
# ssh run in the git image.
verify_git() {
	local engine=$1
	local flags=(--rm --network none)
	[[ $engine == "$PODMAN" ]] && flags+=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
	local out
	if ! out=$("$engine" run "${flags[@]}" "$GIT_IMAGE" sh -c \
		'git --version && ssh -V && git init -q /tmp/r && git -C /tmp/r rev-parse --git-dir' 2>&1); then
		"$engine" image rm "$GIT_IMAGE" >/dev/null 2>&1 || true
		die "$GIT_IMAGE does not run git and ssh in $(basename "$engine"); removed it:
$out"
	fi
}

# import_image imports the folder root as image into the store of engine,
# labelled with recipe, and drops the stale image the tag pointed to (it
# stays if a container uses it).
import_image() {
	local engine=$1 image=$2 recipe=$3 root=$4 old quiet=()
	say "importing image $image into $(basename "$engine")"
	# podman reports progress on stderr; docker prints only the id.
	[[ $engine == "$PODMAN" ]] && quiet=(--quiet)
	old=$("$engine" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
	tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
		"$engine" import "${quiet[@]}" \
			--change 'CMD ["/bin/sh"]' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change "LABEL privy.test-env.recipe=$recipe" \
			- "$image" >/dev/null ||
		die "$(basename "$engine") import of $image failed"
	if [[ -n $old && $old != $("$engine" image inspect --format '{{.Id}}' "$image" 2>/dev/null) ]]; then
		"$engine" image rm "$old" >/dev/null 2>&1 || true
	fi
}

# build_image makes image (with recipe, its root filesystem made by the
# function fill) in every engine (docker, and podman if installed) that lacks
# it; verify, if not empty, is then run with the engine.
build_image() {
	local image=$1 recipe=$2 fill=$3 verify=${4:-} engine
	local engines=("$DOCKER")
	[[ -x $PODMAN ]] && engines+=("$PODMAN")
	local root=
	for engine in "${engines[@]}"; do
		[[ $(recipe "$engine" "$image" || true) == "$recipe" ]] && continue
		if [[ -z $root ]]; then
			root=$(mktemp -d "${TMPDIR:-/tmp}/privy-test-rootfs.XXXXXX")
			CLEANUP+=("$root")
			"$fill" "$root"
		fi
		import_image "$engine" "$image" "$recipe" "$root"
		if [[ -n $verify ]]; then
			"$verify" "$engine"
		fi
	done
}

# remove_stale_plugins removes the Docker plugin sockets that privy's own
# tests, benchmarks and demo served (privy-e2e*, privy-bench*, privy-demo*)
# and that nothing listens on any more, left by a server that was killed.
# The engine asks every socket in that folder when it looks up a volume
# name it does not know, and retries a dead one for seconds each time.
remove_stale_plugins() {
	local dir=/run/docker/plugins s
	[[ -d $dir ]] || return 0
	for s in "$dir"/privy-e2e*.sock "$dir"/privy-bench*.sock "$dir"/privy-demo*.sock; do
		[[ -S $s ]] || continue
		if ! ss -xlH 2>/dev/null | awk '{print $5}' | grep -qxF "$s"; then
			say "removing stale plugin socket $s"
			rm -f -- "$s"
		fi
	done
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
	remove_stale_plugins
	start_dockerd
	build_image "$BUSYBOX_IMAGE" "$BUSYBOX_RECIPE" fill_busybox
	build_image "$GIT_IMAGE" "$GIT_RECIPE" fill_git verify_git
	if [[ -x $PODMAN ]]; then
		say "ready (docker $(server_version), podman $("$PODMAN" version --format '{{.Client.Version}}'))"
	else
		say "ready (docker $(server_version); no podman)"
	fi
}

main "$@"
