#!/usr/bin/env bash
# Benchmarks keel-runtime side by side with runc and crun in one run, with
# hyperfine, and writes the table and ratios to BENCHMARKS.md, between the
# <!-- bench:runtime --> markers (the rest of the file is left as it is).
#   bench/runtime.sh [KEEL_RUNTIME]
# Measures: `run` of /bin/true (attached), create, start, delete, state,
# create+start+delete as one sequence, peak RSS of `create`, binary size.
# Everything runs in a private mount namespace whose /sys/fs/cgroup shows
# only the v1 hierarchies (bench/v1-namespace.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
keel=$(realpath "${1:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/keel-runtime}")
runs=${BENCH_RUNS:-50}
out_md=${BENCH_OUT:-$repo/BENCHMARKS.md}

. "$here/v1-namespace.sh" "$@"
. "$here/runtimes.sh" "$keel"

work=$(mktemp -d /tmp/keel-bench.XXXXXX)
cleanup() {
	delete_leftovers "$work"
	rm -rf "$work"
	v1_namespace_cleanup
}
trap cleanup EXIT

"$repo/scripts/busybox-bundle.sh" "$keel" "$work/bundle" true >/dev/null
# No pid-namespace-wide tricks: each runtime gets the same config.
for rt in "${names[@]}"; do mkdir -p "$work/state-$rt"; done

hf() { hyperfine --style basic --runs "$per_round" --warmup 1 -N "$@"; }
# The cells are measured in rounds, the runtimes' order rotated each round,
# and the samples of all rounds pooled: this VM's speed drifts over minutes,
# and one runtime's cells all measured first or last would carry that drift.
rounds=${BENCH_ROUNDS:-10}
per_round=$(((runs + rounds - 1) / rounds))
cells() { # cells RUNTIME ROUND
	local rt=$1 k=$2
	local r="${RT[$rt]} --root $work/state-$rt" b="--bundle $work/bundle"
	hf --export-json "$work/run-$rt-$k.json" "$r run $b bench-run-$rt" >/dev/null
	# One container at a time on an otherwise quiet machine: its first
	# cgroup attach then waits for a whole RCU grace period (see
	# runtime/src/cgroup_prime.rs), which back-to-back runs often skip.
	hf --export-json "$work/runq-$rt-$k.json" --prepare "sleep 0.05" "$r run $b bench-runq-$rt" >/dev/null
	hf --export-json "$work/create-$rt-$k.json" --prepare "$r delete -f bench-c-$rt" "$r create $b bench-c-$rt" >/dev/null
	hf --export-json "$work/start-$rt-$k.json" --prepare "sh -c '$r delete -f bench-s-$rt; $r create $b bench-s-$rt'" "$r start bench-s-$rt" >/dev/null
	hf --export-json "$work/delete-$rt-$k.json" --prepare "sh -c '$r create $b bench-d-$rt && $r start bench-d-$rt && sleep 0.02'" "$r delete -f bench-d-$rt" >/dev/null
	$r create $b bench-state-$rt
	hf --export-json "$work/state-$rt-$k.json" "$r state bench-state-$rt" >/dev/null
	$r delete -f bench-state-$rt
	hf --export-json "$work/csd-$rt-$k.json" "sh -c '$r create $b bench-csd-$rt && $r start bench-csd-$rt && $r delete -f bench-csd-$rt'" >/dev/null
	$r delete -f bench-c-$rt >/dev/null 2>&1 || true
	$r delete -f bench-s-$rt >/dev/null 2>&1 || true
}
for ((k = 0; k < rounds; k++)); do
	for ((i = 0; i < ${#names[@]}; i++)); do
		cells "${names[$(((i + k) % ${#names[@]}))]}" "$k"
	done
done
for rt in "${names[@]}"; do
	r="${RT[$rt]} --root $work/state-$rt"
	b="--bundle $work/bundle"
	# Peak RSS of create (the runtime process itself, in KiB), median of 9.
	for i in 1 2 3 4 5 6 7 8 9; do
		/usr/bin/time -f %M -o "$work/rss-$rt-$i" $r create $b bench-rss-$rt
		$r delete -f bench-rss-$rt
	done
	cat "$work"/rss-$rt-* | sort -n | sed -n 5p >"$work/rss-$rt"
	stat -L -c %s "${RT[$rt]}" >"$work/size-$rt"
	"${RT[$rt]}" --version | head -n 1 >"$work/version-$rt"
done

PYTHONPATH="$here" python3 - "$work" "$out_md" "$runs" "$keel" <<'PY'
import json, os, platform, subprocess, sys, datetime
work, out, runs, keel = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
names = ["keel", "runc", "crun"]
import glob, statistics
def med(kind, rt):
    times = []
    for f in sorted(glob.glob(f"{work}/{kind}-{rt}-*.json")):
        times += json.load(open(f))["results"][0]["times"]
    return statistics.median(times) * 1000
rows = [("run /bin/true (attached), back to back", "run"),
        ("run /bin/true, one every 50 ms (quiet machine)", "runq"),
        ("create", "create"), ("start", "start"),
        ("delete -f (stopped)", "delete"), ("state", "state"), ("create + start + delete", "csd")]
lines = []
lines.append("| measure | keel-runtime | runc | crun | keel/runc | keel/crun |")
lines.append("|---|---|---|---|---|---|")
for label, kind in rows:
    v = {rt: med(kind, rt) for rt in names}
    lines.append(f"| {label} (median ms) | {v['keel']:.2f} | {v['runc']:.2f} | {v['crun']:.2f} | {v['keel']/v['runc']:.2f} | {v['keel']/v['crun']:.2f} |")
rss = {rt: int(open(f"{work}/rss-{rt}").read()) for rt in names}
lines.append(f"| peak RSS of create (KiB) | {rss['keel']} | {rss['runc']} | {rss['crun']} | {rss['keel']/rss['runc']:.2f} | {rss['keel']/rss['crun']:.2f} |")
size = {rt: int(open(f"{work}/size-{rt}").read()) for rt in names}
lines.append(f"| binary size (KiB) | {size['keel']//1024} | {size['runc']//1024} | {size['crun']//1024} | {size['keel']/size['runc']:.2f} | {size['keel']/size['crun']:.2f} |")
versions = {rt: open(f"{work}/version-{rt}").read().strip() for rt in names}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = "\n".join([
    "## keel-runtime vs runc vs crun",
    "",
    f"Measured {datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC')} on {os.cpu_count()} cores ({cpu}), "
    f"kernel {platform.release()}, cgroup v1 (the hybrid host's cgroup2 mount hidden for all three, as crun 1.8 needs). "
    f"Versions: {versions['keel']}; {versions['runc']}; {versions['crun']}.",
    "",
    f"Command: `make bench` (`bench/runtime.sh`: hyperfine -N, {runs} runs per cell in rounds with the runtimes' order rotated, medians of the pooled samples; "
    "busybox bundle running `/bin/true`; peak RSS by GNU time, median of 9). Ratios below 1 mean keel-runtime is faster or smaller.",
    "",
] + lines + [""])
import bench_md
bench_md.write(out, "runtime", section)
print(section)
PY
