//! `import DIR NAME`: a root filesystem directory becomes a one-layer image, the way the
//! base images of tests and benchmarks get into the store without a registry.

use std::fs;
use std::io::BufReader;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use oci_spec::image::{Descriptor, MediaType};

use super::{oci_digest, ArchiveError};
use crate::digest::DigestReader;
use crate::image::{History, ImageConfig};
use crate::layer::{compress_layer, extract, open_layer, write_dir, ExtractOptions, LayerOptions};
use crate::store::{normalize_name, Image, Store};

/// Imports `dir` as the image `name`. With `SOURCE_DATE_EPOCH` set, file mtimes are
/// clamped to it and it is the image's creation time, so the same tree gives the same
/// image id. `Cmd` is `["sh"]` when the tree has `/bin/sh` (what `docker run IMAGE`
/// with no command then runs), else unset.
pub fn import(store: &Store, dir: &Path, name: &str) -> Result<Image, ArchiveError> {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.trim()
                .parse::<i64>()
                .map_err(|_| ArchiveError::SourceDateEpoch { value: v.clone() })?,
        ),
        _ => None,
    };
    import_at(store, dir, name, epoch)
}

pub(super) fn import_at(
    store: &Store,
    dir: &Path,
    name: &str,
    epoch: Option<i64>,
) -> Result<Image, ArchiveError> {
    let name = normalize_name(name)?;
    let meta = fs::symlink_metadata(dir).map_err(ArchiveError::io("stat", dir))?;
    if !meta.is_dir() {
        return Err(ArchiveError::ImportSource {
            path: dir.to_path_buf(),
            reason: "not a directory".to_string(),
        });
    }
    let created = match epoch {
        Some(secs) => DateTime::<Utc>::from_timestamp(secs, 0)
            .ok_or_else(|| ArchiveError::SourceDateEpoch {
                value: secs.to_string(),
            })?
            .to_rfc3339_opts(SecondsFormat::Secs, true),
        None => Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let opts = LayerOptions {
        source_date_epoch: epoch,
    };
    let label = dir.display().to_string();
    let mut w = store.blob_writer()?;
    let blob = compress_layer(|out| write_dir(dir, out, &opts), &mut w)
        .map_err(ArchiveError::layer(label.clone()))?;
    let (digest, size) = w.commit_expecting(&blob.digest)?;
    // The layer dir is made from the blob, not copied from `dir`: it must be exactly what
    // the image says, whatever of `dir` the tar could not carry.
    store.ensure_layer(&blob.diff_id, |dest| -> Result<(), ArchiveError> {
        let tar = open_layer(BufReader::new(store.open_blob(&digest)?))
            .map_err(ArchiveError::layer(label.clone()))?;
        let mut r = DigestReader::new(tar);
        extract(&mut r, dest, &ExtractOptions::default())
            .map_err(ArchiveError::layer(label.clone()))?;
        let (_, actual, _) = r.finish();
        if actual != blob.diff_id {
            return Err(ArchiveError::DigestMismatch {
                what: format!("layer of {label} read back"),
                expected: blob.diff_id.clone(),
                actual,
            });
        }
        Ok(())
    })?;
    let mut config = ImageConfig::scratch();
    config.created = Some(created.clone());
    config.rootfs.diff_ids = vec![blob.diff_id.clone()];
    config.history = vec![History {
        created: Some(created),
        created_by: Some(format!("keel-build import {}", dir.display())),
        ..Default::default()
    }];
    if fs::symlink_metadata(dir.join("bin/sh")).is_ok() {
        config.config.cmd = Some(vec!["sh".to_string()]);
    }
    let layer = Descriptor::new(MediaType::ImageLayerGzip, size, oci_digest(&digest)?);
    let image = store.commit_image(&config, &[layer], Some(&name))?;
    tracing::info!(%name, id = %image.config_digest, "imported");
    Ok(image)
}
