#!/usr/bin/env bash
# The end-to-end story at this stage: a busybox bundle run by keel-runtime,
# attached and detached, each step printed.
#   scripts/demo.sh RUNTIME DIR
set -euo pipefail
rt=$(realpath "$1") dir=$2
root=$dir/state
id=keel-demo-$$
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
cleanup() { "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "making a busybox bundle in $dir/bundle (rootfs from Debian's busybox-static, config from 'keel-runtime spec')"
rm -rf "$dir/bundle"
"$(dirname "$0")/busybox-bundle.sh" "$rt" "$dir/bundle" sh -c 'echo "hello from $(hostname), pid $$ in its own namespace"; uname -a; exit 7'
echo "rootfs: $(find "$dir/bundle/rootfs" | wc -l) files; args: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["process"]["args"])' "$dir/bundle/config.json")"

step "keel-runtime run (attached): output streams here and its exit status is the container's"
set +e
"$rt" --root "$root" run --bundle "$dir/bundle" "$id"
code=$?
set -e
echo "exit status: $code"

step "keel-runtime run --detach: a long-running container"
python3 - "$dir/bundle/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["process"]["args"] = ["sleep", "300"]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
"$rt" --root "$root" run --detach --bundle "$dir/bundle" "$id"
"$rt" --root "$root" list

step "keel-runtime state $id"
"$rt" --root "$root" state "$id"

step "keel-runtime exec $id ps (a second process in the same namespaces)"
"$rt" --root "$root" exec "$id" ps

step "keel-runtime kill $id KILL, then delete"
"$rt" --root "$root" kill "$id" KILL
for _ in $(seq 50); do
	"$rt" --root "$root" state "$id" | grep -q '"stopped"' && break
	sleep 0.1
done
"$rt" --root "$root" delete "$id"
"$rt" --root "$root" list
echo "done: nothing left under $root"
