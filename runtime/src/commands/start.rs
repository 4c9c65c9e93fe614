//! `start`: let a created container's process run its program.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use libcontainer::container::{Container, ContainerStatus};

use crate::container::{load_for_change, GlobalOpts};
use crate::error::{Result, RuntimeError};
use crate::state_lock::StateLock;

pub fn start(g: &GlobalOpts, id: &str) -> Result<()> {
    let (mut c, lock) = load_for_change(g, id)?;
    match c.status() {
        ContainerStatus::Created => start_created(&mut c, lock),
        ContainerStatus::Running | ContainerStatus::Paused => {
            Err(RuntimeError::AlreadyRunning(id.to_string()))
        }
        status => Err(RuntimeError::CannotStart {
            id: id.to_string(),
            status,
        }),
    }
}

/// Starts a created container whose state directory `lock` holds (start
/// rewrites state.json), releases it, then runs its poststart hooks (ours to
/// run: see `crate::hooks`) unlocked, since a hook may ask for the state.
pub(crate) fn start_created(c: &mut Container, lock: StateLock) -> Result<()> {
    c.start()
        .map_err(|e| RuntimeError::container(format!("starting container {}", c.id()), e))?;
    drop(lock);
    let late = crate::hooks::load(c);
    if late.poststart.is_empty() {
        return Ok(());
    }
    // The spec runs poststart hooks after the user's process is executed;
    // libcontainer's start returns once init has been told to go, before its
    // startContainer hooks and execve. Wait for the execve so that hooks
    // never overtake the container (runc has this race; we do not).
    if let Some(pid) = c.pid() {
        wait_for_exec(pid.as_raw(), Duration::from_secs(10));
    }
    let root = c.root.clone();
    crate::hooks::run_each("poststart", &late.poststart, c, Some(&root));
    Ok(())
}

/// Returns once `pid` no longer runs our own binary (libcontainer's init is
/// a clone of this process, so its executable changes exactly at its
/// execve), once it is gone, or after `limit` with a warning.
fn wait_for_exec(pid: i32, limit: Duration) {
    let Ok(own) = std::fs::metadata("/proc/self/exe") else {
        return;
    };
    let exe = format!("/proc/{pid}/exe");
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        // A zombie or vanished process has no exe: it has run (or failed).
        let Ok(now) = std::fs::metadata(&exe) else {
            return;
        };
        if (now.dev(), now.ino()) != (own.dev(), own.ino()) {
            return;
        }
        if started.elapsed() >= limit {
            tracing::warn!(
                "container process {pid} has not executed its program after {limit:?}; running poststart hooks anyway"
            );
            return;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}
