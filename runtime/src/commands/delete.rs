//! `delete`: remove a stopped (or, with `--force`, any) container and
//! everything it holds: processes, cgroup, state directory; poststop hooks run.

use std::path::Path;
use std::time::Duration;

use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;

use crate::container::{load_for_change, validate_id, GlobalOpts};
use crate::error::{Result, RuntimeError};
use crate::state_lock::{Access, StateLock};

pub fn delete(g: &GlobalOpts, id: &str, force: bool) -> Result<()> {
    validate_id(id)?;
    let (mut c, lock) = match load_for_change(g, id) {
        Ok(loaded) => loaded,
        Err(RuntimeError::NotExist(_)) if force => {
            // runc: a forced delete of what is already gone succeeds, but
            // a directory left by a crashed create is still removed.
            for dir in [
                g.container_dir(id),
                super::create::private_bundle_dir(&g.root, id),
            ] {
                if dir.is_dir() {
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| RuntimeError::io(format!("removing {}", dir.display()), e))?;
                }
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if !force
        && matches!(
            c.status(),
            ContainerStatus::Running | ContainerStatus::Paused
        )
    {
        return Err(RuntimeError::NotStopped {
            id: id.to_string(),
            status: c.status(),
        });
    }
    delete_loaded(&mut c, force, lock)
}

/// Deletes a container this process created (`run`, or a `create` that
/// failed half-way), taking its lock first. One that another process has
/// deleted meanwhile (a client's `delete --force`) is simply gone.
pub(crate) fn delete_own(c: &mut Container, force: bool) -> Result<()> {
    match StateLock::acquire(&c.root, c.id(), Access::Write) {
        Ok(lock) => delete_loaded(c, force, lock),
        Err(RuntimeError::NotExist(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes a loaded container whose state directory `lock` holds, then
/// releases it and runs the poststop hooks (ours to run: see
/// `crate::hooks`; they are read before the state directory goes, and run
/// unlocked since a hook may well ask for the container's state).
pub(crate) fn delete_loaded(c: &mut Container, force: bool, lock: StateLock) -> Result<()> {
    let late = crate::hooks::load(c);
    let removed = match delete_stopped_quickly(c) {
        Ok(done) => done,
        Err(e) => {
            tracing::debug!("container {}: quick delete not possible: {e}", c.id());
            false
        }
    };
    let deleted = if removed {
        Ok(())
    } else {
        delete_waiting_for_cgroup(c, force)
    };
    match deleted {
        Ok(()) => {}
        Err(LibcontainerError::OtherIO(e)) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
            // The cgroup and processes are gone by now; what is left is the
            // directory, into which something that does not take the lock
            // wrote after libcontainer emptied it (exec's sockets, or a
            // runtime binary from before the lock). Empty it again.
            remove_state_dir(&c.root).map_err(|e| {
                RuntimeError::io(
                    format!(
                        "deleting container {}: removing {}",
                        c.id(),
                        c.root.display()
                    ),
                    e,
                )
            })?;
        }
        Err(e) => {
            return Err(RuntimeError::container(
                format!("deleting container {}", c.id()),
                e,
            ))
        }
    }
    if let Some(root) = c.root.parent() {
        let private = super::create::private_bundle_dir(root, c.id());
        if private.is_dir() {
            std::fs::remove_dir_all(&private)
                .map_err(|e| RuntimeError::io(format!("removing {}", private.display()), e))?;
        }
    }
    drop(lock);
    crate::hooks::run_each("poststop", &late.poststop, c, None);
    Ok(())
}

/// What libcontainer's delete does for a stopped container with nothing but
/// v1 cgroups and a state directory to remove, without its twelve reads of
/// mountinfo (see `crate::cgroup_v1`). Returns false, having changed
/// nothing that libcontainer's delete would not, when the container needs
/// more: it still runs, a cgroup still holds a process, the systemd
/// driver, cgroup v2, Intel RDT, or poststop hooks in libcontainer's config.
fn delete_stopped_quickly(c: &mut Container) -> std::io::Result<bool> {
    use libcgroups::common::CgroupSetup;
    crate::container::retry_raced_refresh(c, Container::refresh_status)
        .map_err(std::io::Error::other)?;
    if c.status() != ContainerStatus::Stopped
        || c.systemd()
        || c.intel_rdt_dir().is_some()
        || c.intel_rdt_monitoring_dir().is_some()
        || !matches!(
            libcgroups::common::get_cgroup_setup(),
            Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid)
        )
    {
        return Ok(false);
    }
    let config = match libcontainer::config::YoukiConfig::load(&c.root) {
        Ok(config) => config,
        // libcontainer's delete copes with a state directory without it.
        Err(_) => return Ok(false),
    };
    let poststop = config
        .hooks
        .as_ref()
        .and_then(|h| h.poststop().as_ref())
        .is_some_and(|h| !h.is_empty());
    if poststop {
        return Ok(false);
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let Some(dirs) = crate::cgroup_v1::container_dirs(&mountinfo, &config.cgroup_path) else {
        return Ok(false);
    };
    for dir in &dirs {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // EBUSY: processes left in it, which libcontainer's delete kills.
            Err(e) => {
                tracing::debug!("container {}: {}: {e}", c.id(), dir.display());
                return Ok(false);
            }
        }
    }
    remove_state_dir(&c.root)?;
    Ok(true)
}

/// libcontainer's delete, again while the cgroup cannot be removed yet: it
/// SIGKILLs the processes but gives them only about 100 ms to leave the
/// cgroup (libcgroups' rmdir retries), which a loaded machine overruns. The
/// container is saved as stopped by the first attempt, so a retry goes
/// straight to the cgroup and the state directory.
fn delete_waiting_for_cgroup(
    c: &mut Container,
    force: bool,
) -> std::result::Result<(), LibcontainerError> {
    const LIMIT: Duration = Duration::from_secs(5);
    let started = std::time::Instant::now();
    loop {
        match crate::container::retry_raced_refresh(c, |c| c.delete(force)) {
            Err(LibcontainerError::CgroupManager(e)) if started.elapsed() < LIMIT => {
                tracing::debug!(
                    "container {}: cgroup not removable yet ({e}); again",
                    c.id()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// `remove_dir_all`, tried a few times while a writer that ignores the lock
/// keeps putting files back; a directory already gone counts as removed.
pub(crate) fn remove_state_dir(dir: &Path) -> std::io::Result<()> {
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && attempt < 20 => {
                attempt += 1;
                tracing::debug!("removing {}: {e}; again", dir.display());
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_removal_tolerates_a_missing_directory() {
        let d = tempfile::tempdir().unwrap();
        remove_state_dir(&d.path().join("gone")).unwrap();
    }

    #[test]
    fn state_dir_removal_outlasts_a_concurrent_writer() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("state.json"), "{}").unwrap();
        // A writer recreating state.json for a while, as libcontainer's save
        // does (O_CREAT|O_TRUNC), until the directory is gone.
        let path = dir.clone();
        let writer = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(30) {
                if std::fs::write(path.join("state.json"), "{}").is_err() {
                    return;
                }
            }
        });
        remove_state_dir(&dir).unwrap();
        writer.join().unwrap();
        assert!(!dir.exists());
    }
}
