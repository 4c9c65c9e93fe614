//! The filesystem a step works on: an overlay of the parent's layers with a
//! fresh upper dir (the step's layer-to-be), all inside one store tmp dir so
//! that a dead build's leftovers are cleaned by the next `Store::open`.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::bundle::OverlayGuard;
use crate::cache::LayerRef;
use crate::layer::{compress_layer, write_diff, LayerOptions};
use crate::store::{Store, TempDir};

use super::StepError;

/// Field order matters: the mount goes before the tmp dir it lives in.
pub struct Workspace {
    mount: Option<OverlayGuard>,
    pub merged: PathBuf,
    pub upper: PathBuf,
    tmp: TempDir,
}

fn mkdir(path: &Path) -> Result<(), StepError> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(path)
        .map_err(StepError::io("creating", path))
}

/// Short links of `layers` (bottom first) in the order overlay wants: top first.
fn lower_dirs(store: &Store, layers: &[LayerRef]) -> Result<Vec<String>, StepError> {
    layers
        .iter()
        .rev()
        .map(|l| store.short_link(&l.diff_id).map_err(StepError::from))
        .collect()
}

impl Workspace {
    /// A writable view of `layers`.
    pub fn writable(store: &Store, layers: &[LayerRef]) -> Result<Workspace, StepError> {
        let tmp = store.tmp_dir("step")?;
        let upper = tmp.path().join("upper");
        let work = tmp.path().join("work");
        let merged = tmp.path().join("merged");
        for d in [&upper, &work, &merged] {
            mkdir(d)?;
        }
        let lower = lower_dirs(store, layers)?;
        let layers_root = store.root().join("layers");
        let mount = OverlayGuard::mount(&layers_root, &lower, Some(&upper), Some(&work), &merged)?;
        Ok(Workspace {
            mount: Some(mount),
            merged,
            upper,
            tmp,
        })
    }

    /// A read-only view of `layers`, for `COPY --from`.
    pub fn read_only(store: &Store, layers: &[LayerRef]) -> Result<Workspace, StepError> {
        let tmp = store.tmp_dir("from")?;
        let merged = tmp.path().join("merged");
        mkdir(&merged)?;
        let lower = lower_dirs(store, layers)?;
        let layers_root = store.root().join("layers");
        let mount = OverlayGuard::mount(&layers_root, &lower, None, None, &merged)?;
        Ok(Workspace {
            mount: Some(mount),
            upper: PathBuf::new(),
            merged,
            tmp,
        })
    }

    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Unmounts and turns the upper dir into a layer: a gzip blob of its
    /// diff and, renamed into `layers/<diff-id>`, the extracted copy (the
    /// upper dir already is exactly that: overlay whiteouts and all).
    pub fn into_layer(mut self, store: &Store, opts: &LayerOptions) -> Result<LayerRef, StepError> {
        if let Some(m) = self.mount.take() {
            m.unmount()?;
        }
        let mut writer = store.blob_writer()?;
        let upper = self.upper.clone();
        let blob = compress_layer(|w| write_diff(&upper, w, opts), &mut writer)?;
        let (digest, size) = writer.commit()?;
        if digest != blob.digest {
            return Err(StepError::Invalid(format!(
                "layer blob digest mismatch: wrote {digest}, compressed {}",
                blob.digest
            )));
        }
        store.ensure_layer(&blob.diff_id, |dest: &Path| -> Result<(), std::io::Error> {
            fs::remove_dir(dest)?;
            fs::rename(&upper, dest)
        })?;
        Ok(LayerRef {
            diff_id: blob.diff_id,
            digest,
            size,
            media_type: oci_spec::image::MediaType::ImageLayerGzip.to_string(),
        })
    }

    /// Unmounts and forgets the changes (a step that changed nothing).
    pub fn discard(mut self) -> Result<(), StepError> {
        if let Some(m) = self.mount.take() {
            m.unmount()?;
        }
        Ok(())
    }
}
