# Sourced by the runtime benchmarks: the runtimes compared, by name, and the
# removal of whatever containers a run leaves in their state roots.
#   . "$here/runtimes.sh" KEEL_RUNTIME
declare -A RT=([keel]=$1 [runc]=$(realpath "$(command -v runc)") [crun]=$(realpath "$(command -v crun)"))
names=(keel runc crun)

# delete_leftovers WORK: every container still listed under WORK/state-NAME.
delete_leftovers() {
	local rt id
	for rt in "${!RT[@]}"; do
		for id in $("${RT[$rt]}" --root "$1/state-$rt" list -q 2>/dev/null); do
			"${RT[$rt]}" --root "$1/state-$rt" delete -f "$id" >/dev/null 2>&1 || true
		done
	done
}
