//! Typed errors of the runtime library. Messages follow runc's wording where
//! orchestrators match on it (containerd and podman look for "does not exist"
//! and "not running"), and always name the container, file or field concerned.

use std::path::PathBuf;

use libcontainer::container::ContainerStatus;
use libcontainer::error::LibcontainerError;

use crate::seccomp::SeccompError;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("container \"{0}\" does not exist")]
    NotExist(String),
    #[error("container with id exists: {0}")]
    Exists(String),
    #[error("invalid container id format \"{0}\": ids may contain only letters, digits, '_', '+', '-' and '.', and may not be '.' or '..'")]
    InvalidId(String),
    #[error("{path}: {source}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    InvalidConfig { path: PathBuf, message: String },
    #[error("rootfs {path} (root.path in {config}): {source}")]
    Rootfs {
        path: PathBuf,
        config: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: linux.seccomp: {source}")]
    Seccomp {
        path: PathBuf,
        #[source]
        source: SeccompError,
    },
    #[error("unknown signal \"{0}\"")]
    UnknownSignal(String),
    #[error("cannot start an already running container {0}")]
    AlreadyRunning(String),
    #[error("cannot start container {id} in status {}", status_name(*.status))]
    CannotStart { id: String, status: ContainerStatus },
    #[error("cannot delete container {id} that is not stopped: {}", status_name(*.status))]
    NotStopped { id: String, status: ContainerStatus },
    #[error("container not running: {0}")]
    NotRunning(String),
    #[error("container {id} is {}: cannot {action}", status_name(*.status))]
    WrongStatus {
        id: String,
        status: ContainerStatus,
        action: &'static str,
    },
    #[error("{0} is not supported by keel-runtime")]
    Unsupported(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {message}")]
    Cgroup { what: String, message: String },
    #[error("{what}: {}", chain(.source))]
    Container {
        what: String,
        #[source]
        source: LibcontainerError,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The status as the OCI state and runc spell it.
pub fn status_name(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// libcontainer wraps the interesting part of an error several levels deep
/// ("failed to create container" → "init process failed" → the real cause);
/// orchestrators show only our one line, so it must carry the whole chain.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

impl RuntimeError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        RuntimeError::Sys {
            what: what.into(),
            source,
        }
    }

    pub fn container(what: impl Into<String>, source: LibcontainerError) -> Self {
        RuntimeError::Container {
            what: what.into(),
            source,
        }
    }
}
