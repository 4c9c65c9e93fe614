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
cleanup() {
	if [ -S "$sock" ]; then
		for c in $("$D" ps -aq 2>/dev/null); do "$D" rm -f "$c" >/dev/null 2>&1; done
	fi
	stop_pid "$dpid"
	# dockerd's own containerd is its child and goes with it; be sure.
	[ -f "$work/exec/containerd/containerd.pid" ] && stop_pid "$(cat "$work/exec/containerd/containerd.pid")"
	unmount_under "$work"
	rm -rf "$work"
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

out=$(timeout 60 "$D" run --rm --network none "$img" echo hello 2>&1)
check "run attached prints the output" "hello" "$out"
timeout 60 "$D" run --rm --network none "$img" sh -c 'exit 3' >/dev/null 2>&1
check "run attached returns the exit status" 3 "$?"

timeout 60 "$D" run -d --name keel-d1 --network none "$img" sh -c 'echo started; trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
check "run detached is running" true "$("$D" inspect -f '{{.State.Running}}' keel-d1 2>&1)"
out=$(timeout 60 "$D" exec keel-d1 sh -c 'echo in-exec $(hostname); exit 4' 2>&1)
code=$?
check_contains "exec prints in the container" "in-exec" "$out"
check "exec returns the exit status" 4 "$code"
wait_for 10 sh -c "$D logs keel-d1 2>&1 | grep -q started"
check_contains "logs has the output" "started" "$("$D" logs keel-d1 2>&1)"
timeout 60 "$D" stop -t 10 keel-d1 >/dev/null
check "stop ends a TERM-handling container cleanly" 0 "$("$D" inspect -f '{{.State.ExitCode}}' keel-d1 2>&1)"

timeout 60 "$D" run -d --name keel-d2 --network none "$img" sh -c 'trap "" TERM; while :; do sleep 0.1; done' >/dev/null
timeout 60 "$D" stop -t 1 keel-d2 >/dev/null
check "stop kills one that ignores TERM" 137 "$("$D" inspect -f '{{.State.ExitCode}}' keel-d2 2>&1)"

timeout 60 "$D" run -d --name keel-d3 --network none "$img" sleep 300 >/dev/null
timeout 60 "$D" kill -s KILL keel-d3 >/dev/null
wait_for 10 sh -c "[ \$($D inspect -f '{{.State.Running}}' keel-d3) = false ]"
check "kill -s KILL stops it" "false 137" "$("$D" inspect -f '{{.State.Running}} {{.State.ExitCode}}' keel-d3 2>&1)"

timeout 60 "$D" run -d --name keel-d4 --network none "$img" sleep 300 >/dev/null
timeout 60 "$D" rm -f keel-d4 >/dev/null
check "rm -f removes a running container" "" "$("$D" ps -aq --filter name=keel-d4)"
"$D" rm keel-d1 keel-d2 keel-d3 >/dev/null
check "rm removes stopped containers" "" "$("$D" ps -aq)"

out=$(tty_roundtrip "keel-docker-$$" "$D run -it --rm --network none $img sh")
check_contains "interactive -t: the shell answers" "42" "$out"
check_contains "interactive -t: the terminal size reaches it" "40 120" "$out"

echo "docker: $(summary)"
summary
