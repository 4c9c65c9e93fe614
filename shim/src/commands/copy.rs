//! `cp SRC DST` (either side `CONTAINER:PATH`) and `commit CONTAINER NAME`.
//! Both work on the container's bundle: its rootfs (the overlay, mounted as
//! long as the container exists) and its upper dir (what it changed).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keel_builder::cache::LayerRef;
use keel_builder::context::secure_join;
use keel_builder::image::History;
use keel_builder::layer::{
    compress_layer, extract, open_layer, write_diff, ExtractOptions, LayerOptions,
};

use super::{Result, Shim, ShimError};
use crate::container::ContainerMeta;

/// `NAME:PATH` if the part before the first `:` names a container.
fn split_container<'a>(shim: &Shim, spec: &'a str) -> Option<(ContainerMeta, &'a str)> {
    let (name, path) = spec.split_once(':')?;
    if name.contains('/') {
        return None;
    }
    shim.containers().resolve(name).ok().map(|m| (m, path))
}

fn rootfs(shim: &Shim, meta: &ContainerMeta) -> PathBuf {
    shim.paths.bundle(&meta.id).join("rootfs")
}

pub fn cp(shim: &Shim, src: &str, dst: &str) -> Result<i32> {
    let from = split_container(shim, src);
    let to = split_container(shim, dst);
    let (src_path, dst_path) = match (&from, &to) {
        (Some(_), Some(_)) => {
            return Err(ShimError::Refused(
                "copying between containers is not supported".into(),
            ))
        }
        (None, None) => {
            return Err(ShimError::Refused(
                "must specify at least one container source (CONTAINER:PATH)".into(),
            ))
        }
        (Some((m, p)), None) => (in_container(shim, m, p)?, PathBuf::from(dst)),
        (None, Some((m, p))) => (PathBuf::from(src), in_container(shim, m, p)?),
    };
    if fs::symlink_metadata(&src_path).is_err() {
        return Err(ShimError::Refused(format!(
            "could not find the file {src} in container or host"
        )));
    }
    // docker: copying into an existing directory puts the source inside it.
    let target = if dst_path.is_dir() {
        dst_path.join(src_path.file_name().unwrap_or_default())
    } else {
        dst_path
    };
    copy_tree(&src_path, &target)?;
    Ok(0)
}

fn in_container(shim: &Shim, meta: &ContainerMeta, path: &str) -> Result<PathBuf> {
    let root = rootfs(shim, meta);
    if !root.join("proc").exists()
        && fs::read_dir(&root)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    {
        return Err(ShimError::Refused(format!(
            "container {}: its rootfs is not mounted",
            meta.name
        )));
    }
    let abs = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    secure_join(&root, &abs).map_err(|e| ShimError::Refused(format!("{}:{path}: {e}", meta.name)))
}

/// Copies files, directories and symlinks with their modes, owners and
/// mtimes; symlinks are copied as links, never followed.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).map_err(ShimError::io("reading", src))?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = fs::read_link(src).map_err(ShimError::io("reading link", src))?;
        let _ = fs::remove_file(dst);
        std::os::unix::fs::symlink(target, dst).map_err(ShimError::io("creating link", dst))?;
    } else if ft.is_dir() {
        if !dst.is_dir() {
            fs::create_dir(dst).map_err(ShimError::io("creating", dst))?;
        }
        for entry in fs::read_dir(src).map_err(ShimError::io("listing", src))? {
            let entry = entry.map_err(ShimError::io("listing", src))?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(ShimError::io("chmod", dst))?;
    } else if ft.is_file() {
        fs::copy(src, dst).map_err(ShimError::io("copying to", dst))?;
    } else {
        tracing::warn!("{}: not a file, directory or link: skipped", src.display());
        return Ok(());
    }
    let _ = std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()));
    Ok(())
}

/// The container's upper dir becomes a layer on top of its image's layers,
/// tagged `name`; the image config is the container's image's, with one more
/// history entry. Prints the new image id.
pub fn commit(shim: &Shim, name: &str, image_name: &str) -> Result<i32> {
    let meta = shim.containers().resolve(name)?;
    let store_err = |source| ShimError::Store {
        path: shim.store.clone(),
        source,
    };
    let store = keel_builder::store::Store::open(&shim.store).map_err(store_err)?;
    let base = store.resolve(&meta.image_id).map_err(store_err)?;
    let upper = shim.paths.bundle(&meta.id).join("upper");
    if !upper.is_dir() {
        return Err(ShimError::Refused(format!(
            "container {}: no writable layer at {} (was it created from an image?)",
            meta.name,
            upper.display()
        )));
    }
    let layer_err = |e: keel_builder::layer::LayerError| {
        ShimError::Refused(format!("commit of {}: {e}", meta.name))
    };
    let mut writer = store.blob_writer().map_err(store_err)?;
    let blob = compress_layer(
        |w| write_diff(&upper, w, &LayerOptions::default()),
        &mut writer,
    )
    .map_err(layer_err)?;
    let (digest, size) = writer.commit().map_err(store_err)?;
    // The upper dir stays the container's: the store extracts its own copy.
    let blob_path = store.blob_path(&digest);
    store
        .ensure_layer(
            &blob.diff_id,
            |dest: &Path| -> std::result::Result<(), keel_builder::layer::LayerError> {
                let f = fs::File::open(&blob_path)
                    .map_err(keel_builder::layer::LayerError::BlobRead)?;
                extract(
                    open_layer(std::io::BufReader::new(f))?,
                    dest,
                    &ExtractOptions::default(),
                )
                .map(|_| ())
            },
        )
        .map_err(store_err)?;
    let mut config = base.config.clone();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    config.created = Some(now.clone());
    config.rootfs.diff_ids.push(blob.diff_id.clone());
    config.history.push(History {
        created: Some(now),
        created_by: Some(format!("keel-shim commit {}", meta.name)),
        comment: Some("keel-shim".to_string()),
        ..Default::default()
    });
    let mut layers = base.manifest.layers().clone();
    let layer = LayerRef {
        diff_id: blob.diff_id,
        digest,
        size,
        media_type: oci_spec_media_gzip(),
    };
    layers.push(layer.descriptor().map_err(store_err)?);
    let image = store
        .commit_image(&config, &layers, Some(image_name))
        .map_err(store_err)?;
    println!("{}", image.config_digest);
    Ok(0)
}

fn oci_spec_media_gzip() -> String {
    "application/vnd.oci.image.layer.v1.tar+gzip".to_string()
}
