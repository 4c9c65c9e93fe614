#!/usr/bin/env bash
# keel-build's images and Docker: `keel-build save` output loads into a real
# dockerd and runs; `docker save` output loads into keel-build's store and
# runs from a bundle under keel-runtime.
#   conformance/clients/build-docker.sh RUNTIME   (keel-build beside it)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
rt=$(realpath "$1")
bin=$(dirname "$rt")
kb=$bin/keel-build
need_debs docker.io busybox-static

docker_up "$rt" keel-build-docker || { summary; exit 1; }
store=$work/store
if ! keel_build_fixture "$bin" "$store"; then
	notok "keel-build builds the fixture" "build failed"
	summary
	exit 1
fi
"$kb" --root "$store" save -o "$work/bbapp.tar" bbapp
out=$("$D" load -i "$work/bbapp.tar" 2>&1)
check_contains "docker load of keel-build save" "Loaded image: bbapp:latest" "$out"
check "the image id survives" "$("$kb" --root "$store" inspect bbapp | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Id"])')" \
	"$("$D" image inspect -f '{{.Id}}' bbapp:latest 2>&1)"
out=$("$D" run --rm --network none bbapp:latest selftest 2>&1)
check_contains "docker run of the loaded image: its selftest" "payload_ok=yes" "$out"
check_contains "docker run: USER app from the image" "user=app uid=1000 gid=1000" "$out"

make_rootfs "$work/rootfs"
tar -C "$work/rootfs" -c . | "$D" import - keel-test/dbusybox:latest >/dev/null
"$D" save -o "$work/docker-save.tar" keel-test/dbusybox:latest
out=$("$kb" --root "$store" load -i "$work/docker-save.tar" 2>&1)
check_contains "keel-build load of docker save" "Loaded image: keel-test/dbusybox:latest" "$out"
"$kb" --root "$store" bundle keel-test/dbusybox "$work/bundle" -- /bin/busybox echo hello-from-docker-save
out=$("$rt" --root "$work/rt" run --bundle "$work/bundle" keel-test-dsave 2>&1)
check "the loaded image runs from a bundle" "hello-from-docker-save" "$out"
"$kb" unbundle "$work/bundle"
check "keel-build check after the loads" "0" "$("$kb" --root "$store" check >/dev/null 2>&1; echo $?)"

echo "build-docker: $(summary)"
summary
