#!/usr/bin/env bash
# keel-build's images and the containers/image tools: an OCI archive from
# `keel-build save` loads into podman and runs; skopeo reads the store's OCI
# layout, and what `skopeo copy` writes loads back into keel-build's store.
#   conformance/clients/build-podman.sh RUNTIME   (keel-build beside it)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rt=$(realpath "$1")
bin=$(dirname "$rt")
kb=$bin/keel-build
need_debs podman conmon skopeo busybox-static

podman_up "$rt" keel-build-podman
store=$work/store
if ! keel_build_fixture "$bin" "$store"; then
	notok "keel-build builds the fixture" "build failed"
	summary
	exit 1
fi
U="--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
"$kb" --root "$store" save --format oci-archive -o "$work/bbapp-oci.tar" bbapp
out=$("$P" load -i "$work/bbapp-oci.tar" 2>&1)
check_contains "podman load of keel-build's OCI archive" "Loaded image" "$out"
img=$("$P" images -q | head -1)
# shellcheck disable=SC2086
out=$("$P" run --rm --network none $U "$img" selftest 2>&1)
check_contains "podman run of the loaded image: its selftest" "payload_ok=yes" "$out"

out=$(skopeo inspect "oci:$store/oci:bbapp:latest" 2>&1)
check_contains "skopeo reads the store's OCI layout" '"Architecture"' "$out"
skopeo copy -q "oci:$store/oci:bbapp:latest" "oci:$work/copied:v1" >/dev/null 2>&1
out=$("$kb" --root "$store" load -i "$work/copied" --tag copied/bbapp:v1 2>&1)
check_contains "keel-build load of a skopeo OCI layout" "copied/bbapp:v1" "$out"
skopeo copy -q "oci:$store/oci:bbapp:latest" "docker-archive:$work/skopeo-docker.tar:skopeo/bbapp:v2" >/dev/null 2>&1
out=$("$kb" --root "$store" load -i "$work/skopeo-docker.tar" 2>&1)
check_contains "keel-build load of a skopeo docker-archive" "skopeo/bbapp:v2" "$out"
"$kb" --root "$store" bundle skopeo/bbapp:v2 "$work/bundle" -- /srv/app/bin/entrypoint.sh selftest
out=$("$rt" --root "$work/rt" run --bundle "$work/bundle" keel-test-skopeo 2>&1)
check_contains "the round-tripped image runs under keel-runtime" "payload_ok=yes" "$out"
"$kb" unbundle "$work/bundle"
check "keel-build check after the loads" "0" "$("$kb" --root "$store" check >/dev/null 2>&1; echo $?)"

echo "build-podman: $(summary)"
summary
