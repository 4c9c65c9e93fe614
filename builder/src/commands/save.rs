//! `keel-build save -o FILE [--format docker-archive|oci-archive] IMAGE...`.

use std::path::Path;

use anyhow::{Context, Result};
use keel_builder::archive::{save, ArchiveFormat};
use keel_builder::store::Store;

use crate::cli;

pub fn run(
    store: &Store,
    output: &Path,
    format: cli::ArchiveFormat,
    images: &[String],
) -> Result<u8> {
    let format = match format {
        cli::ArchiveFormat::DockerArchive => ArchiveFormat::DockerArchive,
        cli::ArchiveFormat::OciArchive => ArchiveFormat::OciArchive,
    };
    save(store, images, format, output)
        .with_context(|| format!("saving to {}", output.display()))?;
    Ok(0)
}
