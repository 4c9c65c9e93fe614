//! Image config to OCI runtime bundle: the image-spec conversion rules and the overlay rootfs.
//!
//! The pieces are independent so that callers can combine them as they need:
//! a `RUN` step mounts an overlay over the parent layers and converts the
//! config with its own overrides; a container start does the same with the
//! image's defaults; `--copy` provides a plain directory instead of the overlay.
//!
//! - [`resolve_user`]: the image's `User` through the rootfs's passwd/group files.
//! - [`image_to_spec`]: image config + overrides -> runtime `config.json` contents.
//! - [`write_bundle`]: `config.json` (and the anonymous volume dirs) into a bundle dir.
//! - [`mount_overlay`] / [`unmount`]: the layered rootfs.

mod convert;
mod create;
mod overlay;
mod rootfs_file;
mod user;
mod write;

use std::io;
use std::path::PathBuf;

pub use convert::{image_to_spec, Network, SpecOptions, VOLUMES_DIR};
pub use create::{create_bundle, remove_bundle, BundleOptions};
pub use overlay::{mount_overlay, unmount, OverlayGuard};
pub use user::{resolve_user, ResolvedUser};
pub use write::write_bundle;

/// Everything that can go wrong turning an image into a bundle. Each variant
/// names the input it concerns so that the message alone says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("unable to find user {user}: {reason} (rootfs {rootfs})")]
    UnknownUser {
        user: String,
        rootfs: PathBuf,
        reason: &'static str,
    },
    #[error("unable to find group {group}: {reason} (rootfs {rootfs})")]
    UnknownGroup {
        group: String,
        rootfs: PathBuf,
        reason: &'static str,
    },
    #[error("invalid user \"{user}\": {reason}")]
    InvalidUser { user: String, reason: &'static str },
    #[error("cannot read {path} in rootfs {rootfs}: {source}")]
    RootfsFile {
        path: String,
        rootfs: PathBuf,
        source: io::Error,
    },
    #[error("{path} in rootfs {rootfs} is not a regular file")]
    NotRegularFile { path: String, rootfs: PathBuf },
    #[error("{path} in rootfs {rootfs} is larger than {limit} bytes")]
    FileTooLarge {
        path: String,
        rootfs: PathBuf,
        limit: u64,
    },
    #[error("no command specified: the image has neither Entrypoint nor Cmd and no arguments were given")]
    NoCommand,
    #[error("invalid environment entry \"{entry}\" in {origin}: expected KEY=VALUE with a non-empty KEY")]
    InvalidEnv { entry: String, origin: &'static str },
    #[error("invalid {field} \"{value}\": {reason}")]
    InvalidPath {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("building the runtime spec's {field}: {source}")]
    Spec {
        field: &'static str,
        source: oci_spec::OciSpecError,
    },
    #[error("invalid lower layer \"{layer}\": {reason}")]
    InvalidLayer { layer: String, reason: &'static str },
    #[error("mounting overlay of {layers} layer(s) at {target}: {step}: {source}")]
    Mount {
        target: PathBuf,
        layers: usize,
        step: String,
        source: io::Error,
    },
    #[error("unmounting {target}: {source}")]
    Unmount { target: PathBuf, source: io::Error },
    #[error("writing bundle {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("serialising config.json for {path}: {source}")]
    Serialize {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("image {image}: {source}")]
    Image {
        image: String,
        source: crate::store::StoreError,
    },
    #[error("image {image}: layer {layer}: {source}")]
    Layer {
        image: String,
        layer: String,
        source: crate::layer::LayerError,
    },
    #[error("bundle directory {path}: {reason}")]
    BundleDir { path: PathBuf, reason: String },
}
