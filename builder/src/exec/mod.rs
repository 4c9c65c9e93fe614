//! RUN steps: a container over the parent layers, through a runtime CLI.
//!
//! The step's rootfs is the caller's writable overlay; this module writes a
//! bundle config pointing at it, runs the container in the foreground with
//! its output streamed to the caller, and makes sure the container is gone
//! afterwards, whatever happened.

mod cancel;
mod rootfs;
mod spec;

#[cfg(test)]
mod tests;

use std::fs;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use keel_runtime_client::{CreateOpts, Io, Runtime};

pub use cancel::{cancel_all, cancelled, CancelToken};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The host's network stack, with its resolv.conf and hosts (docker
    /// build's default).
    Host,
    /// A network namespace of its own with only `lo`.
    None,
}

#[derive(Debug, Clone)]
pub struct RunSpec {
    pub args: Vec<String>,
    /// `KEY=value` entries; Docker's default PATH is added if none is set.
    pub env: Vec<String>,
    /// Absolute; created if missing.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub network: Network,
    /// Empty: the runtime's default.
    pub hostname: String,
    /// The container id, unique among the runtime's live containers.
    pub id: String,
}

impl RunSpec {
    fn command(&self) -> String {
        self.args.join(" ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("RUN {command} (step {id}): invalid {field}: {reason}")]
    Invalid {
        id: String,
        command: String,
        field: &'static str,
        reason: String,
    },
    #[error("RUN {command} (step {id}): preparing rootfs {path}: {source}")]
    Rootfs {
        id: String,
        command: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("RUN {command} (step {id}): writing bundle {path}: {source}")]
    Bundle {
        id: String,
        command: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("RUN {command} (step {id}): output pipe: {source}")]
    Output {
        id: String,
        command: String,
        source: io::Error,
    },
    #[error("RUN {command} (step {id}): {source}")]
    Runtime {
        id: String,
        command: String,
        source: keel_runtime_client::Error,
    },
    #[error("RUN {command} (step {id}): cancelled")]
    Cancelled { id: String, command: String },
    #[error("RUN {command} (step {id}): container not deleted: {source}")]
    Delete {
        id: String,
        command: String,
        source: keel_runtime_client::Error,
    },
}

/// Runs one step; see [`run_step_with`]. Stopped only by [`cancel_all`].
pub fn run_step(
    rt: &Runtime,
    rootfs: &Path,
    work: &Path,
    step: &RunSpec,
    output: &mut dyn FnMut(&[u8]),
) -> Result<i32, ExecError> {
    run_step_with(rt, rootfs, work, step, &CancelToken::new(), output)
}

/// Runs `step` in a container over `rootfs` (writable; it is where the
/// step's changes land), with the bundle written in `work`. stdin is
/// /dev/null; stdout and stderr share one pipe whose bytes go to `output`
/// as they come (with runc, the order *between* the two streams is not
/// kept: it copies each through a pipe of its own). Returns the process's
/// exit code, 128+N for signal N.
pub fn run_step_with(
    rt: &Runtime,
    rootfs: &Path,
    work: &Path,
    step: &RunSpec,
    cancel: &CancelToken,
    output: &mut dyn FnMut(&[u8]),
) -> Result<i32, ExecError> {
    let id = step.id.clone();
    let command = step.command();
    let invalid = |field, reason: &str| ExecError::Invalid {
        id: id.clone(),
        command: command.clone(),
        field,
        reason: reason.to_string(),
    };
    if step.args.is_empty() {
        return Err(invalid("args", "no command"));
    }
    if !step.cwd.starts_with('/') {
        return Err(invalid("cwd", &format!("\"{}\" is not absolute", step.cwd)));
    }
    if let Some(e) = step.env.iter().find(|e| !e.contains('=')) {
        return Err(invalid("env", &format!("\"{e}\" is not KEY=value")));
    }
    if cancel.is_cancelled() {
        return Err(ExecError::Cancelled { id, command });
    }

    let rootfs_err = |path: &Path, source| ExecError::Rootfs {
        id: id.clone(),
        command: command.clone(),
        path: path.to_path_buf(),
        source,
    };
    let rootfs = fs::canonicalize(rootfs).map_err(|e| rootfs_err(rootfs, e))?;
    rootfs::ensure_cwd(&rootfs, Path::new(&step.cwd)).map_err(|e| rootfs_err(&rootfs, e))?;
    // Declared before the container runs so it is dropped (undone) only
    // after the container, and its mounts, are gone.
    let mut mount_points = rootfs::MountPoints::default();
    let binds = match step.network {
        Network::Host => mount_points
            .prepare(&rootfs, Path::new("/etc"))
            .map_err(|e| rootfs_err(&rootfs, e))?,
        Network::None => Vec::new(),
    };

    let config_path = work.join("config.json");
    let config = spec::config(step, &rootfs, &binds);
    let bundle_err = |source| ExecError::Bundle {
        id: id.clone(),
        command: command.clone(),
        path: config_path.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(&config).map_err(|e| bundle_err(e.into()))?;
    fs::create_dir_all(work).map_err(bundle_err)?;
    fs::write(&config_path, json).map_err(bundle_err)?;

    tracing::debug!(id = %id, command = %command, "running RUN step");
    let result = run_container(rt, work, step, cancel, output);
    // `run` deletes the container when it returns normally; this is for
    // every other way out (runtime killed, cancel mid-create, read error).
    let deleted = rt.delete(&id, true);
    let undone = mount_points.undo();

    let code = result?;
    if let Err(source) = deleted {
        return Err(ExecError::Delete {
            id,
            command,
            source,
        });
    }
    if let Err(e) = undone {
        return Err(rootfs_err(&rootfs, e));
    }
    Ok(code)
}

fn run_container(
    rt: &Runtime,
    bundle: &Path,
    step: &RunSpec,
    cancel: &CancelToken,
    output: &mut dyn FnMut(&[u8]),
) -> Result<i32, ExecError> {
    let id = &step.id;
    let output_err = |source| ExecError::Output {
        id: id.clone(),
        command: step.command(),
        source,
    };
    let (read_end, write_end) = pipe().map_err(output_err)?;
    let io = Io {
        stdin: Stdio::null(),
        stdout: write_end.try_clone().map_err(output_err)?.into(),
        stderr: write_end.into(),
    };
    let finished = AtomicBool::new(false);
    let mut killed = false;

    let (ran, read) = std::thread::scope(|s| {
        let runner = s.spawn(|| {
            let r = rt.run(id, bundle, &CreateOpts::default(), io);
            finished.store(true, Ordering::SeqCst);
            r
        });
        // The output callback is not Send, so the pipe is read here, and a
        // watcher thread does the killing when cancelled.
        let watcher = s.spawn(|| {
            let mut last_kill: Option<Instant> = None;
            while !finished.load(Ordering::SeqCst) {
                if cancel.is_cancelled()
                    && last_kill.is_none_or(|t| t.elapsed() >= cancel::POLL * 2)
                {
                    // Retried: until `run` has created it there is nothing
                    // to kill yet. SIGKILL because a shell as pid 1 ignores
                    // SIGTERM and SIGINT.
                    if let Err(e) = rt.kill(id, "KILL", false) {
                        tracing::debug!(id = %id, error = %e, "kill of a cancelled step");
                    }
                    last_kill = Some(Instant::now());
                }
                std::thread::park_timeout(cancel::POLL);
            }
            // A runtime that died (or failed) without taking its container
            // along would leave the pipe open forever; force-deleting a
            // container that is already gone is a no-op.
            if let Err(e) = rt.delete(id, true) {
                tracing::debug!(id = %id, error = %e, "delete after run");
            }
            last_kill.is_some()
        });
        let read = pump(read_end, output);
        let ran = runner.join();
        watcher.thread().unpark();
        killed = watcher.join().unwrap_or(true);
        (ran, read)
    });

    let ran = match ran {
        Ok(r) => r,
        // A panic in the runtime client is a bug; keep it one.
        Err(p) => std::panic::resume_unwind(p),
    };
    if killed || cancel.is_cancelled() {
        return Err(ExecError::Cancelled {
            id: id.clone(),
            command: step.command(),
        });
    }
    let code = ran.map_err(|source| ExecError::Runtime {
        id: id.clone(),
        command: step.command(),
        source,
    })?;
    read.map_err(output_err)?;
    Ok(code)
}

/// Passes everything from `from` to `output` until every writer (the
/// container's processes, the runtime) has closed it.
fn pump(from: OwnedFd, output: &mut dyn FnMut(&[u8])) -> io::Result<()> {
    let mut f = fs::File::from(from);
    let mut buf = [0u8; 8192];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => output(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Close-on-exec on both ends: only the runtime, through its stdio, may
/// inherit the write end, or EOF would wait for unrelated children.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)
}
