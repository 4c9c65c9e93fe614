#!/usr/bin/env bash
# Prints the path of Docker's default seccomp profile (profiles/seccomp/
# default.json of Docker 20.10, from Debian's golang-github-docker-docker-dev
# package), fetching the .deb with apt and unpacking only that file into
# ~/.cache/keel: the package's own dependencies are not installed.
set -euo pipefail
cache=${XDG_CACHE_HOME:-$HOME/.cache}/keel/docker-seccomp
out=$cache/default.json
if [ ! -s "$out" ]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && { apt-get download golang-github-docker-docker-dev >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null && apt-get download golang-github-docker-docker-dev >/dev/null; }; })
	dpkg-deb -x "$tmp"/golang-github-docker-docker-dev_*.deb "$tmp/x"
	src=$(find "$tmp/x" -path '*profiles/seccomp/default.json' | head -n 1)
	[ -n "$src" ] || { echo "docker-seccomp-profile: default.json not in the package" >&2; exit 1; }
	cp "$src" "$out.tmp" && mv "$out.tmp" "$out"
fi
echo "$out"
