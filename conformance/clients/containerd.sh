#!/usr/bin/env bash
# containerd 1.6 (Debian) with ctr and the io.containerd.runc.v2 shim pointed
# at RUNTIME (--runc-binary): its own daemon, root, state and socket under a
# private work dir; busybox imported from a locally made OCI archive.
#   conformance/clients/containerd.sh RUNTIME
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rt=$(realpath "$1")
need_debs containerd busybox-static tmux python3

work=$(mktemp -d /tmp/keel-containerd.XXXXXX)
sock=$work/containerd.sock
cpid=""
C=$work/ctr
printf '#!/bin/sh\nexec ctr -a %s -n keel-test "$@"\n' "$sock" >"$C"
chmod +x "$C"
# The runc shim puts containers under /<namespace>/<id>.
cgroups_note keel-test
paths_note /run/containerd
cleanup() {
	if [ -S "$sock" ]; then
		for t in $("$C" task ls -q 2>/dev/null); do "$C" task kill -s SIGKILL "$t" >/dev/null 2>&1; done
		sleep 0.5
		for t in $("$C" task ls -q 2>/dev/null); do "$C" task rm -f "$t" >/dev/null 2>&1; done
		for c in $("$C" c ls -q 2>/dev/null); do "$C" c rm "$c" >/dev/null 2>&1; done
	fi
	stop_pid "$cpid"
	# shims outlive a stopped containerd: end the ones started for our socket
	for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null); do stop_pid "$p"; done
	unmount_under "$work"
	rm -rf "$work"
	cgroups_clean
	paths_clean
}
trap cleanup EXIT

cat >"$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = "$work/debug.sock"
TOML
containerd -c "$work/config.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
if ! wait_for 60 "$C" version; then
	tail -20 "$work/containerd.log"
	notok "containerd starts" "no answer on $sock"
	summary
	exit 1
fi
make_rootfs "$work/rootfs"
python3 "$here/oci-image.py" "$work/rootfs" "$work/busybox.tar" latest
"$C" images import --base-name keel-test/busybox "$work/busybox.tar" >/dev/null
img=keel-test/busybox:latest
R=(--runc-binary "$rt")

out=$(timeout 60 "$C" run --rm "${R[@]}" "$img" keel-c1 echo hello 2>&1)
check "run attached prints the output" "hello" "$out"
timeout 60 "$C" run --rm "${R[@]}" "$img" keel-c1b sh -c 'exit 3' >/dev/null 2>&1
check "run attached returns the exit status" 3 "$?"

timeout 60 "$C" run -d --log-uri "file://$work/c2.log" "${R[@]}" "$img" keel-c2 \
	sh -c 'echo started; trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
wait_for 10 sh -c "'$C' task ls | grep -q 'keel-c2 .*RUNNING'"
check_contains "run -d is running" "RUNNING" "$("$C" task ls 2>&1 | grep keel-c2)"
out=$(timeout 60 "$C" task exec --exec-id e1 keel-c2 sh -c 'echo in-exec; exit 4' 2>&1)
code=$?
check_contains "task exec prints in the container" "in-exec" "$out"
check "task exec returns the exit status" 4 "$code"
wait_for 10 grep -q started "$work/c2.log"
check_contains "the shim logs the output" "started" "$(cat "$work/c2.log" 2>&1)"
timeout 60 "$C" task kill -s SIGTERM keel-c2 >/dev/null
wait_for 20 sh -c "'$C' task ls | grep -q 'keel-c2 .*STOPPED'"
check_contains "kill -s SIGTERM stops it" "STOPPED" "$("$C" task ls 2>&1 | grep keel-c2)"
timeout 60 "$C" task rm keel-c2 >/dev/null 2>&1
"$C" c rm keel-c2 >/dev/null 2>&1
check "task rm and container rm remove it" "" "$("$C" c ls -q)"

timeout 60 "$C" run -d "${R[@]}" "$img" keel-c3 sleep 300 >/dev/null
wait_for 10 sh -c "'$C' task ls | grep -q 'keel-c3 .*RUNNING'"
pids=$(timeout 30 "$C" task ps keel-c3 2>&1 | tail -n +2 | wc -l)
check "task ps lists its process" 1 "$pids"
timeout 60 "$C" task pause keel-c3 >/dev/null
check_contains "pause" "PAUSED" "$("$C" task ls 2>&1 | grep keel-c3)"
timeout 60 "$C" task resume keel-c3 >/dev/null
check_contains "resume" "RUNNING" "$("$C" task ls 2>&1 | grep keel-c3)"
timeout 60 "$C" task rm -f keel-c3 >/dev/null 2>&1
"$C" c rm keel-c3 >/dev/null 2>&1
check "task rm -f removes a running task" "" "$("$C" task ls -q)"

out=$(tty_roundtrip "keel-ctr-$$" "$C run -t --rm --runc-binary $rt $img keel-c4 sh")
check_contains "interactive -t: the shell answers" "42" "$out"
check_contains "interactive -t: the terminal size reaches it" "40 120" "$out"

echo "containerd: $(summary)"
summary
