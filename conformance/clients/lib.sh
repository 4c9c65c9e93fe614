# Shared by the real-client scenarios: a private work dir, a busybox rootfs
# from Debian's busybox-static, named checks that count, and bounded waits.
# Sourced by docker.sh, containerd.sh and podman.sh.

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
notok() { echo "not ok - $1: $2"; failed=$((failed + 1)); }

# check NAME EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1" "expected '$2', got '$3'"; fi
}

# check_contains NAME NEEDLE HAYSTACK
check_contains() {
	case "$3" in
	*"$2"*) ok "$1" ;;
	*) notok "$1" "'$2' not in '$(printf %s "$3" | head -c 300)'" ;;
	esac
}

# wait_for SECONDS CMD...: polls until CMD succeeds
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $end ] && return 1
		sleep 0.2
	done
}

need_debs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "installing: ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# make_rootfs DIR: busybox and one link per applet, /etc/passwd with root
make_rootfs() {
	mkdir -p "$1"/{bin,etc,tmp,proc,sys,dev,root}
	cp /bin/busybox "$1/bin/busybox"
	local a
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$1/etc/passwd"
	printf 'root:x:0:\n' >"$1/etc/group"
}

# unmount_under DIR: anything still mounted below DIR, deepest first
unmount_under() {
	local m
	for m in $(findmnt -rn -o TARGET | grep -F "$1" | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

# stop_pid PID: TERM, then KILL after 10 s; only a PID this script started
stop_pid() {
	local pid=$1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	local end=$((SECONDS + 10))
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.2; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# wait_pane SESSION PATTERN SECONDS: prints the pane once PATTERN shows
wait_pane() {
	local out="" end=$((SECONDS + $3))
	while [ $SECONDS -lt $end ]; do
		out=$(tmux capture-pane -p -t "$1" 2>/dev/null || true)
		case "$out" in *"$2"*) break ;; esac
		sleep 0.3
	done
	printf '%s' "$out"
}

# tty_roundtrip NAME CMD: runs CMD (a container shell) in a real 120x40
# terminal, types into it, and prints what the screen showed.
tty_roundtrip() {
	local name=$1 cmd=$2 out
	tmux new-session -d -s "$name" -x 120 -y 40 "$cmd"
	wait_pane "$name" '# ' 30 >/dev/null
	tmux send-keys -t "$name" 'echo $((6*7)); stty size' Enter
	out=$(wait_pane "$name" "40 120" 15)
	tmux send-keys -t "$name" 'exit' Enter
	local end=$((SECONDS + 15))
	while tmux has-session -t "$name" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.3; done
	tmux kill-session -t "$name" 2>/dev/null || true
	printf '%s' "$out"
}

# engine_scenarios CLI IMAGE RUN_ARGS...: the docker-style checks, for any
# client with docker's verbs and flags (docker, podman). CLI is an
# executable wrapper that adds the client's private connection flags.
engine_scenarios() {
	local cli=$1 img=$2 out code
	shift 2
	local run=(run "$@")
	out=$(timeout 60 "$cli" "${run[@]}" --rm "$img" echo hello 2>&1)
	check "run attached prints the output" "hello" "$out"
	timeout 60 "$cli" "${run[@]}" --rm "$img" sh -c 'exit 3' >/dev/null 2>&1
	check "run attached returns the exit status" 3 "$?"

	timeout 60 "$cli" "${run[@]}" -d --name keel-c1 "$img" sh -c 'echo started; trap "exit 0" TERM; while :; do sleep 0.1; done' >/dev/null
	check "run detached is running" true "$("$cli" inspect -f '{{.State.Running}}' keel-c1 2>&1)"
	out=$(timeout 60 "$cli" exec keel-c1 sh -c 'echo in-exec; exit 4' 2>&1)
	code=$?
	check_contains "exec prints in the container" "in-exec" "$out"
	check "exec returns the exit status" 4 "$code"
	wait_for 10 sh -c "'$cli' logs keel-c1 2>&1 | grep -q started"
	check_contains "logs has the output" "started" "$("$cli" logs keel-c1 2>&1)"
	timeout 60 "$cli" stop -t 10 keel-c1 >/dev/null
	check "stop ends a TERM-handling container cleanly" 0 "$("$cli" inspect -f '{{.State.ExitCode}}' keel-c1 2>&1)"

	timeout 60 "$cli" "${run[@]}" -d --name keel-c2 "$img" sh -c 'trap "" TERM; while :; do sleep 0.1; done' >/dev/null
	timeout 60 "$cli" stop -t 1 keel-c2 >/dev/null 2>&1
	check "stop kills one that ignores TERM" 137 "$("$cli" inspect -f '{{.State.ExitCode}}' keel-c2 2>&1)"

	timeout 60 "$cli" "${run[@]}" -d --name keel-c3 "$img" sleep 300 >/dev/null
	timeout 60 "$cli" kill -s KILL keel-c3 >/dev/null
	wait_for 10 sh -c "[ \$('$cli' inspect -f '{{.State.Running}}' keel-c3) = false ]"
	check "kill -s KILL stops it" "false 137" "$("$cli" inspect -f '{{.State.Running}} {{.State.ExitCode}}' keel-c3 2>&1)"

	timeout 60 "$cli" "${run[@]}" -d --name keel-c4 "$img" sleep 300 >/dev/null
	timeout 60 "$cli" rm -f keel-c4 >/dev/null
	check "rm -f removes a running container" "" "$("$cli" ps -aq --filter name=keel-c4)"
	"$cli" rm keel-c1 keel-c2 keel-c3 >/dev/null
	check "rm removes stopped containers" "" "$("$cli" ps -aq)"

	out=$(tty_roundtrip "keel-tty-$$" "$cli ${run[*]} -it --rm $img sh")
	check_contains "interactive -t: the shell answers" "42" "$out"
	check_contains "interactive -t: the terminal size reaches it" "40 120" "$out"
}

# The clients make parent cgroups (docker/, libpod_parent/, the containerd
# namespace) in every hierarchy and leave them when the last container goes.
# cgroups_note NAME...: remember which of them exist before the run;
# cgroups_clean: remove, deepest first, those this run made (empty by then).
cgroup_names=() cgroups_before=" "
cgroups_note() {
	cgroup_names=("$@")
	local n
	for n in "$@"; do
		cgroups_before+="$(echo /sys/fs/cgroup/*/"$n" /sys/fs/cgroup/"$n") "
	done
}
cgroups_clean() {
	local n d
	for n in "${cgroup_names[@]}"; do
		for d in /sys/fs/cgroup/*/"$n" /sys/fs/cgroup/"$n"; do
			[ -d "$d" ] || continue
			case "$cgroups_before" in *" $d "*) continue ;; esac
			find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
		done
	done
}

# Paths the clients write outside their private dirs whatever flags they get
# (dockerd's /etc/docker/key.json and /run/docker/plugins, the runc shim's
# /run/containerd/{s,fifo,runc}, podman's /var/lib/containers/cache and its
# runtime root /run/<runtime>): paths_note PATH... before, paths_clean after
# removes those of them that did not exist before the run.
paths_new=()
paths_note() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || paths_new+=("$p")
	done
}
paths_clean() {
	local p
	for p in "${paths_new[@]}"; do
		[ -e "$p" ] && rm -rf -- "$p"
	done
}

# docker_up RUNTIME PREFIX: a private dockerd (data, exec root, socket in a
# new work dir) with RUNTIME registered and made the default. Sets work, D
# (a docker wrapper bound to the socket) and the EXIT trap that tears it all
# down; returns 1 (after a "not ok") if the daemon does not answer.
docker_up() {
	local rt=$1
	work=$(mktemp -d "/tmp/$2.XXXXXX")
	sock=$work/docker.sock
	dpid=""
	# A wrapper file rather than a function, so that timeout(1) can run it.
	D=$work/docker
	printf '#!/bin/sh\nexec docker -H unix://%s "$@"\n' "$sock" >"$D"
	chmod +x "$D"
	cgroups_note docker
	# dockerd's containerd starts the runc shim, which writes /run/containerd.
	paths_note /etc/docker/key.json /run/docker /run/containerd "/run/$(basename "$rt")"
	trap docker_down EXIT
	dockerd --data-root "$work/data" --exec-root "$work/exec" --pidfile "$work/dockerd.pid" \
		-H "unix://$sock" --bridge=none --iptables=false --ip6tables=false --ip-masq=false \
		--exec-opt native.cgroupdriver=cgroupfs --storage-driver=vfs \
		--add-runtime "keel=$rt" --default-runtime keel >"$work/dockerd.log" 2>&1 &
	dpid=$!
	if ! wait_for 60 "$D" info; then
		tail -20 "$work/dockerd.log"
		notok "dockerd starts" "no answer on $sock"
		return 1
	fi
}
docker_down() {
	if [ -S "$sock" ]; then
		for c in $("$D" ps -aq 2>/dev/null); do "$D" rm -f "$c" >/dev/null 2>&1; done
	fi
	stop_pid "$dpid"
	# dockerd's own containerd is its child and goes with it; be sure.
	[ -f "$work/exec/containerd/containerd.pid" ] && stop_pid "$(cat "$work/exec/containerd/containerd.pid")"
	unmount_under "$work"
	rm -rf "$work"
	cgroups_clean
	paths_clean
}

# podman_up RUNTIME PREFIX: podman with private root, runroot and config in
# a new work dir, RUNTIME as its runtime, cgroupfs and file events (PID 1
# here is not systemd). Sets work, P (a podman wrapper) and the EXIT trap.
podman_up() {
	local rt=$1
	work=$(mktemp -d "/tmp/$2.XXXXXX")
	cat >"$work/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/events.log"
runtime = "keel"
[engine.runtimes]
keel = ["$rt"]
CONF
	cat >"$work/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$work/root"
runroot = "$work/runroot"
CONF
	P=$work/podman
	printf '#!/bin/sh\nCONTAINERS_CONF=%s CONTAINERS_STORAGE_CONF=%s exec podman --tmpdir %s "$@"\n' \
		"$work/containers.conf" "$work/storage.conf" "$work/tmp" >"$P"
	chmod +x "$P"
	cgroups_note libpod_parent
	paths_note /var/lib/containers /run/containers /run/libpod "/run/$(basename "$rt")"
	trap podman_down EXIT
}
podman_down() {
	for c in $("$P" ps -aq 2>/dev/null); do "$P" rm -f -t 0 "$c" >/dev/null 2>&1; done
	# podman leaves no daemon; conmon processes end with their containers.
	for p in $(pgrep -f "conmon .*$work" 2>/dev/null); do stop_pid "$p"; done
	unmount_under "$work"
	rm -rf "$work"
	cgroups_clean
	paths_clean
}

# keel_build_fixture KEEL_BIN_DIR STORE: the shared busybox fixture built
# by keel-build into STORE as bbapp:latest (base from Debian's busybox-static,
# cached under ~/.cache/keel/bases).
keel_build_fixture() {
	local bases=${XDG_CACHE_HOME:-$HOME/.cache}/keel/bases
	"$here/../../scripts/base-rootfs.sh" busybox "$bases/busybox" 2>/dev/null
	"$1/keel-build" --root "$2" import "$bases/busybox" local/busybox:latest >/dev/null &&
		"$1/keel-build" --root "$2" build -q --runtime "$1/keel-runtime" -t bbapp \
			"$here/../../../shared/fixtures/busybox-app" >/dev/null
}

summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
