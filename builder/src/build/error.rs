use std::path::PathBuf;

use crate::bundle::BundleError;
use crate::cache::CacheError;
use crate::context::ContextError;
use crate::dockerfile::{DockerfileError, SubstError};
use crate::exec::ExecError;
use crate::layer::LayerError;
use crate::plan::PlanError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("build context {0}: not a directory")]
    ContextMissing(PathBuf),
    #[error("build context {0}: does not exist")]
    ContextNotFound(PathBuf),
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    #[error("build context {path}: {source}")]
    Context {
        path: PathBuf,
        #[source]
        source: ContextError,
    },
    #[error("invalid tag \"{tag}\": {source}")]
    Tag {
        tag: String,
        #[source]
        source: StoreError,
    },
    #[error("{at}: {source}")]
    Expand {
        at: String,
        #[source]
        source: SubstError,
    },
    #[error("{at}: FROM \"{written}\" expands to an empty image name")]
    EmptyBase { at: String, written: String },
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A step failed; `at` is `Dockerfile:LINE`, `step` e.g. `[build 3/5] RUN make`.
    #[error("{at}: {step}: {source}")]
    Step {
        at: String,
        step: String,
        #[source]
        source: Box<StepError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("build cancelled")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    RunFailed { command: String, code: i32 },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error(transparent)]
    Context(#[from] ContextError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Expand(#[from] SubstError),
    #[error("base image \"{image}\": {source} (keel-build has no registry access: `keel-build load` or `keel-build import` it first)")]
    BaseImage {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cancelled")]
    Cancelled,
}

impl StepError {
    pub fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> StepError {
        let path = path.into();
        move |source| StepError::Io { what, path, source }
    }
}
