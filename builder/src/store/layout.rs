//! Where things are under the root, creating the skeleton, atomic file replacement, and
//! the OCI layout's `oci-layout` and `index.json`.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

use oci_spec::image::{ImageIndex, ImageIndexBuilder, MediaType};
use serde::Serialize;
use serde_json::Value;

use super::{Result, Store, StoreError};

pub(crate) const OCI: &str = "oci";
pub(crate) const BLOBS: &str = "blobs/sha256";
pub(crate) const LAYERS: &str = "layers";
pub(crate) const SHORT_LINKS: &str = "l";
pub(crate) const CACHE: &str = "cache";
pub(crate) const TMP: &str = "tmp";
pub(crate) const LOCK: &str = "lock";
const OCI_LAYOUT: &str = "oci-layout";
const INDEX: &str = "index.json";
const LAYOUT_VERSION: &str = "1.0.0";

/// The directories; the files in them are written by [`Store::init_layout`] under the lock.
pub(super) fn create_dirs(root: &Path) -> Result<()> {
    for dir in [
        BLOBS.to_string(),
        format!("{LAYERS}/{SHORT_LINKS}"),
        CACHE.to_string(),
        TMP.to_string(),
    ] {
        let path = if dir == BLOBS {
            root.join(OCI).join(BLOBS)
        } else {
            root.join(dir)
        };
        fs::create_dir_all(&path).map_err(StoreError::io("create directory", &path))?;
    }
    Ok(())
}

/// JSON with object keys sorted at every level, no whitespace: the same value always has
/// the same digest, although oci-spec keeps labels and annotations in `HashMap`s.
pub(crate) fn canonical_json<T: Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(v).map_err(|source| StoreError::Encode { what, source })?;
    serde_json::to_vec(&sorted(value)).map_err(|source| StoreError::Encode { what, source })
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// fsync of a directory, so that a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync directory", dir))
}

impl Store {
    /// Writes `data` to a file in our tmp dir, syncs it and renames it onto `dest`, so that
    /// readers (which take no lock) see the old or the new content, never a mix.
    pub(crate) fn replace_file(&self, dest: &Path, data: &[u8]) -> Result<()> {
        let tmp = self.tmp_path("file");
        let written = File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(data)?;
                f.sync_all()
            })
            .map_err(StoreError::io("write", &tmp))
            .and_then(|()| fs::rename(&tmp, dest).map_err(StoreError::io("rename into", dest)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written?;
        match dest.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }

    pub(super) fn init_layout(&self) -> Result<()> {
        let layout_path = self.oci_dir().join(OCI_LAYOUT);
        // Both files only ever appear by rename, so seeing both means they are complete, and
        // opening needs no lock (it may be held by another store of this process).
        let _lock = if layout_path.exists() && self.index_path().exists() {
            None
        } else {
            Some(self.lock()?)
        };
        match fs::read(&layout_path) {
            Ok(data) => {
                let v: Value =
                    serde_json::from_slice(&data).map_err(StoreError::json(&layout_path))?;
                if v.get("imageLayoutVersion").and_then(Value::as_str) != Some(LAYOUT_VERSION) {
                    return Err(StoreError::Layout {
                        path: layout_path,
                        reason: format!("imageLayoutVersion is not \"{LAYOUT_VERSION}\""),
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let data = serde_json::json!({ "imageLayoutVersion": LAYOUT_VERSION });
                self.replace_file(&layout_path, data.to_string().as_bytes())?;
            }
            Err(e) => return Err(StoreError::io("read", &layout_path)(e)),
        }
        if !self.index_path().exists() {
            self.write_index(&empty_index()?)?;
        }
        Ok(())
    }

    pub(crate) fn index_path(&self) -> std::path::PathBuf {
        self.oci_dir().join(INDEX)
    }

    /// Reads `index.json`; safe without the lock because it is only ever replaced by rename.
    pub(crate) fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let data = fs::read(&path).map_err(StoreError::io("read", &path))?;
        serde_json::from_slice(&data).map_err(StoreError::json(&path))
    }

    /// Replaces `index.json`; callers hold the lock and wrote every blob it names first.
    pub(crate) fn write_index(&self, index: &ImageIndex) -> Result<()> {
        let mut data = serde_json::to_vec_pretty(index).map_err(|source| StoreError::Encode {
            what: "index.json",
            source,
        })?;
        data.push(b'\n');
        // Re-tagging the same image changes nothing: skip the write and its syncs.
        if std::fs::read(self.index_path()).is_ok_and(|old| old == data) {
            return Ok(());
        }
        self.replace_file(&self.index_path(), &data)
    }
}

fn empty_index() -> Result<ImageIndex> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .map_err(|e| StoreError::InvalidImage {
            reason: format!("building an empty index: {e}"),
        })
}
