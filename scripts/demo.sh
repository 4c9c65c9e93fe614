#!/usr/bin/env bash
# The whole story, each step printed: a Dockerfile built into cached layers
# by keel-build; the image run by keel-shim (attached, detached, logs,
# attach and detach, stop, rm) over keel-runtime; and the same image as a
# plain OCI bundle under keel-runtime alone.
#   scripts/demo.sh BIN_DIR DIR   (BIN_DIR holds keel-build, keel-shim, keel-runtime)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bin=$(realpath "$1") dir=$2
kb=$bin/keel-build rt=$bin/keel-runtime ks=$bin/keel-shim
mkdir -p "$dir"
dir=$(realpath "$dir")
store=$dir/store root=$dir/state bundle=$dir/bundle
id=keel-demo-$$
shim=("$ks" --root "$dir/shim" --run-dir "$dir/shim-run" --store "$store" --runtime "$rt")
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
cleanup() {
	tmux kill-session -t "$id" >/dev/null 2>&1 || true
	"${shim[@]}" rm -f web >/dev/null 2>&1 || true
	"$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
	[ -d "$bundle" ] && "$kb" unbundle "$bundle" >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "base image: local/busybox:latest from Debian's busybox-static (no registry here)"
bases=${XDG_CACHE_HOME:-$HOME/.cache}/keel/bases
"$here/base-rootfs.sh" busybox "$bases/busybox"
"$kb" --root "$store" import "$bases/busybox" local/busybox:latest

step "keel-build build -t bbapp: the multi-stage busybox fixture, cold cache"
ctx=$dir/busybox-app
rm -rf "$ctx" && cp -r "$repo/../shared/fixtures/busybox-app" "$ctx" && chmod -R u+w "$ctx"
"$kb" --root "$store" build --progress plain -t bbapp "$ctx"

step "the same build again: every step comes from the cache, same image id"
"$kb" --root "$store" build --progress plain -t bbapp "$ctx" 2>&1 | grep -E 'CACHED|built' | tail -4

step "a source change (src/app.sh): only COPY src/ and what depends on it run again"
sed -i 's/revision=1/revision=2/' "$ctx/src/app.sh"
"$kb" --root "$store" build --progress plain -t bbapp "$ctx" 2>&1 | grep -E '^#[0-9]+ (\[|CACHED|DONE)' | paste - - | awk '{print $NF=="CACHED" ? "cached  " $0 : "RAN     " $0}' | cut -c1-110

step "keel-build images / history bbapp"
"$kb" --root "$store" images
"$kb" --root "$store" history bbapp

step "keel-shim run --rm bbapp selftest: attached, output streams here, exit status is the container's"
"${shim[@]}" run --rm bbapp selftest
echo "exit status: $?"

step "keel-shim run -dit --name web bbapp: detached with a terminal (the image's CMD: busybox httpd), the id comes back at once"
"${shim[@]}" run -dit --name web bbapp
"${shim[@]}" ps

step "keel-shim logs -f web (for two seconds): every byte the container writes is in its json-file log"
timeout 2 "${shim[@]}" logs -f -t web || true

step "keel-shim attach web in a terminal (tmux), then ctrl-p ctrl-q: detached, still running"
tmux new-session -d -s "$id" -x 100 -y 20 "${shim[*]} attach web"
sleep 1
tmux send-keys -t "$id" C-p C-q
sleep 1
tmux has-session -t "$id" 2>/dev/null && echo "attach still running?" || echo "attach returned after the detach keys"
"${shim[@]}" ps

step "keel-shim stop -t 2 web: the image's STOPSIGNAL (httpd as pid 1 ignores it), SIGKILL after 2 s; then rm"
"${shim[@]}" stop -t 2 web
"${shim[@]}" ps -a
"${shim[@]}" rm web
echo "containers left: $("${shim[@]}" ps -aq | wc -l)"

step "the same image without the shim: keel-build bundle bbapp writes config.json and an overlay rootfs of the cached layers"
"$kb" --root "$store" bundle bbapp "$bundle" -- /srv/app/bin/entrypoint.sh selftest
findmnt -n -o FSTYPE,TARGET "$bundle/rootfs" || true

step "keel-runtime run (attached): the image's selftest; exit status is the container's"
"$rt" --root "$root" run --bundle "$bundle" "$id"
echo "exit status: $?"

step "keel-runtime run --detach: the image's httpd, then exec into it"
python3 - "$bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = ["/srv/app/bin/entrypoint.sh", "serve"]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
"$rt" --root "$root" run --detach --bundle "$bundle" "$id"
"$rt" --root "$root" list
"$rt" --root "$root" exec "$id" ps

step "keel-runtime kill $id KILL, delete, unbundle"
"$rt" --root "$root" kill "$id" KILL
for _ in $(seq 50); do
	"$rt" --root "$root" state "$id" | grep -q '"stopped"' && break
	sleep 0.1
done
"$rt" --root "$root" delete "$id"
"$kb" unbundle "$bundle"
"$kb" --root "$store" check
echo "done: nothing left running; the store is in $store"
