//! Starting, off the critical path, the RCU grace period that a
//! container's first cgroup attach waits for.
//!
//! Every write to a `cgroup.procs` file takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing. When no writer has taken it for
//! a while, that first means waiting for a full RCU grace period
//! (`rcu_sync_enter`): about 6 ms here, every time a container is started
//! on an otherwise quiet machine, spent asleep in the intermediate
//! process's first attach. A writer that comes within a grace period of an
//! earlier one does not wait (0.2 ms here).
//!
//! So `create`, `run` and `exec` fork, as their first act, a child that
//! writes "0" (itself) to the `cgroup.procs` of the cgroup it is already
//! in: a migration that moves nothing, but it takes the lock, so the grace
//! period starts while the runtime reads the config and sets up the
//! container, and is over, or nearly, by the time libcontainer attaches the
//! container's process. The child runs no Rust code after the fork, only
//! open/write/_exit on strings prepared before it, and is reaped when the
//! guard is dropped.
//!
//! The cgroup written to is one without controllers where there is one
//! (the cgroup2 hierarchy, or the `name=systemd` v1 hierarchy), so not even
//! a controller's attach callbacks see the no-op. Any failure (no cgroup
//! filesystem, no permission) only means no head start.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

/// Reaps the priming child when dropped.
#[derive(Debug)]
pub struct Primer {
    child: Option<Pid>,
}

impl Drop for Primer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            // ECHILD: a subreaping caller (`run`) has reaped it already.
            let _ = waitpid(pid, None);
        }
    }
}

/// The `cgroup.procs` of our own cgroup in the first usable hierarchy of
/// `/proc/self/cgroup` (given as `membership`), preferring those without
/// controllers; `root` is where cgroup filesystems are mounted.
fn procs_file(membership: &str, root: &Path) -> Option<PathBuf> {
    let mut candidates: Vec<(u8, PathBuf)> = Vec::new();
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        // Paths outside our cgroup namespace show as "/..".
        let Ok(relative) = Path::new(path).strip_prefix("/") else {
            continue;
        };
        if relative.components().any(|c| c.as_os_str() == "..") {
            continue;
        }
        let (rank, bases): (u8, Vec<PathBuf>) = match controllers {
            "" => (0, vec![root.join("unified"), root.to_path_buf()]),
            "name=systemd" => (1, vec![root.join("systemd")]),
            "pids" => (2, vec![root.join("pids")]),
            _ => continue,
        };
        for base in bases {
            let file = base.join(relative).join("cgroup.procs");
            if file.exists() {
                candidates.push((rank, file));
                break;
            }
        }
    }
    candidates
        .into_iter()
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, f)| f)
}

/// Forks the priming child; a no-op guard where there is nothing to write to.
pub fn start() -> Primer {
    let none = Primer { child: None };
    let Ok(membership) = std::fs::read_to_string("/proc/self/cgroup") else {
        return none;
    };
    let Some(file) = procs_file(&membership, Path::new("/sys/fs/cgroup")) else {
        return none;
    };
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = CString::new(file.as_os_str().as_bytes()) else {
        return none;
    };
    // SAFETY: the child only makes async-signal-safe calls (open, write,
    // _exit) on memory prepared before the fork, so it is sound whatever
    // other threads held at the time (the commands have none anyway).
    match unsafe { fork() } {
        Ok(ForkResult::Child) => unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::write(fd, b"0".as_ptr().cast(), 1);
            }
            libc::_exit(0);
        },
        Ok(ForkResult::Parent { child }) => Primer { child: Some(child) },
        Err(e) => {
            tracing::debug!("forking the cgroup primer: {e}");
            none
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dirs: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for dir in dirs {
            let p = d.path().join(dir);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("cgroup.procs"), "").unwrap();
        }
        d
    }

    #[test]
    fn prefers_a_hierarchy_without_controllers() {
        let root = tree(&["pids/a", "systemd/a", "unified/a"]);
        let membership = "3:pids:/a\n1:name=systemd:/a\n0::/a\n";
        assert_eq!(
            procs_file(membership, root.path()).unwrap(),
            root.path().join("unified/a/cgroup.procs")
        );
        let v1 = "3:pids:/a\n1:name=systemd:/a\n";
        assert_eq!(
            procs_file(v1, root.path()).unwrap(),
            root.path().join("systemd/a/cgroup.procs")
        );
    }

    #[test]
    fn pure_cgroup2_is_at_the_root() {
        let root = tree(&["user.slice/s"]);
        assert_eq!(
            procs_file("0::/user.slice/s\n", root.path()).unwrap(),
            root.path().join("user.slice/s/cgroup.procs")
        );
    }

    #[test]
    fn nothing_usable_means_no_primer() {
        let root = tree(&["memory/a"]);
        assert_eq!(procs_file("4:memory:/a\n", root.path()), None);
        assert_eq!(procs_file("0::/../outside\n", root.path()), None);
        assert_eq!(procs_file("0::/gone\n", root.path()), None);
        assert_eq!(procs_file("garbage", root.path()), None);
    }

    /// Root: the child really writes to our own cgroup and is reaped.
    #[test]
    fn primer_moves_nothing_and_is_reaped() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let primer = start();
        let pid = primer.child;
        drop(primer);
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
        if let Some(pid) = pid {
            assert!(!Path::new(&format!("/proc/{pid}")).exists());
        }
    }
}
