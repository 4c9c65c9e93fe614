//! Images in and out of the store as files: `save` writes a docker-archive (what
//! `docker load` reads) or an OCI archive (a tar of an OCI image layout, what
//! `skopeo`/`podman` read as `oci-archive:FILE:TAG`); `load` reads either, or an OCI
//! layout directory; `import` turns a root filesystem directory into a one-layer image.
//!
//! Decisions (see also each module):
//! - docker-archive is written in the layout docker 1.10-24 wrote and every docker since
//!   loads (`manifest.json`, `<config-hex>.json`, `<diff-id-hex>/layer.tar`): docker
//!   20.10 only follows the paths `manifest.json` names, and docker 25+ still reads it.
//! - Loading keeps the source's bytes wherever the image spec lets it: the config blob is
//!   stored as given (so the image id is the source's), OCI manifests and layer blobs are
//!   stored as given (no recompression). Only plain-tar layers (every docker-archive) are
//!   gzipped once on the way in, because the store keeps compressed blobs; the diff_id is
//!   unchanged by that, the manifest digest is ours.
//! - Every layer is extracted once into `layers/<diff-id>`, and what was extracted is
//!   hashed and compared with the config's `rootfs.diff_ids`.
//! - Names: docker `RepoTags`; for OCI `io.containerd.image.name`, else
//!   `org.opencontainers.image.ref.name` when it is a full reference (has `/` or `:`). A
//!   bare ref name (`latest`, `v1`) names no repository: the caller's `tag` names the image,
//!   or the load is refused. `tag` is added to the names the archive gives, and needs the
//!   archive to hold exactly one image. An image with no names at all loads untagged, as
//!   `docker load` does.
//! - Nothing of the input archive is unpacked by member name: members are streamed into
//!   numbered files in the store's tmp dir, links between members are resolved in a table,
//!   and layer content goes through the layer extractor's own safety checks.

mod import;
mod input;
mod load;
mod save;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::layer::LayerError;
use crate::store::StoreError;

pub use import::import;
pub use load::load;
pub use save::save;

/// Annotation with the full image name, as containerd (and docker 25+) write it.
pub const IMAGE_NAME_ANNOTATION: &str = "io.containerd.image.name";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` / `docker load` format.
    DockerArchive,
    /// A tar of an OCI image layout.
    OciArchive,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Normalized `name:tag`s given to the image; empty if it was loaded untagged.
    pub names: Vec<String>,
    /// The image id (config digest), the same as in the source.
    pub id: Digest,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: {source}")]
    Layer {
        layer: String,
        #[source]
        source: LayerError,
    },
    #[error("{}: not an image archive: {reason}", path.display())]
    NotAnArchive { path: PathBuf, reason: String },
    #[error("{}: reading the archive (after member {after}): {source}", path.display())]
    ReadArchive {
        path: PathBuf,
        after: String,
        #[source]
        source: io::Error,
    },
    #[error("archive member {member:?} is refused: {reason}")]
    UnsafeMember { member: String, reason: String },
    #[error("{referrer} refers to {member:?}, which is not in the archive")]
    MissingMember { member: String, referrer: String },
    #[error("{member}: {reason}")]
    BadMember { member: String, reason: String },
    #[error("{member}: invalid JSON: {source}")]
    Json {
        member: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: content is {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "image {image} is only named {reference:?} in the archive, which is a tag without a \
         repository; give the name to load it as (keel-build load --tag NAME:TAG)"
    )]
    NoName { image: String, reference: String },
    #[error("--tag {tag} names one image, but the archive holds {count}; load it without --tag")]
    TagNeedsOneImage { tag: String, count: usize },
    #[error("{} cannot be imported: {reason}", path.display())]
    ImportSource { path: PathBuf, reason: String },
    #[error("SOURCE_DATE_EPOCH={value:?} is not a number of seconds since 1970")]
    SourceDateEpoch { value: String },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl ArchiveError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ArchiveError::Io { op, path, source }
    }

    pub(crate) fn layer(layer: impl Into<String>) -> impl FnOnce(LayerError) -> Self {
        let layer = layer.into();
        move |source| ArchiveError::Layer { layer, source }
    }
}

/// oci-spec's digest type from ours (both check the same syntax).
pub(crate) fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, ArchiveError> {
    d.as_str().parse().map_err(|e| ArchiveError::BadMember {
        member: d.to_string(),
        reason: format!("digest not accepted by oci-spec: {e}"),
    })
}
