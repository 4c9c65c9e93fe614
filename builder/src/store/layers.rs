//! Extracted layers, `layers/<diff-id-hex>/`, the lower dirs of overlay mounts; and the short
//! links `layers/l/<prefix>` -> `../<hex>` that keep a mount of 100+ lower dirs inside the one
//! page the kernel accepts for mount options (a full path per layer would take ~90 bytes).

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Path, PathBuf};

use super::layout::{sync_dir, SHORT_LINKS};
use super::{Result, Store, StoreError};
use crate::digest::Digest;

/// Hex digits in a short link name unless two diff ids share them.
const SHORT_LEN: usize = 10;

impl Store {
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).is_dir()
    }

    /// The layer's directory, extracting it first if it is not there: `extract` fills an
    /// empty directory in our tmp dir, which is then renamed into place, so a layer dir is
    /// either complete or absent. Another process extracting the same layer at the same time
    /// is fine: the first rename wins and the other copy is discarded.
    /// Checking that the result matches `diff_id` is the extractor's job.
    pub fn ensure_layer<E>(
        &self,
        diff_id: &Digest,
        extract: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let dest = self.layer_dir(diff_id);
        if dest.is_dir() {
            self.short_link(diff_id)?;
            return Ok(dest);
        }
        let work = self.tmp_dir("layer")?;
        let rootfs = work.path().join("rootfs");
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&rootfs)
            .map_err(StoreError::io("create directory", &rootfs))?;
        extract(&rootfs).map_err(|e| StoreError::Extract {
            diff_id: diff_id.clone(),
            source: e.into(),
        })?;
        sync_filesystem(&rootfs)?;
        match fs::rename(&rootfs, &dest) {
            Ok(()) => sync_dir(&self.layers_dir())?,
            // ENOTEMPTY/EEXIST: a concurrent extraction won; ours goes with `work`.
            Err(e) if dest.is_dir() => {
                tracing::debug!(layer = %diff_id, error = %e, "layer appeared meanwhile");
            }
            Err(e) => return Err(StoreError::io("rename into", &dest)(e)),
        }
        self.short_link(diff_id)?;
        Ok(dest)
    }

    /// `l/<prefix>`, relative to `layers/` (mount with cwd = `layers/`), made if missing.
    /// The prefix is the first 10 hex digits of the diff id, longer only if another layer
    /// already holds those.
    pub fn short_link(&self, diff_id: &Digest) -> Result<String> {
        if !self.has_layer(diff_id) {
            return Err(StoreError::LayerMissing {
                diff_id: diff_id.clone(),
            });
        }
        let hex = diff_id.hex();
        let target = PathBuf::from(format!("../{hex}"));
        let links = self.layers_dir().join(SHORT_LINKS);
        for len in SHORT_LEN..=hex.len() {
            let name = &hex[..len];
            let link = links.join(name);
            for _attempt in 0..2 {
                match fs::read_link(&link) {
                    Ok(t) if t == target => return Ok(format!("{SHORT_LINKS}/{name}")),
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        match symlink(&target, &link) {
                            Ok(()) => return Ok(format!("{SHORT_LINKS}/{name}")),
                            // Someone made it meanwhile: read again what it points to.
                            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                            Err(e) => return Err(StoreError::io("create symlink", &link)(e)),
                        }
                    }
                    // Not a symlink (EINVAL): not ours to touch, try a longer name.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                    Err(e) => return Err(StoreError::io("read symlink", &link)(e)),
                }
            }
        }
        Err(StoreError::Layout {
            path: links,
            reason: format!("no free short link name for layer {diff_id}"),
        })
    }

    /// Diff ids of the layer dirs present (names that are not digests are skipped).
    pub(crate) fn layer_ids(&self) -> Result<Vec<Digest>> {
        let dir = self.layers_dir();
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(StoreError::io("list", &dir))? {
            let entry = entry.map_err(StoreError::io("list", &dir))?;
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::parse(&format!("sha256:{n}")).ok())
            {
                ids.push(d);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Flushes the extracted files before the rename publishes them, so that a crash cannot
/// leave a complete-looking layer dir with empty files.
fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = File::open(path).map_err(StoreError::io("open", path))?;
    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(StoreError::io("sync filesystem of", path)(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
