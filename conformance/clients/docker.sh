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

docker_up "$rt" keel-docker || { summary; exit 1; }
make_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$D" import - keel-test/busybox:latest >/dev/null
img=keel-test/busybox:latest

engine_scenarios "$D" "$img" --network none

echo "docker: $(summary)"
summary
