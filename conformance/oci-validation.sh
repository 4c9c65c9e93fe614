#!/usr/bin/env bash
# Runs the OCI runtime-tools validation suite (../shared/conformance) against
# keel-runtime and compares each program with our recorded results and with
# the runc and crun anchors measured on this machine kind.
#
#   conformance/oci-validation.sh [--record] [RUNTIME]
#
# RUNTIME defaults to target/<host tuple>/release/keel-runtime. Without --record, exits 1
# if any program that passes in results/oci-validation.tsv (flaky ones aside)
# no longer passes, or if the total of passed assertions drops; with
# --record, writes the new results there.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
shared=${KEEL_SHARED:-$repo/../shared}
record=0
if [ "${1:-}" = --record ]; then record=1; shift; fi
runtime=${1:-$repo/target/$(rustc -vV | sed -n 's/^host: //p')/release/keel-runtime}
results=$here/results/oci-validation.tsv
summary=$here/results/oci-validation.txt
# Programs whose outcome varies from run to run for every runtime here
# (see ../shared/conformance/README.md).
flaky="pidfile poststart poststop_fail killsig process_rlimits"

[ -x "$runtime" ] || { echo "oci-validation: runtime $runtime not built" >&2; exit 2; }
[ -x "$shared/conformance/run-oci-validation.sh" ] || { echo "oci-validation: $shared/conformance/run-oci-validation.sh not found" >&2; exit 2; }

logdir=$(mktemp -d "${TMPDIR:-/tmp}/keel-oci-validation.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
bash "$shared/conformance/run-oci-validation.sh" -o "$logdir" "$runtime" | tee "$logdir/out.txt"
last=$(tail -n 1 "$logdir/out.txt")
echo
echo "keel-runtime: $last"

runc_anchor=$(ls "$shared"/conformance/anchors/runc-*.tsv | head -n 1)
crun_anchor=$(ls "$shared"/conformance/anchors/crun-*.tsv | head -n 1)
echo
echo "programs runc passes here that keel-runtime does not:"
join -t $'\t' <(grep -v '^#' "$runc_anchor" | cut -f1,2 | sort) \
	<(tail -n +2 "$logdir/results.tsv" | cut -f1,2 | sort) |
	awk -F'\t' '$2 ~ /^PASS/ && $3 != "PASS" {print "  " $1 " (runc " $2 ", keel " $3 ")"; n++} END {if (!n) print "  none"}'
echo "programs crun passes here that keel-runtime does not:"
join -t $'\t' <(grep -v '^#' "$crun_anchor" | cut -f1,2 | sort) \
	<(tail -n +2 "$logdir/results.tsv" | cut -f1,2 | sort) |
	awk -F'\t' '$2 ~ /^PASS/ && $3 != "PASS" {print "  " $1 " (crun " $2 ", keel " $3 ")"; n++} END {if (!n) print "  none"}'

if [ $record = 1 ]; then
	cp "$logdir/results.tsv" "$results"
	echo "$last" >"$summary"
	echo "recorded $results"
	exit 0
fi

[ -f "$results" ] || { echo "oci-validation: no recorded results in $results (run with --record)" >&2; exit 1; }
status=0
regressions=$(join -t $'\t' <(tail -n +2 "$results" | cut -f1,2 | sort) \
	<(tail -n +2 "$logdir/results.tsv" | cut -f1,2 | sort) |
	awk -F'\t' -v flaky=" $flaky " '$2 == "PASS" && $3 != "PASS" && index(flaky, " " $1 " ") == 0 {print "  " $1 ": was PASS, now " $3}')
if [ -n "$regressions" ]; then
	echo "REGRESSION: programs that passed before:"
	echo "$regressions"
	status=1
fi
was=$(awk '{print $1}' "$summary")
now=$(echo "$last" | awk '{print $1}')
# Flaky programs move a handful of assertions either way.
if [ "$now" -lt $((was - 5)) ]; then
	echo "REGRESSION: $now assertions passed, recorded $was"
	status=1
fi
[ $status = 0 ] && echo "no regression from the recorded results ($(cat "$summary"))"
exit $status
