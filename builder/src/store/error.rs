use std::io;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    #[error("{path}: content is {actual}, expected {expected}")]
    DigestMismatch {
        path: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest} is not in the store ({needed_by})")]
    BlobMissing { digest: Digest, needed_by: String },
    #[error("{field} in {path}: {source}")]
    BadDigest {
        path: PathBuf,
        field: String,
        #[source]
        source: DigestError,
    },
    #[error("invalid image name \"{name}\": {reason}")]
    InvalidName { name: String, reason: String },
    #[error("image config: {reason}")]
    InvalidImage { reason: String },
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("\"{prefix}\" is ambiguous: it matches {}", .candidates.join(", "))]
    Ambiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("layer {diff_id} is not extracted in the store")]
    LayerMissing { diff_id: Digest },
    #[error("extracting layer {diff_id}: {source}")]
    Extract {
        diff_id: Digest,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }

    pub(crate) fn json(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Json { path, source }
    }
}
