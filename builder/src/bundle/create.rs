//! `keel-build bundle IMAGE DIR`: `DIR/config.json` by the conversion rules
//! and `DIR/rootfs`, an overlay of the image's extracted layers with a fresh
//! upper dir (`DIR/upper`, the container's thin writable layer; `DIR/work`
//! is overlay's scratch). Nothing is copied, so the cost does not grow with
//! the image. `--copy` flattens the layers into a plain `DIR/rootfs`.
//! A failure removes whatever this call made.

use std::fs;
use std::path::{Path, PathBuf};

use crate::layer::{extract, open_layer, ExtractOptions, Whiteouts};
use crate::store::{Image, Store};

use super::{image_to_spec, mount_overlay, unmount, write_bundle, BundleError, SpecOptions};

#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// A plain directory instead of an overlay mount.
    pub copy: bool,
    pub spec: SpecOptions,
}

/// What to undo if the bundle is not finished.
struct Undo {
    dir: PathBuf,
    made_dir: bool,
    mounted: Option<PathBuf>,
    done: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(m) = self.mounted.take() {
            if let Err(e) = unmount(&m) {
                tracing::warn!("cleaning up a failed bundle: {e}");
                return; // never delete through a live mount
            }
        }
        let remove = |p: &Path| {
            let r = if p.is_dir() {
                fs::remove_dir_all(p)
            } else {
                fs::remove_file(p)
            };
            if let Err(e) = r {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cleaning up {}: {e}", p.display());
                }
            }
        };
        if self.made_dir {
            remove(&self.dir);
        } else {
            for name in ["config.json", "rootfs", "upper", "work", super::VOLUMES_DIR] {
                remove(&self.dir.join(name));
            }
        }
    }
}

fn dir_err(path: &Path, reason: impl Into<String>) -> BundleError {
    BundleError::BundleDir {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

pub fn create_bundle(
    store: &Store,
    image_ref: &str,
    dir: &Path,
    opts: &BundleOptions,
) -> Result<Image, BundleError> {
    let image = store
        .resolve(image_ref)
        .map_err(|source| BundleError::Image {
            image: image_ref.to_string(),
            source,
        })?;
    let made_dir = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(dir_err(dir, "exists and is not empty"));
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| dir_err(dir, e.to_string()))?;
            true
        }
        Err(e) => return Err(dir_err(dir, e.to_string())),
    };
    let dir = fs::canonicalize(dir).map_err(|e| dir_err(dir, e.to_string()))?;
    let mut undo = Undo {
        dir: dir.clone(),
        made_dir,
        mounted: None,
        done: false,
    };
    let rootfs = dir.join("rootfs");
    let mkdir = |p: &Path| fs::create_dir(p).map_err(|e| dir_err(p, e.to_string()));
    mkdir(&rootfs)?;
    let diff_ids = &image.config.rootfs.diff_ids;
    if opts.copy {
        for (desc, diff_id) in image.manifest.layers().iter().zip(diff_ids) {
            let layer_err = |source| BundleError::Layer {
                image: image_ref.to_string(),
                layer: diff_id.to_string(),
                source,
            };
            let digest = crate::digest::Digest::parse(desc.digest().as_ref())
                .map_err(|e| dir_err(&rootfs, e.to_string()))?;
            let blob = store
                .open_blob(&digest)
                .map_err(|source| BundleError::Image {
                    image: image_ref.to_string(),
                    source,
                })?;
            let tar = open_layer(std::io::BufReader::new(blob)).map_err(layer_err)?;
            extract(
                tar,
                &rootfs,
                &ExtractOptions {
                    whiteouts: Whiteouts::Apply,
                },
            )
            .map_err(layer_err)?;
        }
    } else {
        let upper = dir.join("upper");
        let work = dir.join("work");
        mkdir(&upper)?;
        mkdir(&work)?;
        let mut lower = Vec::new();
        for id in diff_ids.iter().rev() {
            lower.push(store.short_link(id).map_err(|source| BundleError::Image {
                image: image_ref.to_string(),
                source,
            })?);
        }
        mount_overlay(
            &store.root().join("layers"),
            &lower,
            Some(&upper),
            Some(&work),
            &rootfs,
        )?;
        undo.mounted = Some(rootfs.clone());
    }
    let oci: oci_spec::image::ImageConfiguration = serde_json::to_value(&image.config)
        .and_then(serde_json::from_value)
        .map_err(|source| BundleError::Serialize {
            path: dir.join("config.json"),
            source,
        })?;
    let spec = image_to_spec(&oci, &rootfs, &opts.spec)?;
    write_bundle(&dir, &spec)?;
    undo.done = true;
    Ok(image)
}

/// Unmounts a bundle's rootfs (if it is a mount) and removes the bundle.
pub fn remove_bundle(dir: &Path) -> Result<(), BundleError> {
    let rootfs = dir.join("rootfs");
    if is_mount_point(&rootfs) {
        unmount(&rootfs)?;
    }
    if !dir.join("config.json").is_file() {
        return Err(dir_err(dir, "has no config.json: not a bundle"));
    }
    fs::remove_dir_all(dir).map_err(|e| dir_err(dir, e.to_string()))
}

/// Whether `path` is listed as a mount point in this mount namespace.
fn is_mount_point(path: &Path) -> bool {
    let Ok(canon) = fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}
