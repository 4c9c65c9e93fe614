# Sourced by the runtime benchmarks: runs the calling script again in a
# private mount namespace whose /sys/fs/cgroup shows only the v1
# hierarchies. crun 1.8 refuses this hybrid host otherwise, and all the
# runtimes compared then see the same pure v1 host.
#   . "$here/v1-namespace.sh" "$@"    # first thing in the script
#   v1_namespace_cleanup              # in the script's own EXIT trap
# The host's tree is unmounted in the namespace, not just covered: covered
# mounts stay listed in mountinfo, and a runtime that mounts every
# hierarchy it finds there into the container (libcontainer does) would
# mount each one twice, which no real host asks of it.

if [ -z "${_KEEL_BENCH_NS:-}" ]; then
	_KEEL_BENCH_NS=1 exec unshare --mount --propagation private -- bash "$0" "$@"
fi
# The namespace's mounts go with it, but their mount point is in the host's /tmp.
v1_namespace_cleanup() {
	umount -l /sys/fs/cgroup 2>/dev/null || true
	umount -l "$_v1_old" 2>/dev/null || true
	rmdir "$_v1_old" 2>/dev/null || true
}
_v1_old=$(mktemp -d /tmp/keel-bench-cg.XXXXXX)
# Until the script sets its own trap (which calls v1_namespace_cleanup too),
# a failure while the tree is built still removes the mount point.
trap v1_namespace_cleanup EXIT
mount --rbind /sys/fs/cgroup "$_v1_old"
umount -R /sys/fs/cgroup
mount -t tmpfs -o mode=755 keel-bench-cgroup /sys/fs/cgroup
for _v1_d in "$_v1_old"/*; do
	_v1_n=${_v1_d##*/}
	[ "$_v1_n" = unified ] && continue
	if [ -L "$_v1_d" ]; then
		ln -s "$(readlink "$_v1_d")" "/sys/fs/cgroup/$_v1_n"
	elif mountpoint -q "$_v1_d"; then
		mkdir -p "/sys/fs/cgroup/$_v1_n" && mount --bind "$_v1_d" "/sys/fs/cgroup/$_v1_n"
	fi
done
umount -R "$_v1_old"
