//! The per-container supervisor process: detached from the caller (double
//! fork, own session), child subreaper, `runtime create`/`start`, the event
//! loop over the container's stdio and the attach socket, exit recording.
//!
//! Life of a supervisor:
//! 1. [`spawn`] (in the CLI) re-executes the current binary as
//!    `keel-shim --root R --run-dir D __supervise ID` in a new session, with
//!    a report pipe; that process forks once more and exits, so the
//!    supervisor is nobody's child but init's and outlives the CLI.
//! 2. [`main`] (the grandchild) becomes a child subreaper, writes its pid
//!    file, binds `attach.sock`, runs `runtime create` (pipes, or the pty
//!    master from `--console-socket`) and, if asked, `runtime start`, then
//!    reports success or the runtime's error over the pipe and serves.
//! 3. When the container's init exits it drains the output, flushes the
//!    log, writes `exit.json`, tells attached clients, runs `runtime
//!    delete` and, with `auto_remove`, removes the container entirely.
//!
//! Environment of the `__supervise` process (set by [`spawn`]):
//! `KEEL_SHIM_REPORT_FD` (the report pipe's write end) and
//! `KEEL_SHIM_START` (`1` to start after create).

mod event_loop;
mod finish;
mod launch;
mod spawn;

use std::io;
use std::path::PathBuf;

use crate::attach::AttachError;
use crate::io::IoError;

pub use launch::main;
pub use spawn::{spawn, start_created};

/// The supervisor-only binary, installed beside keel-shim.
pub const SUPERVISOR_BINARY: &str = "keel-shim-supervisor";

/// The hidden subcommand the CLI routes to [`main`].
pub const SUPERVISE_COMMAND: &str = "__supervise";
pub(crate) const REPORT_FD_ENV: &str = "KEEL_SHIM_REPORT_FD";
pub(crate) const START_ENV: &str = "KEEL_SHIM_START";

/// docker's exit code for failures of our own (not the container's).
pub const EXIT_OWN_ERROR: i32 = 125;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnOutcome {
    pub supervisor_pid: i32,
    /// The container's init, as the runtime's `--pid-file` gave it.
    pub container_pid: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("container {id}: reading {path}: {source}")]
    Meta {
        id: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("container {id}: {path} is not valid metadata: {source}")]
    MetaParse {
        id: String,
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{what} {path}: {source}")]
    Fs {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("container {id} already has a live supervisor (listening at {path})")]
    AlreadySupervised { id: String, path: PathBuf },
    #[error("starting the supervisor {exe}: {source}")]
    Exec { exe: PathBuf, source: io::Error },
    /// The supervisor failed before the container ran (as it reported).
    #[error("container {id}: supervisor: {message}")]
    Failed { id: String, message: String },
    #[error("container {id}: the supervisor {reason}")]
    NoReport { id: String, reason: String },
    /// The runtime refused to create or start the container; `code` is
    /// docker's for it (126 not executable, 127 not found, else 125).
    #[error("container {id}: {message}")]
    Runtime {
        id: String,
        message: String,
        code: i32,
    },
    #[error("container {id}: {what}: {source}")]
    Sys {
        id: String,
        what: &'static str,
        source: nix::Error,
    },
    #[error("container {id}: {source}")]
    Io { id: String, source: IoError },
    #[error(transparent)]
    Attach(#[from] AttachError),
}

impl SupervisorError {
    /// What `run`/`start` should exit with when this stops them.
    pub fn exit_code(&self) -> i32 {
        match self {
            SupervisorError::Runtime { code, .. } => *code,
            _ => EXIT_OWN_ERROR,
        }
    }
}

pub type Result<T> = std::result::Result<T, SupervisorError>;

/// docker's codes for a process that never ran: the runtime reports the
/// exec failure as text, so the text is all there is to go by. Only
/// messages about the exec are mapped, so that "not found" about, say, a
/// cgroup stays our own error.
pub fn exit_code_for_runtime_error(message: &str) -> i32 {
    let m = message.to_ascii_lowercase();
    if !m.contains("exec") {
        return EXIT_OWN_ERROR;
    }
    if m.contains("permission denied")
        || m.contains("does not have correct permissions")
        || m.contains("not executable")
    {
        EXIT_NOT_EXECUTABLE
    } else if m.contains("not found") || m.contains("no such file or directory") {
        EXIT_NOT_FOUND
    } else {
        EXIT_OWN_ERROR
    }
}

/// docker's exit code of a finished process.
pub fn exit_code_for_status(status: nix::sys::wait::WaitStatus) -> Option<(i32, Option<i32>)> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => Some((code, None)),
        WaitStatus::Signaled(_, sig, _) => Some((128 + sig as i32, Some(sig as i32))),
        _ => None,
    }
}

pub(crate) fn runtime_error(id: &str, err: keel_runtime_client::Error) -> SupervisorError {
    let message = match &err {
        keel_runtime_client::Error::Failed { message, .. } => message.clone(),
        other => other.to_string(),
    };
    SupervisorError::Runtime {
        id: id.to_string(),
        code: exit_code_for_runtime_error(&message),
        message,
    }
}

/// Removes a path, a missing one being fine (cleanup runs on every path).
pub(crate) fn remove_if_exists(path: &std::path::Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::WaitStatus;
    use nix::unistd::Pid;

    #[test]
    fn runtime_messages_map_to_docker_codes() {
        // keel-runtime's and runc's words for the same failures.
        for (msg, code) in [
            ("exec process failed with error error in executing process : executable 'nosuchbin' not found in $PATH", 127),
            ("runc create failed: unable to start container process: exec: \"nosuchbin\": executable file not found in $PATH", 127),
            ("exec: \"/x\": stat /x: no such file or directory", 127),
            ("executable '/etc/passwd' at path '\"/etc/passwd\"' does not have correct permissions", 126),
            ("runc create failed: unable to start container process: exec: \"/etc/passwd\": permission denied", 126),
            ("cgroup not found", 125),
            ("container \"x\" does not exist", 125),
        ] {
            assert_eq!(exit_code_for_runtime_error(msg), code, "{msg}");
        }
    }

    #[test]
    fn statuses_map_to_docker_codes() {
        let p = Pid::from_raw(1);
        assert_eq!(
            exit_code_for_status(WaitStatus::Exited(p, 3)),
            Some((3, None))
        );
        assert_eq!(
            exit_code_for_status(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some((137, Some(9)))
        );
        assert_eq!(exit_code_for_status(WaitStatus::StillAlive), None);
    }
}
