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
cgroups_note libpod_parent
paths_note /var/lib/containers /run/containers /run/libpod "/run/$(basename "$rt")"
cleanup() {
	for c in $("$P" ps -aq 2>/dev/null); do "$P" rm -f -t 0 "$c" >/dev/null 2>&1; done
	# podman leaves no daemon; conmon processes end with their containers.
	for p in $(pgrep -f "conmon .*$work" 2>/dev/null); do stop_pid "$p"; done
	unmount_under "$work"
	rm -rf "$work"
	cgroups_clean
	paths_clean
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

engine_scenarios "$P" "$img" --network none $U

echo "podman: $(summary)"
summary
