//! A container's cgroup v1 directories from one read of
//! `/proc/self/mountinfo`.
//!
//! libcgroups' v1 manager finds each controller's hierarchy by reading and
//! parsing mountinfo (and `/proc/self/cgroup`) through libpathrs' checked
//! procfs opens, once per controller it knows: twelve times for every
//! manager. After a container has stopped, that is most of what removing
//! it costs (about 1.5 ms of a 2 ms delete here). The rules below are
//! libcgroups' own, so the directories are the ones its `remove` takes.

use std::path::{Path, PathBuf};

/// The v1 controllers libcgroups 0.7 manages, in its order
/// (`libcgroups::v1::controller_type::CONTROLLERS`, which it does not
/// export). Named hierarchies such as `name=systemd` are not among them.
const CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// Whether a cgroup mount at `mount_point` is the hierarchy of
/// `controller`: libcgroups matches the mount point's last component, and
/// finds co-mounted pairs under either name.
fn is_hierarchy_of(controller: &str, mount_point: &Path) -> bool {
    let names: &[&str] = match controller {
        "cpu" => &["cpu,cpuacct", "cpu"],
        "cpuacct" => &["cpu,cpuacct", "cpuacct"],
        "net_cls" => &["net_cls,net_prio", "net_prio,net_cls", "net_cls"],
        "net_prio" => &["net_cls,net_prio", "net_prio,net_cls", "net_prio"],
        other => return mount_point.ends_with(other),
    };
    names.iter().any(|n| mount_point.ends_with(n))
}

/// mountinfo escapes space, tab, newline and backslash in paths as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            (b'0'..=b'3').contains(&d[0]) && d[1..].iter().all(|x| (b'0'..=b'7').contains(x))
        });
        if let (b'\\', Some(d)) = (b[i], octal) {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points of every `cgroup` (v1) filesystem, in mountinfo order.
fn cgroup_mounts(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fs_type = after.split(' ').next()?;
            if fs_type != "cgroup" {
                return None;
            }
            before.split(' ').nth(4).map(unescape)
        })
        .collect()
}

/// The directory of every mounted controller for the container whose
/// cgroup path (from its saved config) is `cgroup_path`, first mount first
/// as in libcgroups; `None` for an empty path, which libcgroups resolves
/// against the caller's own cgroup instead.
pub fn container_dirs(mountinfo: &str, cgroup_path: &Path) -> Option<Vec<PathBuf>> {
    if cgroup_path.as_os_str().is_empty() {
        return None;
    }
    let relative = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let mounts = cgroup_mounts(mountinfo);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for controller in CONTROLLERS {
        if let Some(m) = mounts.iter().find(|m| is_hierarchy_of(controller, m)) {
            let dir = m.join(relative);
            // cpu and cpuacct share a directory where they are co-mounted.
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    Some(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:6 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
31 26 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
32 26 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
33 26 0:30 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
34 26 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
35 26 0:32 / /sys/fs/cgroup/we\\040ird rw - cgroup cgroup rw,freezer
36 30 0:33 / /tmp/memory rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_each_mounted_controller_once() {
        let dirs = container_dirs(HYBRID, Path::new(":youki:c1")).unwrap();
        let want: Vec<PathBuf> = [
            "/sys/fs/cgroup/cpu,cpuacct/:youki:c1",
            "/sys/fs/cgroup/memory/:youki:c1",
            "/sys/fs/cgroup/pids/:youki:c1",
            "/sys/fs/cgroup/net_cls,net_prio/:youki:c1",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, want);
    }

    #[test]
    fn absolute_paths_are_under_each_hierarchy() {
        let dirs = container_dirs(HYBRID, Path::new("/keel/c1")).unwrap();
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/memory/keel/c1")));
        assert!(dirs.iter().all(|d| d.starts_with("/sys/fs/cgroup")));
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        assert_eq!(unescape("/a\\040b\\134c"), PathBuf::from("/a b\\c"));
        assert_eq!(unescape("/trailing\\04"), PathBuf::from("/trailing\\04"));
        assert_eq!(unescape("/not\\777octal"), PathBuf::from("/not\\777octal"));
        // A controller's hierarchy mounted under a name that is not its own
        // is not found (libcgroups matches on the mount point's last component).
        let dirs = container_dirs(HYBRID, Path::new("x")).unwrap();
        assert!(!dirs.iter().any(|d| d.starts_with("/sys/fs/cgroup/we ird")));
    }

    #[test]
    fn empty_path_is_left_to_libcgroups() {
        assert_eq!(container_dirs(HYBRID, Path::new("")), None);
    }

    #[test]
    fn non_cgroup_mounts_are_ignored() {
        let dirs = container_dirs(HYBRID, Path::new("x")).unwrap();
        assert!(!dirs.contains(&PathBuf::from("/tmp/memory/x")));
    }

    /// The same answer as libcgroups' own manager on this machine.
    #[test]
    fn matches_libcgroups_here() {
        use libcgroups::common::CgroupSetup;
        if !matches!(
            libcgroups::common::get_cgroup_setup(),
            Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid)
        ) {
            return;
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut ours = container_dirs(&mountinfo, Path::new(":youki:probe")).unwrap();
        let mut theirs: Vec<PathBuf> = libcgroups::v1::util::list_supported_mount_points()
            .unwrap()
            .into_values()
            .map(|m| m.join(":youki:probe"))
            .collect();
        ours.sort();
        theirs.sort();
        theirs.dedup();
        assert_eq!(ours, theirs);
    }
}
