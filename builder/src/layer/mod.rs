//! Layers: overlay upper-dir diffs as deterministic tar streams, compression, and safe extraction.
//!
//! The on-disk form of a layer here is an overlayfs directory (whiteouts are
//! char devices 0/0, opaque directories carry `trusted.overlay.opaque=y`); the
//! wire form is an OCI layer tar (whiteouts are `.wh.<name>` files, opaque
//! directories get a `.wh..wh..opq` entry). `diff` goes one way, `extract` the
//! other.

mod compress;
mod diff;
mod extract;
mod xattr;

use std::io;
use std::path::PathBuf;

pub use compress::{compress_layer, open_layer, LayerBlob, GZIP_LEVEL};
pub use diff::{write_diff, write_dir};
pub use extract::{extract, ExtractOptions, ExtractStats, Whiteouts};

/// Prefix of an OCI whiteout entry's file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// File name of the OCI entry that marks its directory opaque.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr namespace; none of it may travel inside a layer.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How a layer tar is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// When set, no entry's mtime is later than this (seconds since the
    /// epoch), so rebuilding the same inputs later gives the same layer.
    pub source_date_epoch: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading extended attribute {name} of {}: {source}", path.display())]
    XattrRead {
        path: PathBuf,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("setting extended attribute {name} on layer entry {entry}: {source}")]
    XattrWrite {
        entry: String,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} has overlay attribute {xattr}: its content is not all in the upper dir; \
         mount the overlay with redirect_dir=off,metacopy=off",
        path.display()
    )]
    PartialOverlayEntry { path: PathBuf, xattr: String },
    #[error("writing layer tar entry {entry}: {source}")]
    TarWrite {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("reading layer tar (after entry {after}): {source}")]
    TarRead {
        after: String,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {entry} is unsafe: {reason}")]
    UnsafeEntry { entry: String, reason: String },
    #[error("layer entry {entry}: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("extracting layer entry {entry}: {op}: {source}")]
    Extract {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("compressing layer: {0}")]
    Compress(#[source] io::Error),
    #[error("reading layer blob: {0}")]
    BlobRead(#[source] io::Error),
    #[error(
        "layer blob is zstd-compressed; this build of keel-build reads only gzip and plain tar"
    )]
    ZstdUnsupported,
    #[error("layer blob is neither gzip nor tar (first bytes: {magic})")]
    UnknownFormat { magic: String },
}

#[cfg(test)]
mod tests;
