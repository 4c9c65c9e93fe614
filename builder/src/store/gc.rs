//! Prune: drop dangling images from the index, then delete the blobs and layer dirs nothing
//! reaches. Roots are the tagged images, the cache records (always: see [`crate::cache`]),
//! and whatever the caller's `keep` says (e.g. the shim's containers' lower dirs).
//!
//! A concurrent build holds no lock while it writes blobs and layers, so anything created
//! or renamed into place after the oldest other live process opened the store is left alone:
//! it may be about to be tagged or cached.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::layout::{sync_dir, SHORT_LINKS, TMP};
use super::refs::{descriptor_digest, edit_entries, entry_name};
use super::tmp::{live_others, remove_dead, remove_tree};
use super::{Result, Store, StoreError};
use crate::digest::Digest;

/// Timestamps are compared with this much slack (coarse filesystem clocks).
const CLOCK_SLACK: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Manifest digests of the dangling images dropped from the index.
    pub images_removed: Vec<Digest>,
    pub blobs_removed: Vec<Digest>,
    pub layers_removed: Vec<Digest>,
    /// Bytes of the removed blobs (layer dirs are not counted).
    pub bytes_freed: u64,
    /// Unreachable objects kept because a concurrent process may be about to use them.
    pub kept_in_flight: usize,
    /// Leftover tmp dirs of dead processes removed.
    pub tmp_removed: usize,
}

impl Store {
    /// Removes dangling images and unreferenced blobs and layer dirs; see the module docs
    /// for what counts as referenced. `keep` is asked about every blob digest and diff id that
    /// is otherwise unreferenced.
    pub fn prune(&self, keep: &dyn Fn(&Digest) -> bool) -> Result<PruneReport> {
        let _lock = self.lock()?;
        let mut report = PruneReport {
            tmp_removed: remove_dead(&self.root.join(TMP), Some(self.own_tmp_dir())).len(),
            ..PruneReport::default()
        };
        let in_flight_since = self.oldest_live_other();

        let mut index = self.read_index()?;
        let before = index.manifests().len();
        let mut dropped = Vec::new();
        edit_entries(&mut index, |entries| {
            entries.retain(|e| {
                let tagged = entry_name(e).is_some();
                if !tagged {
                    dropped.push(e.digest().to_string());
                }
                tagged
            })
        });
        if index.manifests().len() != before {
            self.write_index(&index)?;
        }
        for d in dropped {
            if let Ok(d) = Digest::parse(&d) {
                report.images_removed.push(d);
            }
        }

        let (blob_roots, layer_roots) = self.roots(&index)?;
        let recent = |path: &Path| match in_flight_since {
            Some(since) => changed_at(path).is_none_or(|t| t + CLOCK_SLACK >= since),
            None => false,
        };

        let blobs_dir = self.blobs_dir();
        for entry in fs::read_dir(&blobs_dir).map_err(StoreError::io("list", &blobs_dir))? {
            let entry = entry.map_err(StoreError::io("list", &blobs_dir))?;
            let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue;
            };
            if blob_roots.contains(&d) || keep(&d) {
                continue;
            }
            let path = entry.path();
            if recent(&path) {
                report.kept_in_flight += 1;
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(StoreError::io("remove", &path))?;
            report.bytes_freed += size;
            report.blobs_removed.push(d);
        }
        if !report.blobs_removed.is_empty() {
            sync_dir(&blobs_dir)?;
        }

        for d in self.layer_ids()? {
            if layer_roots.contains(&d) || keep(&d) {
                continue;
            }
            let dir = self.layer_dir(&d);
            if recent(&dir) {
                report.kept_in_flight += 1;
                continue;
            }
            self.remove_layer(&d)?;
            report.layers_removed.push(d);
        }
        self.remove_dangling_links();
        tracing::info!(
            images = report.images_removed.len(),
            blobs = report.blobs_removed.len(),
            layers = report.layers_removed.len(),
            bytes = report.bytes_freed,
            "pruned"
        );
        Ok(report)
    }

    /// Blob digests and diff ids reachable from tagged images and cache records. An
    /// unreadable tagged image stops the prune: deleting without knowing what it needs could
    /// destroy the rest of it.
    fn roots(
        &self,
        index: &oci_spec::image::ImageIndex,
    ) -> Result<(HashSet<Digest>, HashSet<Digest>)> {
        let mut blobs = HashSet::new();
        let mut layers = HashSet::new();
        let index_path = self.index_path();
        for e in index.manifests() {
            let m = descriptor_digest(e, &index_path, "manifests[].digest")?;
            let manifest = self.read_manifest(&m)?;
            let manifest_path = self.blob_path(&m);
            let c = descriptor_digest(manifest.config(), &manifest_path, "config.digest")?;
            let config = self.read_config(&c)?;
            for (i, l) in manifest.layers().iter().enumerate() {
                blobs.insert(descriptor_digest(
                    l,
                    &manifest_path,
                    &format!("layers[{i}].digest"),
                )?);
            }
            layers.extend(config.rootfs.diff_ids.iter().cloned());
            blobs.insert(m);
            blobs.insert(c);
        }
        for (_, record) in self.cache_records() {
            if let Ok(r) = record {
                if let Some(l) = r.layer {
                    blobs.insert(l.digest);
                    layers.insert(l.diff_id);
                }
            }
        }
        Ok((blobs, layers))
    }

    /// Takes the layer dir out of `layers/` in one rename (so no half-deleted layer is ever
    /// visible there), then deletes it from our tmp dir; its short links go first.
    fn remove_layer(&self, diff_id: &Digest) -> Result<()> {
        let links = self.layers_dir().join(SHORT_LINKS);
        let target = std::path::PathBuf::from(format!("../{}", diff_id.hex()));
        if let Ok(entries) = fs::read_dir(&links) {
            for entry in entries.flatten() {
                if fs::read_link(entry.path()).is_ok_and(|t| t == target) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let dir = self.layer_dir(diff_id);
        let doomed = self.tmp_path("gc-layer");
        fs::rename(&dir, &doomed).map_err(StoreError::io("move out of the store", &dir))?;
        remove_tree(&doomed);
        Ok(())
    }

    fn remove_dangling_links(&self) {
        let links = self.layers_dir().join(SHORT_LINKS);
        let Ok(entries) = fs::read_dir(&links) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if is_link && fs::metadata(&path).is_err() {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// When the oldest other live process made its tmp dir: everything it wrote is newer.
    fn oldest_live_other(&self) -> Option<SystemTime> {
        live_others(&self.root.join(TMP), self.own_tmp_dir())
            .iter()
            .filter_map(|p| {
                let m = fs::metadata(p).ok()?;
                m.created().or_else(|_| m.modified()).ok()
            })
            .min()
    }
}

/// ctime: a rename into place sets it, so it says when an object (re)appeared in the store.
fn changed_at(path: &Path) -> Option<SystemTime> {
    let m = fs::symlink_metadata(path).ok()?;
    let secs = u64::try_from(m.ctime()).ok()?;
    let nanos = u32::try_from(m.ctime_nsec()).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}
