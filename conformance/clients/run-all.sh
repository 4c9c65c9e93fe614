#!/usr/bin/env bash
# Runs every real-client scenario against RUNTIME and prints one summary line
# per client; exits non-zero if any check failed.
#   conformance/clients/run-all.sh RUNTIME
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rt=$(realpath "${1:?usage: run-all.sh RUNTIME}")
status=0 total_p=0 total_f=0
summaries=()
for client in docker containerd podman build-docker build-podman; do
	echo "=== $client"
	out=$("$here/$client.sh" "$rt" 2>&1 | tee /dev/stderr)
	last=$(printf '%s\n' "$out" | tail -n 1)
	p=$(echo "$last" | awk '/ passed, / {print $1}')
	f=$(echo "$last" | awk '/ passed, / {print $3}')
	if [ -z "$p" ]; then p=0 f=1; fi
	[ "$f" = 0 ] || status=1
	total_p=$((total_p + p)) total_f=$((total_f + f))
	summaries+=("$client: $p passed, $f failed")
done
echo
printf '%s\n' "${summaries[@]}"
echo "$total_p passed, $total_f failed"
exit $status
