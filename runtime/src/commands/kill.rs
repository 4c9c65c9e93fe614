//! `kill`: send a signal to the container's init, or with `--all` to every
//! process in its cgroup.

use libcgroups::common::CgroupManager;
use libcontainer::container::ContainerStatus;
use libcontainer::error::LibcontainerError;
use nix::sys::signal::Signal;

use crate::container::{load_for_change, GlobalOpts};
use crate::error::{Result, RuntimeError};

pub fn kill(g: &GlobalOpts, id: &str, signal: &str, all: bool) -> Result<()> {
    let signo = crate::signal::parse(signal)?;
    // Locked until the end: libcontainer rewrites state.json after the
    // signal, by which time the container may have died and its foreground
    // `run` be deleting it.
    let (mut c, _lock) = load_for_change(g, id)?;
    if matches!(
        c.status(),
        ContainerStatus::Stopped | ContainerStatus::Creating
    ) && !all
    {
        return Err(RuntimeError::NotRunning(id.to_string()));
    }
    match Signal::try_from(signo) {
        Ok(sig) => crate::container::retry_raced_refresh(&mut c, |c| c.kill(sig, all))
            .map_err(|e| kill_failed(id, e)),
        Err(_) => {
            // Real-time signals are outside libcontainer's (and nix's) enum.
            let pids = if all {
                super::cgroup_manager(&c)?
                    .get_all_pids()
                    .map_err(|e| RuntimeError::Cgroup {
                        what: format!("processes of container {id}"),
                        message: crate::error::chain(&e),
                    })?
                    .into_iter()
                    .map(|p| p.as_raw())
                    .collect()
            } else {
                c.pid().map(|p| vec![p.as_raw()]).unwrap_or_default()
            };
            for pid in pids {
                // SAFETY: plain kill(2).
                if unsafe { libc::kill(pid, signo) } != 0 && !all {
                    return Err(RuntimeError::io(
                        format!("signal {signo} to container {id}"),
                        std::io::Error::last_os_error(),
                    ));
                }
            }
            Ok(())
        }
    }
}

/// libcontainer refreshes the status again before it signals: a container
/// found stopped then (its init exited after our own look) is reported as
/// runc reports it, which is what containerd's shim looks for.
fn kill_failed(id: &str, e: LibcontainerError) -> RuntimeError {
    match e {
        LibcontainerError::IncorrectStatus(ContainerStatus::Stopped) => {
            RuntimeError::NotRunning(id.to_string())
        }
        e => RuntimeError::container(format!("killing container {id}"), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_found_stopped_is_not_running() {
        let stopped = LibcontainerError::IncorrectStatus(ContainerStatus::Stopped);
        assert_eq!(
            kill_failed("c1", stopped).to_string(),
            "container not running: c1"
        );
        let other = kill_failed("c1", LibcontainerError::Exist).to_string();
        assert!(other.starts_with("killing container c1"), "{other}");
    }
}
