#!/usr/bin/env bash
# Benchmarks keel-build side by side with buildah and podman (and umoci and
# skopeo for the image operations) in one run, and writes the tables and
# ratios to BENCHMARKS.md, between the <!-- bench:builder --> markers.
#   bench/builder.sh [KEEL_BUILD] [KEEL_RUNTIME]
# BENCH_RUNS (default 5) runs per cell, BENCH_OUT the markdown file,
# BENCH_RESULTS a directory for the raw hyperfine JSON.
# Measures, for both fixtures of /work/shared/fixtures (or $BENCH_FIXTURES):
# a cold build (build cache pruned, base image kept), a no-change rebuild, a
# source-only change and (python) a dependency change; then `keel-build
# bundle` against `umoci unpack`, `keel-build save` against `skopeo copy` to
# an archive, and `keel-build load` against `podman load` and `skopeo copy`
# into containers-storage, of the large python base.
#
# Everything lives in one private temp dir: keel's store, a containers-storage
# per tool (--root/--runroot, plus a storage.conf so nothing falls back to
# the default), containers.conf, registries.conf and TMPDIR. The script runs
# in its own mount namespace, where /var/lib is an overlay whose upper dir is
# in the temp dir: skopeo writes /var/lib/containers/cache whatever flags it
# gets, and that must not reach the host. The mounts (overlay stores, keel
# bundles) go away with the namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
keel=$(realpath "${1:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/keel-build}")
keel_rt=$(realpath "${2:-$(dirname "$keel")/keel-runtime}")
runs=${BENCH_RUNS:-5}
out_md=${BENCH_OUT:-$repo/BENCHMARKS.md}
fixtures=${BENCH_FIXTURES:-/work/shared/fixtures}
bases=${KEEL_BASES:-$HOME/.cache/keel/bases}

for t in "$keel" "$keel_rt"; do
	[ -x "$t" ] || {
		echo "bench/builder.sh: $t is not an executable (give KEEL_BUILD and KEEL_RUNTIME)" >&2
		exit 2
	}
done
for t in buildah podman skopeo umoci hyperfine runc python3; do
	command -v "$t" >/dev/null || {
		echo "bench/builder.sh: $t is missing (make bench installs it)" >&2
		exit 2
	}
done

# Base trees first, outside the namespace: the python one is cached across
# runs under $bases (debootstrap takes minutes the first time).
if [ -z "${_KEEL_BBENCH_NS:-}" ]; then
	"$repo/scripts/base-rootfs.sh" busybox "$bases/busybox"
	"$repo/scripts/base-rootfs.sh" python "$bases/python"
	_KEEL_BBENCH_NS=1 exec unshare --mount --propagation private -- bash "$0" "$keel" "$keel_rt"
fi

work=$(mktemp -d /tmp/keel-bbench.XXXXXX)
mkdir -p "$work"/{varlib-up,varlib-work,tmp,res,bin,podman-tmp}
mount -t overlay keel-bbench-varlib \
	-o "lowerdir=/var/lib,upperdir=$work/varlib-up,workdir=$work/varlib-work" /var/lib

K="$keel --root $work/keel"
# keel-build again, with runc for RUN steps as buildah and podman have: what
# the runtime is worth, apart from the builder.
KR="$keel --root $work/keel-runc"
KL="$keel --root $work/keel-load"
bundles=()
cleanup() {
	local b m
	for b in "${bundles[@]}"; do
		[ -e "$b" ] && $K unbundle "$b" >/dev/null 2>&1
	done
	for m in $(findmnt -rn -o TARGET | grep -F "$work" | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	umount -l /var/lib 2>/dev/null || true
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT

export TMPDIR=$work/tmp
cat >"$work/registries.conf" <<CONF
unqualified-search-registries = []
short-name-mode = "permissive"
CONF
cat >"$work/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
CONF
# Only a fallback: every command below names its store explicitly.
cat >"$work/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$work/unused/root"
runroot = "$work/unused/runroot"
CONF
export CONTAINERS_REGISTRIES_CONF=$work/registries.conf CONTAINERS_CONF=$work/containers.conf \
	CONTAINERS_STORAGE_CONF=$work/storage.conf

cs() { echo "--root $work/$1/root --runroot $work/$1/runroot --storage-driver overlay"; }
csref() { echo "containers-storage:[overlay@$work/$1/root+$work/$1/runroot]$2"; }
B="buildah $(cs buildah)"
P="podman $(cs podman) --tmpdir $work/podman-tmp"
PL="podman $(cs load) --tmpdir $work/podman-tmp"
tools=(keel keelrunc buildah podman)
runc=$(command -v runc)
cut -d' ' -f1-3 /proc/loadavg >"$work/res/load-start"

echo "importing the base images" >&2
for k in "$K" "$KR"; do
	$k import "$bases/busybox" local/busybox:latest >/dev/null
	$k import "$bases/python" local/python:3 >/dev/null
done
# The same bytes for buildah and podman, from keel's OCI layout.
for s in buildah podman; do
	for img in local/busybox:latest local/python:3; do
		skopeo copy -q --insecure-policy "oci:$work/keel/oci:$img" "$(csref $s "localhost/$img")"
	done
done
$PL images >/dev/null # creates the load store, so that load runs don't pay for it

cp -a "$fixtures/python-app" "$fixtures/busybox-app" "$work/"

# Each change writes a value never used before: with alternating values every
# tool would find the older one in its cache from the third run on.
# bump NAME FILE SED-REGEX PREFIX: a script replacing the match by PREFIX<n>.
bump() {
	cat >"$work/bin/$1" <<SH
#!/bin/sh
set -e
n=\$(cat $work/bin/counter 2>/dev/null || echo 100)
n=\$((n + 1))
echo "\$n" >$work/bin/counter
sed -i "s/$3/$4\$n/" $2
grep -q "$4\$n" $2
SH
	chmod +x "$work/bin/$1"
}
bump bump-python-src "$work/python-app/app.py" '^APP_REVISION = [0-9]*' 'APP_REVISION = '
bump bump-python-dep "$work/python-app/requirements.txt" '^click==[0-9.]*' 'click==8.1.'
bump bump-busybox-src "$work/busybox-app/src/app.sh" 'revision=[0-9]*' 'revision='

build_cmd() { # TOOL FIXTURE TAG
	case $1 in
	keel) echo "$K build -t $3 --progress quiet --network none --runtime $keel_rt $work/$2" ;;
	keelrunc) echo "$KR build -t $3 --progress quiet --network none --runtime $runc $work/$2" ;;
	buildah) echo "$B bud --layers --runtime runc --network none -q -t $3 $work/$2" ;;
	podman) echo "$P build --layers --runtime runc --network none -q -t $3 $work/$2" ;;
	esac
}
# Drops the image and every cached step; the base images stay.
prune_cmd() { # TOOL TAG
	case $1 in
	keel) echo "sh -c '$K rmi $2 >/dev/null 2>&1; $K prune --all >/dev/null'" ;;
	keelrunc) echo "sh -c '$KR rmi $2 >/dev/null 2>&1; $KR prune --all >/dev/null'" ;;
	buildah) echo "sh -c '$B rmi $2 >/dev/null 2>&1; $B rmi --prune >/dev/null'" ;;
	podman) echo "sh -c '$P rmi $2 >/dev/null 2>&1; $P image prune -f >/dev/null'" ;;
	esac
}

declare -A cmdline
hf() { # NAME WARMUP [hyperfine args...] CMD
	local name=$1 warm=$2
	shift 2
	cmdline[$name]=${*: -1}
	hyperfine --style none --runs "$runs" --warmup "$warm" -N --export-json "$work/res/$name.json" "$@" \
		>"$work/res/$name.out" 2>&1 || {
		echo "bench/builder.sh: $name failed:" >&2
		tail -n 20 "$work/res/$name.out" >&2
		return 1
	}
}
# Like hf for a keel command that may not exist yet: `n/a (not built)` when
# its --help or a trial run fails, instead of stopping the benchmark.
hf_optional() { # NAME HELP-SUBCOMMAND PREPARE CMD
	if $K "$2" --help >/dev/null 2>&1 && sh -c "$3" >/dev/null 2>&1 && $4 >"$work/res/$1.probe" 2>&1; then
		hf "$1" 1 --prepare "$3" "$4"
	else
		echo "n/a (not built)" >"$work/res/$1.na"
		cmdline[$1]=$4
		echo "$1: n/a ($(tail -n 1 "$work/res/$1.probe" 2>/dev/null))" >&2
	fi
}

for fx in python busybox; do
	ctx=$fx-app tag=bench/$fx
	for t in "${tools[@]}"; do
		echo "$fx: $t" >&2
		b=$(build_cmd "$t" "$ctx" "$tag")
		hf "$fx-cold-$t" 1 --prepare "$(prune_cmd "$t" "$tag")" "$b"
		hf "$fx-nochange-$t" 1 "$b"
		hf "$fx-src-$t" 1 --prepare "$work/bin/bump-$fx-src" "$b"
		[ "$fx" != python ] || hf "$fx-dep-$t" 1 --prepare "$work/bin/bump-$fx-dep" "$b"
	done
done
# A wrong build would make fast numbers meaningless: check what each tool
# built runs the fixture's self test.
$K bundle bench/python "$work/check-py" -- python3 app.py --selftest >/dev/null
bundles+=("$work/check-py")
python3 - "$work/check-py/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
json.dump(c, open(p, "w"))
PY
selftest=$(runc --root "$work/runc" run -b "$work/check-py" keel-bbench-check 2>&1)
case $selftest in
*'"cwd": "/app"'*'"flask": "3.0.3"'*) ;;
*)
	echo "bench/builder.sh: keel's python image fails its self test: $selftest" >&2
	exit 1
	;;
esac
for t in buildah podman; do
	case $t in
	buildah) out=$($B inspect --type image --format '{{.Docker.Config.Cmd}}' bench/python) ;;
	podman) out=$($P image inspect --format '{{.Config.Cmd}}' bench/python) ;;
	esac
	case $out in *app.py*) ;; *)
		echo "bench/builder.sh: $t built no bench/python: $out" >&2
		exit 1
		;;
	esac
done

echo "bundle and unpack" >&2
for img in python:3 busybox:latest; do
	n=${img%%:*}
	d=$work/bundle-$n dc=$work/bundle-copy-$n du=$work/umoci-$n
	bundles+=("$d" "$dc")
	hf "bundle-$n-keel" 3 --prepare "sh -c '[ ! -e $d ] || $K unbundle $d'" "$K bundle local/$img $d"
	hf "bundlecopy-$n-keel" 1 --prepare "sh -c '[ ! -e $dc ] || $K unbundle $dc'" "$K bundle --copy local/$img $dc"
	hf "bundle-$n-umoci" 1 --prepare "rm -rf $du" "umoci unpack --image $work/keel/oci:local/$img $du"
done
$K unbundle "$work/bundle-python"

echo "save and load" >&2
src=$(csref podman localhost/local/python:3)
for f in oci-archive docker-archive; do
	a=$work/save-keel-$f.tar s=$work/save-skopeo-$f.tar
	hf_optional "save-$f-keel" save "rm -f $a" "$K save -o $a --format $f local/python:3"
	hf "save-$f-skopeo" 1 --prepare "rm -f $s" "skopeo copy -q --insecure-policy $src $f:$s:localhost/local/python:3"
	rm -f "$a" "$s"
done
# One archive, made by skopeo, loaded by all three.
archive=$work/python-docker-archive.tar
skopeo copy -q --insecure-policy "$src" "docker-archive:$archive:localhost/local/python:3"
hf_optional load-keel load "sh -c '$KL rmi localhost/local/python:3 >/dev/null 2>&1; $KL prune --all >/dev/null'" \
	"$KL load -i $archive"
hf load-podman 1 --prepare "$PL rmi -a -f" "$PL load -q -i $archive"
hf load-skopeo 1 --prepare "$PL rmi -a -f" \
	"skopeo copy -q --insecure-policy docker-archive:$archive $(csref load localhost/local/python:3)"

cut -d' ' -f1-3 /proc/loadavg >"$work/res/load-end"
for t in keel keel_rt buildah podman skopeo umoci runc hyperfine; do
	case $t in
	keel) "$keel" --version ;;
	keel_rt) "$keel_rt" --version ;;
	*) $t --version ;;
	esac | head -n 1 >"$work/res/version-$t"
done
du -sb "$bases/python" | cut -f1 >"$work/res/size-python"
du -sb "$bases/busybox" | cut -f1 >"$work/res/size-busybox"
for name in "${!cmdline[@]}"; do printf '%s\t%s\n' "$name" "${cmdline[$name]}"; done >"$work/res/commands.tsv"

# BENCH_RESULTS=DIR keeps the raw hyperfine results (the temp dir goes).
if [ -n "${BENCH_RESULTS:-}" ]; then
	mkdir -p "$BENCH_RESULTS" && cp -a "$work/res/." "$BENCH_RESULTS/"
fi
PYTHONPATH="$here" python3 - "$work" "$out_md" "$runs" <<'PY'
import datetime, json, os, platform, sys
work, out, runs = sys.argv[1], sys.argv[2], sys.argv[3]
res = f"{work}/res"

def med(name):
    """Median in ms, or None when the cell was not measured."""
    p = f"{res}/{name}.json"
    if not os.path.exists(p):
        return None
    return json.load(open(p))["results"][0]["median"] * 1000

def fmt(v):
    if v is None:
        return "n/a (not built)"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"

def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a / b:.2f}"

def load(when):
    return open(f"{res}/load-{when}").read().strip().replace(" ", ", ")

def ver(t):
    return open(f"{res}/version-{t}").read().strip()

lines = ["| build (median ms) | keel-build | buildah | podman | keel/buildah | keel/podman | keel-build, RUN by runc |",
         "|---|---|---|---|---|---|---|"]
rows = [("python-app: cold (cache pruned)", "python-cold"),
        ("python-app: no change", "python-nochange"),
        ("python-app: source change (app.py)", "python-src"),
        ("python-app: dependency change (requirements.txt)", "python-dep"),
        ("busybox-app: cold (cache pruned)", "busybox-cold"),
        ("busybox-app: no change", "busybox-nochange"),
        ("busybox-app: source change (src/app.sh)", "busybox-src")]
for label, key in rows:
    k, kr, b, p = (med(f"{key}-{t}") for t in ("keel", "keelrunc", "buildah", "podman"))
    lines.append(f"| {label} | {fmt(k)} | {fmt(b)} | {fmt(p)} | {ratio(k, b)} | {ratio(k, p)} | {fmt(kr)} |")

# CPU time is what load on a shared machine disturbs least: the wall times
# above stretch with other work, the work done does not.
def cpu(name):
    p = f"{res}/{name}.json"
    if not os.path.exists(p):
        return None
    r = json.load(open(p))["results"][0]
    return (r["user"] + r["system"]) * 1000

lines += ["", "| build: CPU, user + sys of the command and its children (mean ms) | keel-build | buildah | podman | keel/buildah | keel/podman | keel-build, RUN by runc |",
          "|---|---|---|---|---|---|---|"]
for label, key in rows:
    k, kr, b, p = (cpu(f"{key}-{t}") for t in ("keel", "keelrunc", "buildah", "podman"))
    lines.append(f"| {label} | {fmt(k)} | {fmt(b)} | {fmt(p)} | {ratio(k, b)} | {ratio(k, p)} | {fmt(kr)} |")

mb = lambda n: int(open(f"{res}/size-{n}").read()) / 1e6
lines += ["", "| image operation (median ms) | keel-build | peer | peer's time | keel/peer |", "|---|---|---|---|---|"]
ops = [
    (f"bundle local/python:3 ({mb('python'):.0f} MB)", "bundle-python-keel", "umoci unpack", "bundle-python-umoci"),
    (f"bundle --copy local/python:3", "bundlecopy-python-keel", "umoci unpack", "bundle-python-umoci"),
    (f"bundle local/busybox:latest ({mb('busybox'):.1f} MB)", "bundle-busybox-keel", "umoci unpack", "bundle-busybox-umoci"),
    (f"bundle --copy local/busybox:latest", "bundlecopy-busybox-keel", "umoci unpack", "bundle-busybox-umoci"),
    ("save local/python:3 to an oci-archive", "save-oci-archive-keel", "skopeo copy from containers-storage", "save-oci-archive-skopeo"),
    ("save local/python:3 to a docker-archive", "save-docker-archive-keel", "skopeo copy from containers-storage", "save-docker-archive-skopeo"),
    ("load the python docker-archive", "load-keel", "podman load", "load-podman"),
    ("load the python docker-archive", "load-keel", "skopeo copy to containers-storage", "load-skopeo"),
]
for label, k, peer, p in ops:
    kv, pv = med(k), med(p)
    lines.append(f"| {label} | {fmt(kv)} | {peer} | {fmt(pv)} | {ratio(kv, pv)} |")

bp, bb = med("bundle-python-keel"), med("bundle-busybox-keel")
if bp is not None and bb is not None:
    lines += ["", f"`keel-build bundle` mounts an overlay of the layers the store already holds "
              f"extracted, so its time does not grow with the image: {fmt(bp)} ms for python "
              f"({mb('python'):.0f} MB) against {fmt(bb)} ms for busybox ({mb('busybox'):.1f} MB); "
              "`umoci unpack` and `bundle --copy` write every file."]

cmds = dict(l.rstrip("\n").split("\t", 1) for l in open(f"{res}/commands.tsv"))
def short(c):
    return c.replace(work, "$W")
shown = ["python-cold-keel", "python-cold-keelrunc", "python-cold-buildah", "python-cold-podman", "bundle-python-keel",
         "bundle-python-umoci", "save-oci-archive-keel", "save-oci-archive-skopeo", "load-keel",
         "load-podman", "load-skopeo"]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
fs = os.popen(f"findmnt -n -o FSTYPE --target {work}").read().strip()
section = "\n".join([
    "## keel-build vs buildah vs podman",
    "",
    f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {os.cpu_count()} cores ({cpu}), "
    f"{mem} GiB, kernel {platform.release()}, stores on {fs} under /tmp. "
    f"Versions: {ver('keel')} (RUN steps by {ver('keel_rt')}); {ver('buildah')}; {ver('podman')}; "
    f"{ver('skopeo')}; {ver('umoci')}; buildah and podman run RUN steps with {ver('runc')} "
    "(crun 1.8 fails on this host's hybrid cgroups); the last column is keel-build with `--runtime runc` too. "
    f"Load average (1, 5, 15 min) at the start: {load('start')}, at the end: {load('end')}: the machine is "
    "shared, and figures taken under load are slower and noisier than a quiet machine's.",
    "",
    f"Command: `make bench` (`bench/builder.sh`: {ver('hyperfine')} -N, {runs} runs + 1 warm-up per cell "
    "(3 for the overlay bundle), medians in ms). Fixtures: /work/shared/fixtures. "
    "All three use overlay storage in private stores under one temp dir `$W` "
    "(buildah and podman: `--root/--runroot --storage-driver overlay`), `--network none`, "
    "and the same base images: imported by `keel-build import` from scripts/base-rootfs.sh trees, and "
    "copied from keel's OCI layout into each containers-storage by `skopeo copy`. "
    "Cold = the image and its build cache removed before each run (`keel-build rmi` + `prune --all`, "
    "`buildah rmi` + `rmi --prune`, `podman rmi` + `image prune -f`), base images kept. "
    "Source and dependency changes write a value never used before in every run "
    "(`APP_REVISION = N` in app.py, the `click==` pin, `revision=N` in src/app.sh), "
    "so no run finds the change in a cache. Ratios below 1 mean keel-build is faster.",
    "",
] + lines + [
    "",
    "Exact commands (`$W` is the temp dir; the prepare commands are in bench/builder.sh):",
    "",
] + [f"- {n}: `{short(cmds[n])}`" for n in shown if n in cmds] + [""])

import bench_md
bench_md.write(out, "builder", section)
print(section)
PY
