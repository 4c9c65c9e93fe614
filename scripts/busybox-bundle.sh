#!/usr/bin/env bash
# Makes an OCI bundle whose rootfs is Debian's static busybox with one link
# per applet (no Docker Hub here), and a config.json from `keel-runtime spec`
# with the terminal off and the given command.
#   scripts/busybox-bundle.sh RUNTIME DIR [ARG...]
set -euo pipefail
runtime=$1 dir=$2
shift 2
bb=/bin/busybox
[ -x "$bb" ] || { echo "busybox-bundle: $bb missing (install busybox-static)" >&2; exit 1; }
mkdir -p "$dir/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp "$bb" "$dir/rootfs/bin/busybox"
for a in $("$bb" --list); do
	[ "$a" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/rootfs/etc/group"
rm -f "$dir/config.json"
"$runtime" spec --bundle "$dir"
args='["sh"]'
if [ $# -gt 0 ]; then
	args=$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' "$@")
fi
python3 - "$dir/config.json" "$args" <<'PY'
import json, sys
path, args = sys.argv[1], json.loads(sys.argv[2])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = args
c["hostname"] = "keel"
json.dump(c, open(path, "w"), indent=2)
PY
