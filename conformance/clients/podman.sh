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

podman_up "$rt" keel-podman

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
