#!/usr/bin/env bash
# podman with conmon (Debian) driving RUNTIME (--runtime): private root,
# runroot and config under a work dir; cgroupfs manager and file events,
# as PID 1 here is not systemd; busybox imported from a local rootfs.
#   conformance/clients/podman.sh RUNTIME
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rt=$(realpath "$1")
need_debs podman conmon busybox-static tmux

work=$(mktemp -d /tmp/keel-podman.XXXXXX)
cat >"$work/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
runtime = "keel"
[engine.runtimes]
keel = ["$rt"]
CONF
cat >"$work/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$work/root"
runroot = "$work/runroot"
CONF
P=$work/podman
printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --tmpdir %s "$@"\n' \
	"$work/containers.conf" "$work/storage.conf" "$work/tmp" >"$P"
chmod +x "$P"
cleanup() {
	for c in $("$P" ps -aq 2>/dev/null); do "$P" rm -f -t 0 "$c" >/dev/null 2>&1; done
	# podman leaves no daemon; conmon processes end with their containers.
	for p in $(pgrep -f "conmon .*$work" 2>/dev/null); do stop_pid "$p"; done
	unmount_under "$work"
	rm -rf "$work"
}
trap cleanup EXIT

make_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$P" import - keel-test/busybox >/dev/null 2>"$work/import.err" ||
	{ cat "$work/import.err"; notok "import" "podman import failed"; summary; exit 1; }
img=localhost/keel-test/busybox:latest
# podman raises nofile/nproc above this machine's hard limits, which
# CAP_SYS_RESOURCE (missing from its bounding set) would need: keep the host's.
U="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
check_contains "podman uses the runtime" "$rt" "$("$P" info --format '{{.Host.OCIRuntime.Path}}' 2>&1)"

out=$(timeout 60 "$P" run $U --rm --network none "$img" echo hello 2>&1)
check "run attached prints the output" "hello" "$out"
timeout 60 "$P" run $U --rm --network none "$img" sh -c 'exit 3' >/dev/null 2>&1
check "run attached returns the exit status" 3 "$?"

timeout 60 "$P" run $U -d --name keel-p1 --network none "$img" sh -c 'echo started; trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
check "run detached is running" running "$("$P" inspect -f '{{.State.Status}}' keel-p1 2>&1)"
out=$(timeout 60 "$P" exec keel-p1 sh -c 'echo in-exec; exit 4' 2>&1)
code=$?
check_contains "exec prints in the container" "in-exec" "$out"
check "exec returns the exit status" 4 "$code"
wait_for 10 sh -c "'$P' logs keel-p1 2>&1 | grep -q started"
check_contains "logs has the output" "started" "$("$P" logs keel-p1 2>&1)"
timeout 60 "$P" stop -t 10 keel-p1 >/dev/null
check "stop ends a TERM-handling container cleanly" 0 "$("$P" inspect -f '{{.State.ExitCode}}' keel-p1 2>&1)"

timeout 60 "$P" run $U -d --name keel-p2 --network none "$img" sh -c 'trap "" TERM; while :; do sleep 0.1; done' >/dev/null
timeout 60 "$P" stop -t 1 keel-p2 >/dev/null
check "stop kills one that ignores TERM" 137 "$("$P" inspect -f '{{.State.ExitCode}}' keel-p2 2>&1)"

timeout 60 "$P" run $U -d --name keel-p3 --network none "$img" sleep 300 >/dev/null
timeout 60 "$P" kill -s KILL keel-p3 >/dev/null
wait_for 10 sh -c "[ \$('$P' inspect -f '{{.State.Status}}' keel-p3) = exited ]"
check "kill -s KILL stops it" exited "$("$P" inspect -f '{{.State.Status}}' keel-p3 2>&1)"

timeout 60 "$P" run $U -d --name keel-p4 --network none "$img" sleep 300 >/dev/null
timeout 60 "$P" rm -f -t 0 keel-p4 >/dev/null
check "rm -f removes a running container" "" "$("$P" ps -aq --filter name=keel-p4)"
"$P" rm keel-p1 keel-p2 keel-p3 >/dev/null
check "rm removes stopped containers" "" "$("$P" ps -aq)"

out=$(tty_roundtrip "keel-podman-$$" "$P run $U -it --rm --network none $img sh")
check_contains "interactive -t: the shell answers" "42" "$out"
check_contains "interactive -t: the terminal size reaches it" "40 120" "$out"

echo "podman: $(summary)"
summary
