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

# tmux_session NAME CMD: an interactive command in a real terminal
tty_roundtrip() {
	local name=$1 cmd=$2 out=""
	tmux new-session -d -s "$name" -x 120 -y 40 "$cmd"
	# wait for the shell prompt inside the container
	local end=$((SECONDS + 30))
	while [ $SECONDS -lt $end ]; do
		out=$(tmux capture-pane -p -t "$name" 2>/dev/null || true)
		case "$out" in *'# '*) break ;; esac
		sleep 0.3
	done
	tmux send-keys -t "$name" 'echo $((6*7)); stty size' Enter
	end=$((SECONDS + 15))
	while [ $SECONDS -lt $end ]; do
		out=$(tmux capture-pane -p -t "$name" 2>/dev/null || true)
		case "$out" in *"40 120"*) break ;; esac
		sleep 0.3
	done
	tmux send-keys -t "$name" 'exit' Enter
	end=$((SECONDS + 15))
	while tmux has-session -t "$name" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.3; done
	tmux kill-session -t "$name" 2>/dev/null || true
	printf '%s' "$out"
}

summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
