#!/usr/bin/env bash
# Benchmarks keel-shim, the per-container supervisor, side by side with
# podman + conmon in one run, and writes the tables to BENCHMARKS.md between
# <!-- bench:shim --> and <!-- /bench:shim --> (nothing else is touched).
#   bench/shim.sh [BIN_DIR]     BIN_DIR holds keel-shim, keel-build, keel-runtime
# Measures:
#  1. memory of the supervisor per idle detached container: N containers
#     running `sleep 1000`, RSS and PSS (smaps_rollup) of the N keel-shim
#     supervisors (with keel-runtime, then with runc) vs the N conmons;
#  2. log throughput: a detached container writes LOG_MIB MiB of 64-byte
#     lines to stdout; time from `run -d` until `wait` returns, then the
#     log's lines are counted (none may be missing);
#  3. `run --rm IMAGE true`, end to end, with hyperfine.
# podman uses conmon and runc (crun 1.8 fails on this hybrid cgroup host),
# with private storage (conformance/clients/lib.sh podman_up) on overlay, the
# same kind of rootfs keel-shim mounts. Both get `--network none` (a new
# network namespace with loopback), so neither sets up networking beyond it.
# Knobs: BENCH_RUNS (hyperfine runs, 40), BENCH_CONTAINERS (20),
# BENCH_LOG_RUNS (3), BENCH_LOG_MIB (1024), BENCH_OUT (BENCHMARKS.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bin=$(realpath "${1:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release}")
runs=${BENCH_RUNS:-40}
ncont=${BENCH_CONTAINERS:-20}
log_runs=${BENCH_LOG_RUNS:-3}
log_mib=${BENCH_LOG_MIB:-1024}
out_md=${BENCH_OUT:-$repo/BENCHMARKS.md}

[ "$(id -u)" -eq 0 ] || {
	echo "bench/shim.sh: needs root (containers, mounts)" >&2
	exit 2
}
for b in keel-shim keel-build keel-runtime; do
	[ -x "$bin/$b" ] || {
		echo "bench/shim.sh: $bin/$b is missing; build with cargo build --release first" >&2
		exit 2
	}
done
runc=$(command -v runc)
for b in podman conmon hyperfine python3; do
	command -v "$b" >/dev/null || {
		echo "bench/shim.sh: $b is missing (make bench installs it)" >&2
		exit 2
	}
done

. "$repo/conformance/clients/lib.sh"
# podman's side: sets work (its private dir), P (the podman wrapper) and an
# EXIT trap, replaced below by one that tears down both sides.
podman_up "$runc" keel-shimbench-podman
# vfs copies the whole rootfs per container; overlay is what keel-shim uses
# and what podman uses by default, so compare like with like.
sed -i 's/^driver = "vfs"$/driver = "overlay"/' "$work/storage.conf"
kw=$(mktemp -d /tmp/keel-shimbench.XXXXXX)
res=$kw/results
mkdir -p "$res"

# Wrapper files (not functions) so that hyperfine -N can run them as it runs
# $P: keel-shim with keel-runtime (K) and with runc (KC), sharing one store.
mk_keel() {
	printf '#!/bin/sh\nexec %s --root %s --run-dir %s --store %s --runtime %s "$@"\n' \
		"$bin/keel-shim" "$kw/root" "$kw/run" "$kw/store" "$2" >"$1"
	chmod +x "$1"
}
K=$kw/keel-shim
KC=$kw/keel-shim-runc
mk_keel "$K" "$bin/keel-runtime"
mk_keel "$KC" "$runc"

sampler=""
cleanup() {
	set +e
	[ -n "$sampler" ] && stop_pid "$sampler"
	local k id pid
	for k in "$K" "$KC"; do
		for id in $("$k" ps -aq 2>/dev/null); do "$k" rm -f "$id" >/dev/null 2>&1; done
	done
	# Supervisors that outlived rm (should be none): only ours, by their pid files.
	for pid in $(cat "$kw"/run/*/supervisor.pid 2>/dev/null); do
		grep -qF "$kw" "/proc/$pid/cmdline" 2>/dev/null && stop_pid "$pid"
	done
	unmount_under "$kw"
	rm -rf "$kw"
	podman_down
}
trap cleanup EXIT

img_keel=local/busybox:latest
img_podman=localhost/local/busybox:latest
bases=${XDG_CACHE_HOME:-$HOME/.cache}/keel/bases
"$repo/scripts/base-rootfs.sh" busybox "$bases/busybox" 2>/dev/null
"$bin/keel-build" --root "$kw/store" import "$bases/busybox" "$img_keel" >/dev/null
tar -C "$bases/busybox" -c . | "$P" import - local/busybox >/dev/null 2>"$res/podman-import.err" ||
	{
		cat "$res/podman-import.err" >&2
		exit 1
	}
# podman raises nofile/nproc above this machine's hard limits, which
# CAP_SYS_RESOURCE (missing from its bounding set) would need: keep the host's.
podman_run=(run --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
keel_run=(run --network none)
[ "$("$P" info --format '{{.Host.OCIRuntime.Path}} {{.Store.GraphDriverName}}')" = "$runc overlay" ] ||
	{
		echo "bench/shim.sh: podman does not use $runc on overlay" >&2
		exit 1
	}

# snapshot DIR PID...: the memory files of every PID, taken while all of
# them run (PSS divides shared pages among the processes mapping them).
snapshot() {
	local dir=$1 pid i=0
	shift
	mkdir -p "$dir"
	for pid in "$@"; do
		i=$((i + 1))
		cat "/proc/$pid/smaps_rollup" >"$dir/$i.rollup"
		cat "/proc/$pid/smaps" >"$dir/$i.smaps"
		cat "/proc/$pid/status" >"$dir/$i.status"
	done
}

# Other work on the machine skews the timings: say how busy it was.
cut -d' ' -f1-3 /proc/loadavg >"$res/load-start"

echo "== 1. supervisor memory, $ncont idle containers each" >&2
for side in keel keel-runc; do
	k=$K
	[ $side = keel-runc ] && k=$KC
	ids=() pids=()
	for i in $(seq "$ncont"); do
		ids+=("$("$k" "${keel_run[@]}" -d --name "mem-$side-$i" "$img_keel" sleep 1000)")
	done
	for id in "${ids[@]}"; do pids+=("$(cat "$kw/run/$id/supervisor.pid")"); done
	# Let every supervisor reach its idle loop (the last one was just started).
	sleep 2
	snapshot "$res/mem-$side" "${pids[@]}"
	"$k" rm -f "${ids[@]}" >/dev/null
done
ids=() pids=()
for i in $(seq "$ncont"); do
	ids+=("$("$P" "${podman_run[@]}" -d --name "mem-podman-$i" "$img_podman" sleep 1000)")
done
for id in "${ids[@]}"; do pids+=("$("$P" inspect -f '{{.State.ConmonPid}}' "$id")"); done
sleep 2
snapshot "$res/mem-podman" "${pids[@]}"
"$P" rm -f -t 0 "${ids[@]}" >/dev/null
stat -L -c %s "$bin/keel-shim" >"$res/size-keel"
stat -L -c %s "$(command -v conmon)" >"$res/size-conmon"

echo "== 2. log throughput, $log_mib MiB of 64-byte lines, $log_runs runs each" >&2
line=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde
[ $((log_mib % 16)) -eq 0 ] || {
	echo "bench/shim.sh: BENCH_LOG_MIB must be a multiple of 16" >&2
	exit 2
}
bytes=$((log_mib * 1048576))
lines=$((bytes / 64))
echo "$lines" >"$res/log-lines"
# busybox `yes | head` writes 4 KiB at a time and tops out near 125 MiB/s
# into a pipe here, which would measure the producer, not the supervisor. So
# it makes a 16 MiB block of lines once and busybox cat sends it again and
# again (sendfile, 64 KiB per call: over 2 GiB/s into a pipe here).
producer="yes $line 2>/dev/null | head -c 16777216 >/tmp/block && set -- &&
	while [ \$# -lt $((log_mib / 16)) ]; do set -- \"\$@\" /tmp/block; done && exec cat \"\$@\""
# The same producer outside any container, into a pipe that cat reads and
# discards: the ceiling for a supervisor that does no work.
bb=$bases/busybox/bin/busybox
mkdir -p "$kw/producer/tmp"
for r in $(seq "$log_runs"); do
	t0=$(date +%s.%N)
	(
		cd "$kw/producer"
		PATH=$bases/busybox/bin:$bases/busybox/usr/bin "$bb" sh -c "${producer//\/tmp/tmp}" | cat >/dev/null
	)
	echo "$t0 $(date +%s.%N)" >>"$res/log-null"
done
# sample PID FILE: the process's last utime+stime (clock ticks) until it
# exits, so the supervisor's CPU per GiB can be told from the producer's.
sample() {
	while [ -r "/proc/$1/stat" ]; do
		cut -d' ' -f14,15 "/proc/$1/stat" >"$2.tmp" 2>/dev/null && mv "$2.tmp" "$2"
		sleep 0.05
	done
}
for r in $(seq "$log_runs"); do
	# Alternating, so that both sides see the same page cache and disk state.
	t0=$(date +%s.%N)
	id=$("$K" "${keel_run[@]}" -d --name "log-keel-$r" "$img_keel" sh -c "$producer")
	sample "$(cat "$kw/run/$id/supervisor.pid")" "$res/log-keel-$r.cpu" &
	sampler=$!
	"$K" wait "$id" >/dev/null
	t1=$(date +%s.%N)
	wait "$sampler" || true
	sampler=""
	log=$kw/root/$id/ctr.log
	# json-file: one entry per line, so every line must be there whole.
	full=$(grep -cF "{\"log\":\"$line\\n\",\"stream\":\"stdout\"" "$log" || true)
	echo "$t0 $t1 $(wc -l <"$log") $full $(stat -c %s "$log")" >"$res/log-keel-$r"
	"$K" rm -f "$id" >/dev/null

	t0=$(date +%s.%N)
	id=$("$P" "${podman_run[@]}" -d --log-driver k8s-file --name "log-podman-$r" "$img_podman" sh -c "$producer")
	sample "$("$P" inspect -f '{{.State.ConmonPid}}' "$id")" "$res/log-podman-$r.cpu" &
	sampler=$!
	# podman polls every 250 ms by default; 20 ms is keel-shim's interval.
	"$P" wait --interval 20ms "$id" >/dev/null
	t1=$(date +%s.%N)
	wait "$sampler" || true
	sampler=""
	log=$("$P" inspect -f '{{.HostConfig.LogConfig.Path}}' "$id")
	# k8s-file: a line may come in partial (P) entries ended by a full (F)
	# one, so F entries count lines, and whole-line F entries show splits.
	fl=$(grep -c ' stdout F ' "$log" || true)
	full=$(grep -c " stdout F $line\$" "$log" || true)
	echo "$t0 $t1 $fl $full $(stat -c %s "$log")" >"$res/log-podman-$r"
	"$P" rm -f -t 0 "$id" >/dev/null
done
getconf CLK_TCK >"$res/clk-tck"

echo "== 3. run --rm IMAGE true, $runs runs each" >&2
# keel-shim's `run --rm` returns once the exit status is in; its supervisor
# then runs `runtime delete` and removes the container by itself. podman's
# CLI removes it before it returns, so keel-shim is also timed until the
# container is gone (its root and run dirs empty) for a like-for-like figure.
settled=$kw/until-removed
cat >"$settled" <<SH
#!/bin/bash
"\$@" || exit
shopt -s nullglob
while :; do
	left=($kw/root/[0-9a-f]* $kw/run/[0-9a-f]*)
	[ \${#left[@]} -eq 0 ] && exit 0
	sleep 0.002
done
SH
chmod +x "$settled"
hyperfine --style basic --runs "$runs" --warmup 3 -N --export-json "$res/run.json" \
	-n keel-shim "$K ${keel_run[*]} --rm $img_keel true" \
	-n keel-shim-removed "$settled $K ${keel_run[*]} --rm $img_keel true" \
	-n keel-shim-runc "$KC ${keel_run[*]} --rm $img_keel true" \
	-n keel-shim-runc-removed "$settled $KC ${keel_run[*]} --rm $img_keel true" \
	-n podman "$P ${podman_run[*]} --rm $img_podman true" >&2

cut -d' ' -f1-3 /proc/loadavg >"$res/load-end"
"$bin/keel-shim" --version >"$res/version-keel"
"$bin/keel-runtime" --version | head -n 1 >>"$res/version-keel"
{
	podman --version
	conmon --version | head -n 1
	runc --version | head -n 1
} >"$res/version-podman"

PYTHONPATH="$here" python3 - "$res" "$out_md" "$runs" "$ncont" "$log_runs" "$log_mib" <<'PY'
import datetime, json, os, platform, statistics, sys

res, out, runs, ncont, log_runs, log_mib = sys.argv[1:7]
ncont, log_mib = int(ncont), int(log_mib)


def kv(path):
    d = {}
    for l in open(path):
        k, _, v = l.partition(":")
        v = v.split()
        if v and v[0].isdigit():
            d[k.strip()] = int(v[0])
    return d


def mem(side):
    d = f"{res}/mem-{side}"
    procs = []
    for i in range(1, ncont + 1):
        r = kv(f"{d}/{i}.rollup")
        r.update({"Status" + k: v for k, v in kv(f"{d}/{i}.status").items()})
        procs.append(r)
    return procs


def breakdown(side):
    # One process's resident pages by what they map: the binary, shared
    # libraries, the heap, other anonymous memory, the stack.
    groups = {}
    name = None
    for l in open(f"{res}/mem-{side}/1.smaps"):
        f = l.split()
        if "-" in f[0] and len(f) >= 5 and not f[0].endswith(":"):
            path = f[5] if len(f) > 5 else ""
            if path.endswith(("/keel-shim", "/keel-shim-supervisor", "/conmon")):
                name = "binary (file pages)"
            elif path == "[heap]":
                name = "heap"
            elif path == "[stack]":
                name = "stack"
            elif path == "":
                name = "anonymous mappings"
            elif path.startswith("["):
                name = "vdso/vvar"
            else:
                name = "shared libraries, locale"
        elif f[0] in ("Rss:", "Pss:", "Private_Dirty:") and name:
            g = groups.setdefault(name, {"Rss:": 0, "Pss:": 0, "Private_Dirty:": 0})
            g[f[0]] += int(f[1])
    return groups


sides = {"keel": "keel-shim + keel-runtime", "keel-runc": "keel-shim + runc", "podman": "conmon (podman) + runc"}
m = {s: mem(s) for s in sides}
lines = []
lines.append(f"### 1. Supervisor memory, {ncont} idle detached containers (`sleep 1000`)")
lines.append("")
lines.append("| supervisor | RSS sum (KiB) | PSS sum (KiB) | RSS per container (median KiB) | PSS per container (median KiB) | anon RSS per container (KiB) | threads |")
lines.append("|---|---|---|---|---|---|---|")
for s, label in sides.items():
    p = m[s]
    rss = [x["Rss"] for x in p]
    pss = [x["Pss"] for x in p]
    anon = [x["StatusRssAnon"] for x in p]
    thr = statistics.median(x["StatusThreads"] for x in p)
    lines.append(f"| {label} | {sum(rss)} | {sum(pss)} | {statistics.median(rss):.0f} | {statistics.median(pss):.0f} | {statistics.median(anon):.0f} | {thr:.0f} |")
for s in ("keel", "keel-runc"):
    lines.append(f"| ratio {sides[s]} / conmon | {sum(x['Rss'] for x in m[s]) / sum(x['Rss'] for x in m['podman']):.2f} | {sum(x['Pss'] for x in m[s]) / sum(x['Pss'] for x in m['podman']):.2f} | | | | |")
lines.append("")
size_k = int(open(f"{res}/size-keel").read())
size_c = int(open(f"{res}/size-conmon").read())
lines.append(f"Where one supervisor's resident pages are (KiB; PSS with all {ncont} running; binary sizes: keel-shim {size_k // 1024} KiB, conmon {size_c // 1024} KiB):")
lines.append("")
lines.append("| mapping | keel-shim RSS | keel-shim PSS | keel-shim private dirty | conmon RSS | conmon PSS | conmon private dirty |")
lines.append("|---|---|---|---|---|---|---|")
bk, bc = breakdown("keel"), breakdown("podman")
zero = {"Rss:": 0, "Pss:": 0, "Private_Dirty:": 0}
for name in sorted(set(bk) | set(bc)):
    a, b = bk.get(name, zero), bc.get(name, zero)
    lines.append(f"| {name} | {a['Rss:']} | {a['Pss:']} | {a['Private_Dirty:']} | {b['Rss:']} | {b['Pss:']} | {b['Private_Dirty:']} |")
lines.append("")

expected = int(open(f"{res}/log-lines").read())
tck = int(open(f"{res}/clk-tck").read())
mib = log_mib


def log_side(side):
    rows = []
    for r in range(1, int(log_runs) + 1):
        t0, t1, counted, full, size = open(f"{res}/log-{side}-{r}").read().split()
        cpu = None
        try:
            u, s = open(f"{res}/log-{side}-{r}.cpu").read().split()
            cpu = (int(u) + int(s)) / tck
        except (OSError, ValueError):
            pass
        rows.append({"secs": float(t1) - float(t0), "lines": int(counted), "full": int(full), "size": int(size), "cpu": cpu})
    return rows


null = [float(b) - float(a) for a, b in (l.split() for l in open(f"{res}/log-null"))]
lk, lp = log_side("keel"), log_side("podman")
lines.append(f"### 2. Log throughput: {mib} MiB of 64-byte lines ({expected} lines) to stdout, detached")
lines.append("")
lines.append("| | median s | MiB/s | lines in the log (each run) | whole lines (each run) | log file (MiB) | supervisor CPU s (median) |")
lines.append("|---|---|---|---|---|---|---|")
for label, rows in (("keel-shim json-file", lk), ("conmon k8s-file", lp)):
    secs = statistics.median(r["secs"] for r in rows)
    cpus = [r["cpu"] for r in rows if r["cpu"] is not None]
    cpu = f"{statistics.median(cpus):.2f}" if cpus else "?"
    lines.append(
        f"| {label} | {secs:.2f} | {mib / secs:.0f} | {', '.join(str(r['lines']) for r in rows)} | "
        f"{', '.join(str(r['full']) for r in rows)} | {statistics.median(r['size'] for r in rows) / 1048576:.0f} | {cpu} |"
    )
ns = statistics.median(null)
lines.append(f"| producer alone, into `cat >/dev/null` (no container) | {ns:.2f} | {mib / ns:.0f} | | | | |")
tk = statistics.median(r["secs"] for r in lk)
tp = statistics.median(r["secs"] for r in lp)
lost_k = any(r["lines"] != expected or r["full"] != expected for r in lk)
lost_p = any(r["lines"] != expected for r in lp)
lines.append("")
lines.append(
    f"keel-shim / conmon throughput: **{tp / tk:.2f}x**. Lines lost: keel-shim {'YES' if lost_k else 'none'}, "
    f"conmon {'YES' if lost_p else 'none'} (expected {expected} in every run)."
)
lines.append("")

runj = {r["command"]: r for r in json.load(open(f"{res}/run.json"))["results"]}
lines.append(f"### 3. `run --rm IMAGE true`, end to end (hyperfine -N, {runs} runs + 3 warm-up)")
lines.append("")
lines.append("| command | median ms | mean ms | min ms | podman / this |")
lines.append("|---|---|---|---|---|")
pm = runj["podman"]["median"]
labels = {
    "keel-shim": "keel-shim + keel-runtime (until the CLI returns)",
    "keel-shim-removed": "keel-shim + keel-runtime (until the container is removed)",
    "keel-shim-runc": "keel-shim + runc (until the CLI returns)",
    "keel-shim-runc-removed": "keel-shim + runc (until the container is removed)",
    "podman": "podman + conmon + runc (removed when the CLI returns)",
}
for name, label in labels.items():
    r = runj[name]
    lines.append(f"| {label} | {r['median'] * 1000:.1f} | {r['mean'] * 1000:.1f} | {r['min'] * 1000:.1f} | {pm / r['median']:.2f} |")
lines.append("")

pk = lambda s, k: sum(x[k] for x in m[s])
targets = [
    ("supervisor RSS below conmon's", pk("keel", "Rss") < pk("podman", "Rss"), f"{pk('keel', 'Rss') / pk('podman', 'Rss'):.2f}x"),
    ("supervisor PSS below conmon's", pk("keel", "Pss") < pk("podman", "Pss"), f"{pk('keel', 'Pss') / pk('podman', 'Pss'):.2f}x"),
    ("log throughput at least 2x conmon's, no line lost", tp / tk >= 2 and not lost_k, f"{tp / tk:.2f}x"),
    ("`run --rm true` 5x faster than podman (CLI returns)", pm / runj["keel-shim"]["median"] >= 5, f"{pm / runj['keel-shim']['median']:.2f}x"),
    ("`run --rm true` 5x faster than podman (container removed)", pm / runj["keel-shim-removed"]["median"] >= 5, f"{pm / runj['keel-shim-removed']['median']:.2f}x"),
]
lines.append("| target | met | measured |")
lines.append("|---|---|---|")
for t, ok, v in targets:
    lines.append(f"| {t} | {'yes' if ok else 'no'} | {v} |")
lines.append("")

vk = open(f"{res}/version-keel").read().split("\n")
vp = open(f"{res}/version-podman").read().strip().split("\n")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
head = [
    "## keel-shim vs podman + conmon",
    "",
    f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {os.cpu_count()} cores ({cpu}), "
    f"kernel {platform.release()}, hybrid cgroup host (v1 controllers), load average "
    f"{open(f'{res}/load-start').read().strip()} at the start and {open(f'{res}/load-end').read().strip()} at the end "
    f"(other builds share the machine). Versions: {vk[0]} with {vk[1]}; "
    f"{'; '.join(vp)}.",
    "",
    "Command: `make bench` (`bench/shim.sh target/<host tuple>/release`). Both sides run the same busybox rootfs "
    "(`scripts/base-rootfs.sh busybox`, imported with `keel-build import` and `podman import`) with "
    "`--network none`; podman has private storage on overlay (conformance/clients/lib.sh `podman_up`), "
    "runc as its runtime, cgroupfs, file events, and `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`. "
    "Memory: `run -d IMAGE sleep 1000` for each container, then `/proc/PID/smaps_rollup` of every supervisor "
    "(keel-shim's from `supervisor.pid`, podman's `.State.ConmonPid`) while all run. "
    f"Logs: `run -d IMAGE sh -c 'yes <63 chars> | head -c 16777216 >/tmp/block && cat /tmp/block /tmp/block ...'` "
    f"({mib // 16} times, {mib * 1048576} bytes; busybox cat sends it with sendfile), timed from `run -d` until `wait` returns "
    "(`podman wait --interval 20ms`, keel-shim polls every 20 ms), then the log's lines counted; medians of "
    f"{log_runs} alternating runs; supervisor CPU from /proc/PID/stat sampled every 50 ms. "
    "End to end: `hyperfine -N` of the wrappers that add each side's private flags.",
    "",
]
# A blank line before the end marker, as this section has always had.
section = "\n".join(head + lines) + "\n"
import bench_md
bench_md.write(out, "shim", section)
print(section)
PY
