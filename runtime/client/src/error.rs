//! What can go wrong when calling a runtime binary.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

#[derive(Debug)]
pub enum Error {
    /// The binary could not be started at all (missing, not executable).
    Spawn { binary: PathBuf, source: io::Error },
    /// The runtime ran and reported failure. `message` is the runtime's own
    /// text: the last error line of its json log, else its stderr.
    Failed {
        command: String,
        status: ExitStatus,
        message: String,
    },
    /// The runtime succeeded but printed something that is not the JSON we
    /// asked for (`state`, `list`).
    Parse {
        command: String,
        source: serde_json::Error,
    },
    /// The per-call log file could not be made or read.
    Log { path: PathBuf, source: io::Error },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn { binary, source } => {
                write!(f, "cannot run runtime {}: {source}", binary.display())
            }
            Error::Failed {
                command, message, ..
            } => write!(f, "{command}: {message}"),
            Error::Parse { command, source } => {
                write!(f, "{command}: unexpected output: {source}")
            }
            Error::Log { path, source } => {
                write!(f, "runtime log file {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::Log { source, .. } => Some(source),
            Error::Parse { source, .. } => Some(source),
            Error::Failed { .. } => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
