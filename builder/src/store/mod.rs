//! The image store: OCI layout, blobs, refs, extracted layers, locking, gc and check.
//!
//! Layout under the root (default `/var/lib/keel`):
//! - `oci/`: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`); tags are
//!   index entries annotated with `org.opencontainers.image.ref.name` = `name:tag`, untagged
//!   ("dangling") images are index entries without that annotation.
//! - `layers/<diff-id-hex>/`: extracted layers, plus `layers/l/<short>` links for mount options.
//! - `cache/<key-hex>.json`: build step cache records (see [`crate::cache`]).
//! - `tmp/<pid>-<random>/`: one directory per live process; everything is written there first
//!   and renamed into place, so a crash leaves nothing half-written outside `tmp/`.
//! - `lock`: flock serialising writers of `index.json`, cache records and gc.

mod blobs;
mod check;
mod error;
mod gc;
mod layers;
mod layout;
mod lock;
mod refs;
#[cfg(test)]
mod tests;
mod tmp;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

pub use blobs::BlobWriter;
pub use check::{CheckReport, Problem};
pub use error::StoreError;
pub use gc::PruneReport;
pub use lock::StoreLock;
pub use refs::{normalize_name, Image, ImageSummary, REF_NAME_ANNOTATION};
pub use tmp::TempDir;
pub(crate) use tmp::{dirs_of as process_tmp_dirs, remove_tree};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Default store root, as for `keel-build --root`.
pub const DEFAULT_ROOT: &str = "/var/lib/keel";

/// An open image store. Share it between threads by reference or `Arc`; every method that
/// writes shared state takes the store's file lock itself, so do not call them while holding a
/// [`StoreLock`] from [`Store::lock`] (flock is per open file: that would wait on itself).
pub struct Store {
    root: PathBuf,
    /// `tmp/<pid>-<random>/`, ours for the life of this value.
    own_tmp: tmp::ProcessTmp,
    /// Names of files and dirs made inside `own_tmp`.
    seq: AtomicU64,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and removes the `tmp/` entries of
    /// processes that are no longer alive.
    pub fn open(root: &Path) -> Result<Store> {
        layout::create_dirs(root)?;
        tmp::remove_dead(&root.join(layout::TMP), None);
        let own_tmp = tmp::ProcessTmp::create(&root.join(layout::TMP))?;
        let store = Store {
            root: root.to_path_buf(),
            own_tmp,
            seq: AtomicU64::new(0),
        };
        store.init_layout()?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn oci_dir(&self) -> PathBuf {
        self.root.join(layout::OCI)
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join(layout::OCI).join(layout::BLOBS)
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.root.join(layout::LAYERS)
    }

    pub(crate) fn cache_dir(&self) -> PathBuf {
        self.root.join(layout::CACHE)
    }
}
