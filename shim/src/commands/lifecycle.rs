//! `start`, `stop`, `kill`, `restart`, `rm`, `wait`.

use std::time::{Duration, Instant};

use keel_builder::bundle::remove_bundle;

use super::run::detach_keys;
use super::{Result, Shim, ShimError};
use crate::attach::{attach, AttachEnd, AttachOptions};
use crate::container::{status, ContainerMeta, ExitRecord, Status};
use crate::supervisor::{spawn, start_created};

const POLL: Duration = Duration::from_millis(20);

/// docker's message for a verb that needs a running container.
fn not_running(meta: &ContainerMeta) -> ShimError {
    ShimError::Refused(format!("container {} is not running", meta.name))
}

pub fn start(
    shim: &Shim,
    names: &[String],
    attach_out: bool,
    interactive: bool,
    keys: Option<&str>,
) -> Result<i32> {
    let keys = detach_keys(keys)?;
    let mut code = 0;
    for name in names {
        let meta = shim.containers().resolve(name)?;
        match status(&shim.paths, &meta) {
            Status::Running { .. } => {}
            Status::Created if shim.paths.supervisor_pid(&meta.id).exists() => {
                if attach_out {
                    code = attach_and_start(shim, &meta, interactive, &keys)?;
                    continue;
                }
                start_created(&shim.paths, &meta.id)?;
            }
            // Never started, exited or dead: a new supervisor over the same
            // bundle (its upper dir keeps what the container wrote).
            _ => {
                forget_previous_run(shim, &meta)?;
                spawn(&shim.paths, &meta, !attach_out)?;
                if attach_out {
                    code = attach_and_start(shim, &meta, interactive, &keys)?;
                    continue;
                }
            }
        }
        if !attach_out {
            println!("{name}");
        }
    }
    Ok(code)
}

/// `start -a`: attach to the created container, start it through the
/// connection (so no output is missed), and return its exit code.
fn attach_and_start(
    shim: &Shim,
    meta: &ContainerMeta,
    interactive: bool,
    keys: &[u8],
) -> Result<i32> {
    let opts = AttachOptions {
        stdin: interactive,
        tty: meta.tty,
        detach_keys: keys.to_vec(),
        sig_proxy: true,
        start: true,
    };
    Ok(end_code(attach(&shim.paths, &meta.id, &opts)?))
}

fn end_code(end: AttachEnd) -> i32 {
    match end {
        AttachEnd::Exited(c) => c,
        AttachEnd::Detached => 0,
    }
}

/// Before a container runs again: its old exit record, its dead
/// supervisor's files, and the runtime's record of the old process.
fn forget_previous_run(shim: &Shim, meta: &ContainerMeta) -> Result<()> {
    let rt = shim.runtime_client(&meta.runtime);
    if rt.state(&meta.id).is_ok() {
        let _ = rt.kill(&meta.id, "KILL", true);
        let _ = rt.delete(&meta.id, true);
    }
    let exit = shim.paths.exit(&meta.id);
    if exit.exists() {
        std::fs::remove_file(&exit).map_err(ShimError::io("removing", &exit))?;
    }
    let run = shim.paths.run_dir(&meta.id);
    if run.exists() {
        std::fs::remove_dir_all(&run).map_err(ShimError::io("removing", &run))?;
    }
    Ok(())
}

pub fn kill(shim: &Shim, names: &[String], signal: &str) -> Result<i32> {
    for name in names {
        let meta = shim.containers().resolve(name)?;
        if !matches!(status(&shim.paths, &meta), Status::Running { .. }) {
            return Err(not_running(&meta));
        }
        shim.runtime_client(&meta.runtime)
            .kill(&meta.id, signal, false)
            .map_err(|source| ShimError::Runtime {
                id: meta.id.clone(),
                source,
            })?;
        println!("{name}");
    }
    Ok(0)
}

/// Waits until the container has exited (its exit record is written) or
/// its supervisor is gone; true if it did within `limit`.
fn wait_exit(shim: &Shim, meta: &ContainerMeta, limit: Option<Duration>) -> bool {
    let start = Instant::now();
    loop {
        match status(&shim.paths, meta) {
            Status::Exited { .. } | Status::Dead | Status::Created => return true,
            Status::Running { .. } => {}
        }
        if limit.is_some_and(|l| start.elapsed() >= l) {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// The container's StopSignal, then SIGKILL after `timeout`.
fn stop_one(shim: &Shim, meta: &ContainerMeta, timeout: Duration) -> Result<()> {
    if !matches!(status(&shim.paths, meta), Status::Running { .. }) {
        return Ok(());
    }
    let rt = shim.runtime_client(&meta.runtime);
    if let Err(e) = rt.kill(&meta.id, &meta.stop_signal, false) {
        tracing::debug!("stop {}: {e}", meta.id);
    }
    if wait_exit(shim, meta, Some(timeout)) {
        return Ok(());
    }
    tracing::warn!(
        "container {} did not stop on {} within {:?}: killing it",
        meta.name,
        meta.stop_signal,
        timeout
    );
    let _ = rt.kill(&meta.id, "KILL", true);
    wait_exit(shim, meta, Some(Duration::from_secs(30)));
    Ok(())
}

pub fn stop(shim: &Shim, names: &[String], timeout: u64) -> Result<i32> {
    for name in names {
        let meta = shim.containers().resolve(name)?;
        stop_one(shim, &meta, Duration::from_secs(timeout))?;
        println!("{name}");
    }
    Ok(0)
}

pub fn restart(shim: &Shim, names: &[String], timeout: u64) -> Result<i32> {
    for name in names {
        let meta = shim.containers().resolve(name)?;
        stop_one(shim, &meta, Duration::from_secs(timeout))?;
        wait_supervisor_gone(shim, &meta);
        forget_previous_run(shim, &meta)?;
        spawn(&shim.paths, &meta, true)?;
        println!("{name}");
    }
    Ok(0)
}

/// A supervisor finishing up (delete, --rm) after the exit: wait for it.
fn wait_supervisor_gone(shim: &Shim, meta: &ContainerMeta) {
    let pid_file = shim.paths.supervisor_pid(&meta.id);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let alive = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .is_some_and(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&meta.id))
                    .unwrap_or(false)
            });
        if !alive {
            return;
        }
        std::thread::sleep(POLL);
    }
}

pub fn remove(shim: &Shim, names: &[String], force: bool) -> Result<i32> {
    let mut failed = None;
    for name in names {
        match remove_one(shim, name, force) {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = Some(1);
            }
        }
    }
    Ok(failed.unwrap_or(0))
}

fn remove_one(shim: &Shim, name: &str, force: bool) -> Result<()> {
    let meta = shim.containers().resolve(name)?;
    if let Status::Running { .. } = status(&shim.paths, &meta) {
        if !force {
            return Err(ShimError::Refused(format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                meta.name
            )));
        }
        let rt = shim.runtime_client(&meta.runtime);
        let _ = rt.kill(&meta.id, "KILL", true);
        wait_exit(shim, &meta, Some(Duration::from_secs(30)));
    }
    wait_supervisor_gone(shim, &meta);
    purge(shim, &meta)
}

/// Everything of a container: the runtime's state, the bundle (unmounted),
/// the live dir and the record. Also for a container whose supervisor was
/// killed (`Dead`): its process is killed through the runtime first.
fn purge(shim: &Shim, meta: &ContainerMeta) -> Result<()> {
    let rt = shim.runtime_client(&meta.runtime);
    if rt.state(&meta.id).is_ok() {
        let _ = rt.kill(&meta.id, "KILL", true);
        rt.delete(&meta.id, true)
            .map_err(|source| ShimError::Runtime {
                id: meta.id.clone(),
                source,
            })?;
    }
    let bundle = shim.paths.bundle(&meta.id);
    if bundle.is_symlink() {
        std::fs::remove_file(&bundle).map_err(ShimError::io("removing", &bundle))?;
    } else if bundle.join("config.json").is_file() {
        remove_bundle(&bundle)?;
    }
    let run = shim.paths.run_dir(&meta.id);
    if run.exists() {
        std::fs::remove_dir_all(&run).map_err(ShimError::io("removing", &run))?;
    }
    shim.containers().remove(&meta.id)?;
    Ok(())
}

/// Cleanup after a failed start, where the error already tells the story.
pub(crate) fn remove_quietly(shim: &Shim, meta: &ContainerMeta) {
    wait_supervisor_gone(shim, meta);
    if let Err(e) = purge(shim, meta) {
        tracing::warn!("cleaning up container {}: {e}", meta.id);
    }
}

pub fn wait(shim: &Shim, names: &[String]) -> Result<i32> {
    for name in names {
        let meta = shim.containers().resolve(name)?;
        if matches!(status(&shim.paths, &meta), Status::Created)
            && !shim.paths.supervisor_pid(&meta.id).exists()
        {
            return Err(not_running(&meta));
        }
        wait_exit(shim, &meta, None);
        let code = ExitRecord::load(&shim.paths.exit(&meta.id))
            .map(|r| r.code)
            .unwrap_or(-1);
        println!("{code}");
    }
    Ok(0)
}
