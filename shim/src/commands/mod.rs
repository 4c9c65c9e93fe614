//! docker's container verbs as library functions over the supervisor, the
//! container records and the logs. Each returns the exit code the CLI ends
//! with (docker's: the container's own for run/start -a/wait, 125 for our
//! errors).

mod copy;
mod create;
mod exec;
mod lifecycle;
mod logs;
mod ps;
mod run;

use std::path::PathBuf;

pub use copy::{commit, cp};
pub use create::{create, CreateRequest, Network};
pub use exec::{exec, ExecRequest};
pub use lifecycle::{kill, remove, restart, start, stop, wait};
pub use logs::logs;
pub use ps::{inspect, ps};
pub use run::{attach_to as attach, run};

use crate::container::{ContainerError, ContainerStore, Paths};

/// docker's exit code for our own failures.
pub const EXIT_OWN_ERROR: i32 = 125;

/// Where everything is: container data, live state, the image store, and
/// the runtime that runs containers.
#[derive(Debug, Clone)]
pub struct Shim {
    pub paths: Paths,
    pub store: PathBuf,
    pub runtime: PathBuf,
}

impl Shim {
    pub fn containers(&self) -> ContainerStore {
        ContainerStore::new(self.paths.clone())
    }

    pub fn runtime_client(&self, runtime: &std::path::Path) -> keel_runtime_client::Runtime {
        keel_runtime_client::Runtime::new(runtime).root(self.paths.runtime_root())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Supervisor(#[from] crate::supervisor::SupervisorError),
    #[error(transparent)]
    Attach(#[from] crate::attach::AttachError),
    #[error(transparent)]
    Log(#[from] crate::log::reader::LogError),
    #[error("image store {path}: {source}")]
    Store {
        path: PathBuf,
        source: keel_builder::store::StoreError,
    },
    #[error("{0}")]
    Bundle(#[from] keel_builder::bundle::BundleError),
    #[error("container {id}: {source}")]
    Runtime {
        id: String,
        source: keel_runtime_client::Error,
    },
    #[error("invalid {flag} \"{value}\": {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

impl ShimError {
    pub fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ShimError {
        let path = path.into();
        move |source| ShimError::Io { what, path, source }
    }

    /// The exit code docker gives for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ShimError::Supervisor(e) => e.exit_code(),
            ShimError::Attach(crate::attach::AttachError::Remote { message, .. }) => {
                crate::supervisor::exit_code_for_runtime_error(message)
            }
            _ => EXIT_OWN_ERROR,
        }
    }
}

pub type Result<T> = std::result::Result<T, ShimError>;
