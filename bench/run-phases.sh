#!/usr/bin/env bash
# Where the time of one `run` of /bin/true goes, for keel-runtime, runc and
# crun side by side, from the kernel's own process events (bpftrace on the
# sched tracepoints: no runtime is instrumented or slowed differently).
# Writes the table to BENCHMARKS.md between the <!-- bench:run-phases -->
# markers.
#   bench/run-phases.sh [KEEL_RUNTIME]
# Each run is cut at the runtime's exec, the fork of the process that goes
# on to become the container's program (for keel-runtime, libcontainer's
# intermediate process; for runc, `runc init`; for crun, its child), that
# program's exec and exit, and the runtime's exit. Runs are back to back, as
# in the first row of bench/runtime.sh, in the same pure cgroup v1 namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
keel=$(realpath "${1:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/keel-runtime}")
runs=${PHASE_RUNS:-100}
out_md=${BENCH_OUT:-$repo/BENCHMARKS.md}
command -v bpftrace >/dev/null || { echo "run-phases: bpftrace missing (apt install bpftrace)" >&2; exit 1; }

. "$here/v1-namespace.sh" "$@"
. "$here/runtimes.sh" "$keel"

work=$(mktemp -d /tmp/keel-phases.XXXXXX)
tracer=
cleanup() {
	[ -n "$tracer" ] && kill "$tracer" 2>/dev/null && wait "$tracer" 2>/dev/null
	delete_leftovers "$work"
	rm -rf "$work"
	v1_namespace_cleanup
}
trap cleanup EXIT
"$repo/scripts/busybox-bundle.sh" "$keel" "$work/bundle" /bin/true >/dev/null
for rt in "${names[@]}"; do mkdir -p "$work/state-$rt"; done

cat >"$work/events.bt" <<'BT'
tracepoint:sched:sched_process_fork { printf("%llu fork %d %d\n", nsecs, args->parent_pid, args->child_pid); }
tracepoint:sched:sched_process_exec { printf("%llu exec %d %s\n", nsecs, args->pid, str(args->filename)); }
tracepoint:sched:sched_process_exit { printf("%llu exit %d\n", nsecs, args->pid); }
BT
# bpftrace warns about RLIMIT_MEMLOCK on this kernel and works regardless.
bpftrace "$work/events.bt" >"$work/events" 2>"$work/bpftrace.err" &
tracer=$!
for _ in $(seq 100); do
	grep -q '^Attaching' "$work/events" "$work/bpftrace.err" 2>/dev/null && break
	sleep 0.1
done
sleep 1
# Each runtime's runs together (back to back), in rotated rounds.
rounds=5
for ((k = 0; k < rounds; k++)); do
	for ((i = 0; i < ${#names[@]}; i++)); do
		rt=${names[$(((i + k) % ${#names[@]}))]}
		for ((j = 0; j < runs / rounds; j++)); do
			"${RT[$rt]}" --root "$work/state-$rt" run --bundle "$work/bundle" "phase-$rt"
		done
	done
done
sleep 0.5
kill -INT "$tracer"
wait "$tracer" || true
tracer=

PYTHONPATH="$here" python3 - "$work/events" "$out_md" "${RT[keel]}" "${RT[runc]}" "${RT[crun]}" <<'PY'
import datetime, os, statistics, sys
events, out, keel, runc, crun = sys.argv[1:6]
binaries = {keel: "keel", runc: "runc", crun: "crun"}
binaries_by_name = {v: k for k, v in binaries.items()}
parent = {}  # child pid -> (parent pid, fork time): the latest fork wins (pids are reused)
forked = {}
runs = []    # open and finished runs, in order
by_pid = {}  # runtime pid -> its run
for line in open(events):
    f = line.split()
    if len(f) < 3 or not f[0].isdigit():
        continue
    t, kind = int(f[0]) / 1e6, f[1]
    if kind == "fork":
        parent[int(f[3])] = int(f[2])
        forked[int(f[3])] = t
    elif kind == "exec":
        pid, path = int(f[2]), f[3]
        if path in binaries and pid not in by_pid:
            by_pid[pid] = {"rt": binaries[path], "start": t}
            runs.append(by_pid[pid])
        elif path == "/bin/true":
            # The container's program: its ancestry leads to the runtime.
            chain, p = [pid], pid
            while p in parent and p not in by_pid and len(chain) < 10:
                p = parent[p]
                chain.append(p)
            if p in by_pid:
                r = by_pid[p]
                r["fork"] = forked[chain[-2]]
                r["exec"], r["program"] = t, pid
    elif kind == "exit":
        pid = int(f[2])
        for r in runs[-3:]:
            if r.get("program") == pid and "program_exit" not in r:
                r["program_exit"] = t
        if pid in by_pid:
            by_pid.pop(pid)["end"] = t
phases = [
    ("runtime's own start: exec to the fork of the container's process", "start", "fork"),
    ("container setup: that fork to the program's exec", "fork", "exec"),
    ("the program (/bin/true), exec to exit", "exec", "program_exit"),
    ("teardown: the program's exit to the runtime's exit", "program_exit", "end"),
    ("total", "start", "end"),
]
names = ["keel", "runc", "crun"]
done = {n: [r for r in runs if r["rt"] == n and all(k in r for k in ("fork", "exec", "program_exit", "end"))] for n in names}
for n in names:
    if not done[n]:
        sys.exit(f"run-phases: the trace holds no complete run of {n} ({binaries_by_name[n]})")
med = {(n, a, b): statistics.median(r[b] - r[a] for r in done[n]) for n in names for _, a, b in phases}
lines = ["| phase (median ms) | keel-runtime | runc | crun | keel/crun |", "|---|---|---|---|---|"]
for label, a, b in phases:
    v = {n: med[(n, a, b)] for n in names}
    lines.append(f"| {label} | {v['keel']:.2f} | {v['runc']:.2f} | {v['crun']:.2f} | {v['keel'] / v['crun']:.2f} |")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
section = "\n".join([
    "## Where one `run` spends its time",
    "",
    f"Measured {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {os.cpu_count()} cores ({cpu}), "
    f"kernel {os.uname().release}, cgroup v1 as above. Runs per runtime: " + ", ".join(f"{n} {len(done[n])}" for n in names) + ".",
    "",
    "Command: `make bench` (`bench/run-phases.sh`: back-to-back `run` of the benchmark bundle with `/bin/true`, "
    "in rotated rounds, timed by bpftrace on the kernel's sched fork/exec/exit tracepoints; medians per phase, "
    "so the phases need not add up to the total).",
    "",
] + lines + [""])
import bench_md
bench_md.write(out, "run-phases", section)
print(section)
PY
