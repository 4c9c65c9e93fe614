#!/usr/bin/env bash
# dockerd (Debian's docker.io) driving RUNTIME: its own daemon, data and
# socket under a private work dir, the runtime registered with --add-runtime
# and made the default; busybox imported from a local rootfs.
#   conformance/clients/docker.sh RUNTIME
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rt=$(realpath "$1")
need_debs docker.io busybox-static tmux

work=$(mktemp -d /tmp/keel-docker.XXXXXX)
sock=$work/docker.sock
dpid=""
# A wrapper file rather than a function, so that timeout(1) can run it.
D=$work/docker
printf '#!/bin/sh\nexec docker -H unix://%s "$@"\n' "$sock" >"$D"
chmod +x "$D"
cgroups_note docker
# dockerd's containerd starts the runc shim, which writes /run/containerd.
paths_note /etc/docker/key.json /run/docker /run/containerd "/run/$(basename "$rt")"
cleanup() {
	if [ -S "$sock" ]; then
		for c in $("$D" ps -aq 2>/dev/null); do "$D" rm -f "$c" >/dev/null 2>&1; done
	fi
	stop_pid "$dpid"
	# dockerd's own containerd is its child and goes with it; be sure.
	[ -f "$work/exec/containerd/containerd.pid" ] && stop_pid "$(cat "$work/exec/containerd/containerd.pid")"
	unmount_under "$work"
	rm -rf "$work"
	cgroups_clean
	paths_clean
}
trap cleanup EXIT

dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
	-H "unix://$sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
	--exec-opt native.cgroupdriver=cgroupfs --storage-driver=vfs \
	--add-runtime "keel=$rt" --default-runtime keel >"$work/dockerd.log" 2>&1 &
dpid=$!
if ! wait_for 60 "$D" info; then
	tail -20 "$work/dockerd.log"
	notok "dockerd starts" "no answer on $sock"
	summary
	exit 1
fi
make_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$D" import - keel-test/busybox:latest >/dev/null
img=keel-test/busybox:latest

engine_scenarios "$D" "$img" --network none

echo "docker: $(summary)"
summary
