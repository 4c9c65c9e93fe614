//! What can go wrong with the containers on disk.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName { name: String },
    #[error("invalid container id {id:?}: expected 64 lowercase hex digits")]
    InvalidId { id: String },
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
         You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse { name: String, id: String },
    #[error("container id {id} already exists in {}", dir.display())]
    IdInUse { id: String, dir: PathBuf },
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("multiple IDs found with provided prefix: {prefix}")]
    Ambiguous { prefix: String },
    #[error("cannot remove container {id}: {} is still mounted; unmount it first", mount.display())]
    StillMounted { id: String, mount: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid container metadata in {}: {source}", path.display())]
    Meta {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl ContainerError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> ContainerError {
        let path = path.into();
        move |source| ContainerError::Io {
            action,
            path,
            source,
        }
    }
}
