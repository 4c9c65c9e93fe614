#!/usr/bin/env bash
# Makes the root filesystems of the two base images keel's builder tests, demo
# and benchmarks use, since there is no Docker Hub here:
#   busybox  local/busybox:latest - Debian's static busybox, a link per applet,
#            users root, nobody and app (1000:1000)
#   python   local/python:3 - a minbase Debian bookworm with python3, from the
#            Debian mirror in this machine's apt sources (takes a few minutes)
#
#   scripts/base-rootfs.sh busybox|python OUTDIR
#
# The tree is built in a temporary directory beside OUTDIR and renamed into
# place, so an interrupted run never leaves a half tree at OUTDIR. OUTDIR gets a
# stamp file, .keel-base-rootfs, naming the recipe and its version: when it
# already matches, the script does nothing, so callers can run it every time and
# cache the python tree (e.g. under ~/.cache/keel/). A leftover OUTDIR from an
# older recipe version is replaced; a directory without a stamp is never touched.
# Runs as root (chown, chroot, debootstrap) and installs busybox-static or
# debootstrap with apt-get when missing. Progress goes to stderr.
# KEEL_DEBIAN_MIRROR overrides the mirror found in the apt sources.
set -euo pipefail

# Bump a version whenever its recipe changes what ends up in the tree, so that
# cached trees are rebuilt.
BUSYBOX_RECIPE=busybox/1
PYTHON_RECIPE=python/1
SUITE=bookworm
STAMP=.keel-base-rootfs

prog=base-rootfs
# Never fails: a closed stderr must not stop the cleanup.
say() { printf '%s: %s\n' "$prog" "$*" >&2 || true; }
die() {
	say "error: $*"
	exit 1
}

usage() {
	printf 'usage: %s busybox|python OUTDIR\n' "$0" >&2
	exit 2
}

[ $# -eq 2 ] || usage
kind=$1
case $kind in
busybox) recipe=$BUSYBOX_RECIPE ;;
python) recipe=$PYTHON_RECIPE ;;
*) usage ;;
esac
[ -n "$2" ] || usage

name=$(basename -- "$2")
case $name in
/ | . | ..) die "OUTDIR '$2' must name a directory to create, not / . or .." ;;
esac

stamp_matches() { [ -f "$1/$STAMP" ] && grep -qxF "recipe=$recipe" "$1/$STAMP"; }

# The common case (a cached tree) must be quick and need neither root nor apt.
if stamp_matches "$2"; then
	say "$2 is already a $recipe root filesystem, nothing to do"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "building the $kind root filesystem needs root (chown, chroot, debootstrap); run it as root"

umask 022
mkdir -p -- "$(dirname -- "$2")" || die "cannot create the parent directory of $2"
parent=$(cd -- "$(dirname -- "$2")" && pwd -P)
out=$parent/$name

# Lists the mount points at or below $1, deepest first. mountinfo escapes
# blanks and backslashes as octal, which printf %b undoes.
mounts_under() {
	local raw mp
	while read -r raw; do
		printf -v mp '%b' "$raw"
		case $mp in
		"$1" | "$1"/*) printf '%s\n' "$mp" ;;
		esac
	done < <(awk '{ print $5 }' /proc/self/mountinfo) | sort -r
}

# Removes a tree of ours. debootstrap mounts /proc, /sys and sometimes host
# devices inside its target; a killed run can leave them there, and rm must
# never reach through them into the host, hence the unmounts and
# --one-file-system.
remove_tree() {
	local mp
	[ -e "$1" ] || return 0
	while read -r mp; do
		[ -n "$mp" ] || continue
		say "unmounting $mp left inside $1"
		umount -l -- "$mp" || say "warning: could not unmount $mp"
	done < <(mounts_under "$1")
	rm -rf --one-file-system -- "$1"
}

tmp=
child=
cleanup() {
	local code=$?
	# Messages to a reader that went away (| head) must not end the cleanup.
	trap '' PIPE
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	if [ -n "$tmp" ] && [ -e "$tmp" ]; then
		say "removing the unfinished tree $tmp"
		remove_tree "$tmp" || say "warning: could not remove $tmp entirely"
	fi
	exit "$code"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 141' PIPE

# Two callers building the same OUTDIR (parallel tests) would otherwise both
# spend minutes on debootstrap; the second waits and then finds the stamp.
exec 9>"$parent/.$name.lock" || die "cannot create the lock file $parent/.$name.lock"
if ! flock -n 9; then
	say "waiting for another run building $out"
	flock 9
fi
if stamp_matches "$out"; then
	say "$out was built by another run meanwhile, nothing to do"
	exit 0
fi

if [ -e "$out" ] || [ -L "$out" ]; then
	if [ -L "$out" ] || [ ! -d "$out" ]; then
		die "$out exists and is not a directory; remove it or choose another OUTDIR"
	elif [ -f "$out/$STAMP" ]; then
		say "$out holds $(sed -n 's/^recipe=//p' "$out/$STAMP" | head -n1) (wanted $recipe), rebuilding it"
	elif [ -n "$(ls -A -- "$out")" ]; then
		die "$out exists, is not empty and has no $STAMP, so it was not made by this script; remove it or choose another OUTDIR"
	fi
fi

# Runs killed with SIGKILL leave their temporary trees; we hold the lock, so
# nobody else is using them.
for stale in "$parent/.$name.tmp."*; do
	[ -e "$stale" ] || continue
	say "removing $stale left by an interrupted run"
	remove_tree "$stale" || die "cannot remove $stale; remove it by hand (check nothing is mounted below it)"
done

tmp=$(mktemp -d -- "$parent/.$name.tmp.XXXXXX") || die "cannot create a temporary directory in $parent"
chmod 0755 -- "$tmp"

# Installs Debian packages that are missing, with scripts/deps.sh, keeping our
# stdout clean.
need_debs() {
	"$(dirname -- "$0")/deps.sh" "$@" >&2 || die "could not install $* with apt-get"
}

# The first http(s) URI of a Debian release (not -security, -updates or third
# party suites) with component main, read the way apt does: sources.list, then
# sources.list.d/*.list and *.sources in order, one-line and deb822 formats.
find_mirror() {
	local files=() f
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*; do
		case $f in
		*.list | *.sources) [ -f "$f" ] && files+=("$f") ;;
		esac
	done
	[ ${#files[@]} -gt 0 ] || return 0
	awk '
	function release(s) {
		return s ~ /^(buster|bullseye|bookworm|trixie|forky|sid|oldoldstable|oldstable|stable|testing|unstable)$/
	}
	function has(list, word,   n, a, i) {
		n = split(list, a, /[ \t]+/)
		for (i = 1; i <= n; i++) if (a[i] == word) return 1
		return 0
	}
	function any_release(list,   n, a, i) {
		n = split(list, a, /[ \t]+/)
		for (i = 1; i <= n; i++) if (release(a[i])) return 1
		return 0
	}
	function first_http(list,   n, a, i) {
		n = split(list, a, /[ \t]+/)
		for (i = 1; i <= n; i++) if (a[i] ~ /^https?:\/\//) return a[i]
		return ""
	}
	function stanza_done(   u) {
		if (tolower(f["enabled"]) != "no" && has(f["types"], "deb") &&
		    has(f["components"], "main") && any_release(f["suites"])) {
			u = first_http(f["uris"])
			if (u != "") { print u; found = 1; exit }
		}
		delete f; key = ""
	}
	FNR == 1 { if (deb822) stanza_done(); deb822 = FILENAME ~ /\.sources$/ }
	deb822 {
		if ($0 ~ /^#/) next
		if ($0 ~ /^[ \t]*$/) { stanza_done(); next }
		if ($0 ~ /^[ \t]/) { if (key != "") f[key] = f[key] " " $0; next }
		key = tolower(substr($0, 1, index($0, ":") - 1))
		f[key] = substr($0, index($0, ":") + 1)
		gsub(/^[ \t]+|[ \t]+$/, "", f[key])
		next
	}
	{
		sub(/#.*/, "")
		if ($1 != "deb") next
		line = $0
		sub(/^[ \t]*deb[ \t]+/, "", line)
		if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
		n = split(line, w, /[ \t]+/)
		if (n < 3 || w[1] !~ /^https?:\/\// || !release(w[2])) next
		for (i = 3; i <= n; i++) if (w[i] == "main") { print w[1]; found = 1; exit }
	}
	END { if (!found && deb822) stanza_done() }
	' "${files[@]}"
}

build_busybox() {
	local bb applet dir target i version
	need_debs busybox-static
	# The dynamic busybox package also installs /bin/busybox; ask dpkg for
	# the static one's path so the tree never gets a binary needing libc.
	bb=$(dpkg -L busybox-static | grep -m1 '/s\?bin/busybox$') || die "dpkg lists no busybox binary in busybox-static"
	[ -x "$bb" ] || die "$bb from busybox-static is missing or not executable"
	version=$(dpkg-query -W -f='${Version}' busybox-static)
	say "building the busybox tree from $bb (busybox-static $version)"

	mkdir -p -- "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,srv,home/app}
	cp -- "$bb" "$tmp/bin/busybox"
	chmod 0755 -- "$tmp/bin/busybox"

	# --list-full names each applet where busybox expects it (bin/sh,
	# usr/bin/awk, sbin/ifconfig...); relative links keep the tree usable
	# from outside a chroot too.
	local count=0
	while read -r applet; do
		case $applet in
		'' | bin/busybox) continue ;;
		/* | *..*) die "busybox --list-full printed an unexpected path: $applet" ;;
		esac
		dir=$(dirname -- "$applet")
		if [ "$dir" = bin ]; then
			target=busybox
		else
			target=bin/busybox
			for ((i = $(tr -cd / <<<"$applet" | wc -c); i > 0; i--)); do target=../$target; done
		fi
		mkdir -p -- "$tmp/$dir"
		ln -sfn -- "$target" "$tmp/$applet"
		count=$((count + 1))
	done < <("$bb" --list-full)
	[ "$count" -gt 0 ] || die "$bb --list-full printed no applets"
	say "linked $count applets"

	printf '%s\n' \
		'root:x:0:0:root:/root:/bin/sh' \
		'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
		'app:x:1000:1000:app:/home/app:/bin/sh' >"$tmp/etc/passwd"
	printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'app:x:1000:' >"$tmp/etc/group"
	chmod 0644 -- "$tmp/etc/passwd" "$tmp/etc/group"
	chmod 1777 -- "$tmp/tmp"
	chmod 0700 -- "$tmp/root"
	chown 1000:1000 -- "$tmp/home/app"

	say "checking: chroot $tmp /bin/sh -c 'id app'"
	env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot -- "$tmp" /bin/sh -c 'id app' >&2 ||
		die "the new busybox tree does not work: chroot $tmp /bin/sh -c 'id app' failed"

	printf 'recipe=%s\nbusybox-static=%s\n' "$recipe" "$version" >"$tmp/$STAMP"
	# Same package, same tree, same layer digest: pin every mtime to the
	# busybox binary's (set by the package) instead of the build time.
	local epoch
	epoch=$(stat -c %Y -- "$bb")
	find "$tmp" -exec touch -h -d "@$epoch" -- {} +
}

build_python() {
	local mirror log
	need_debs debootstrap
	mirror=${KEEL_DEBIAN_MIRROR:-$(find_mirror)}
	[ -n "$mirror" ] || die "no http(s) Debian mirror with component main in /etc/apt/sources.list or /etc/apt/sources.list.d/*.{list,sources}; set KEEL_DEBIAN_MIRROR=URL"
	say "debootstrap --variant=minbase --include=python3 $SUITE $tmp $mirror (a few minutes)"
	# In the background so that a signal reaches our trap at once, instead of
	# after debootstrap has finished.
	debootstrap --variant=minbase --include=python3 "$SUITE" "$tmp" "$mirror" >&2 &
	child=$!
	if ! wait "$child"; then
		child=
		log=$tmp/debootstrap/debootstrap.log
		if [ -f "$log" ]; then
			say "the end of $log:"
			tail -n 25 -- "$log" >&2
		fi
		die "debootstrap of $SUITE from $mirror failed"
	fi
	child=

	# What apt downloaded is only useful on this machine, now, and is most of
	# the size; images are expected to run apt-get update themselves.
	say "removing apt lists, caches and .debs"
	find "$tmp/var/lib/apt/lists" "$tmp/var/cache/apt" -mindepth 1 \
		! -type d -delete
	# debootstrap copies this host's resolv.conf and hostname; runtimes provide
	# both per container, and the host's have no place in a shared image.
	rm -f -- "$tmp/etc/resolv.conf" "$tmp/etc/hostname"
	# Runtimes populate /dev; device nodes in a layer only get in the way of
	# unprivileged unpacking. Its mounts are gone once debootstrap succeeded.
	[ -z "$(mounts_under "$tmp")" ] || die "debootstrap left mounts below $tmp: $(mounts_under "$tmp" | tr '\n' ' ')"
	find "$tmp/dev" -mindepth 1 -delete

	say "checking: chroot $tmp python3 -c 'print(1)'"
	# -B: the check must not add .pyc files to the tree.
	[ "$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin chroot -- "$tmp" python3 -B -c 'print(1)')" = 1 ] ||
		die "the new python tree does not work: chroot $tmp python3 -c 'print(1)' failed"

	printf 'recipe=%s\nsuite=%s\nmirror=%s\n' "$recipe" "$SUITE" "$mirror" >"$tmp/$STAMP"
}

"build_$kind"

old=
if [ -e "$out" ]; then
	old=$tmp.old
	mv -T -- "$out" "$old" || die "cannot move the old $out aside"
fi
if ! mv -T -- "$tmp" "$out"; then
	[ -z "$old" ] || mv -T -- "$old" "$out" || say "warning: the old tree is left at $old"
	die "cannot rename $tmp to $out"
fi
tmp=
say "wrote the $recipe root filesystem to $out"
if [ -n "$old" ]; then
	remove_tree "$old" || say "warning: could not remove the old tree $old entirely; the next run retries"
fi
