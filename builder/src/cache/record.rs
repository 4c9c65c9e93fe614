//! Cache records, `cache/<key-hex>.json`: what a step produced. Written whole to tmp and
//! renamed under the store lock; read without it.

use std::fs;
use std::io;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, MediaType};

use crate::image::ImageConfig;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cache record {key}: layer blob {digest} is not in the store")]
    LayerNotStored { key: Digest, digest: Digest },
    #[error("cache record {key}: layer {diff_id} is not extracted in the store")]
    LayerNotExtracted { key: Digest, diff_id: Digest },
    #[error("cannot encode cache record {key}: {source}")]
    Encode {
        key: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A layer a step produced: its uncompressed digest (the layer dir's name) and its blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
    #[serde(default = "default_layer_media_type")]
    pub media_type: String,
}

fn default_layer_media_type() -> String {
    MediaType::ImageLayerGzip.to_string()
}

impl LayerRef {
    /// The manifest entry for this layer.
    pub fn descriptor(&self) -> Result<Descriptor, StoreError> {
        let digest = self
            .digest
            .as_str()
            .parse::<oci_spec::image::Digest>()
            .map_err(|e| StoreError::InvalidImage {
                reason: format!("layer digest {}: {e}", self.digest),
            })?;
        Ok(Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.size,
            digest,
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    pub key: Digest,
    /// None for steps that only change the config (ENV, CMD, ...).
    pub layer: Option<LayerRef>,
    /// The image config after the step.
    pub config: ImageConfig,
    /// RFC 3339, when the step ran.
    pub created: String,
}

impl Store {
    fn cache_path(&self, key: &Digest) -> PathBuf {
        self.cache_dir().join(format!("{}.json", key.hex()))
    }

    /// The record for `key`, if there is one whose layer is still complete in the store
    /// (blob and extracted dir); anything else, including an unreadable record, is a miss.
    pub fn cache_get(&self, key: &Digest) -> Option<CacheRecord> {
        let path = self.cache_path(key);
        let data = match fs::read(&path) {
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cache record unreadable; miss");
                return None;
            }
        };
        let record: CacheRecord = match serde_json::from_slice(&data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cache record invalid; miss");
                return None;
            }
        };
        if &record.key != key {
            tracing::warn!(path = %path.display(), key = %record.key, "cache record under the wrong name; miss");
            return None;
        }
        if let Some(layer) = &record.layer {
            if !self.has_blob(&layer.digest) || !self.has_layer(&layer.diff_id) {
                tracing::debug!(%key, "cached layer gone; miss");
                return None;
            }
        }
        Some(record)
    }

    /// Records a step's result; its layer must already be in the store (blob and dir).
    pub fn cache_put(&self, record: &CacheRecord) -> Result<(), CacheError> {
        if let Some(layer) = &record.layer {
            if !self.has_blob(&layer.digest) {
                return Err(CacheError::LayerNotStored {
                    key: record.key.clone(),
                    digest: layer.digest.clone(),
                });
            }
            if !self.has_layer(&layer.diff_id) {
                return Err(CacheError::LayerNotExtracted {
                    key: record.key.clone(),
                    diff_id: layer.diff_id.clone(),
                });
            }
        }
        let mut data = serde_json::to_vec_pretty(record).map_err(|source| CacheError::Encode {
            key: record.key.clone(),
            source,
        })?;
        data.push(b'\n');
        let _lock = self.lock()?;
        self.replace_file(&self.cache_path(&record.key), &data)?;
        Ok(())
    }

    /// Removes every cache record (`prune --all`); returns how many.
    pub fn clear_cache(&self) -> Result<usize, CacheError> {
        let _lock = self.lock()?;
        let dir = self.cache_dir();
        let mut removed = 0;
        let entries = fs::read_dir(&dir).map_err(|source| CacheError::Io {
            op: "list",
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json") {
                fs::remove_file(&path).map_err(|source| CacheError::Io {
                    op: "remove",
                    path: path.clone(),
                    source,
                })?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Every readable record, for gc's roots. Unreadable ones are skipped: they are misses,
    /// so what only they name is garbage.
    pub(crate) fn cache_records(&self) -> Vec<(PathBuf, Result<CacheRecord, String>)> {
        let dir = self.cache_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let parsed = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|d| serde_json::from_slice::<CacheRecord>(&d).map_err(|e| e.to_string()))
                .and_then(|r| {
                    let expected = format!("{}.json", r.key.hex());
                    if path.file_name().is_some_and(|n| n == expected.as_str()) {
                        Ok(r)
                    } else {
                        Err(format!("holds the record of key {}", r.key))
                    }
                });
            out.push((path, parsed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::step_key;

    fn record(store: &Store, with_layer: bool) -> CacheRecord {
        let key = step_key(&Digest::of_bytes(b"p"), "RUN true", &[]);
        let layer = with_layer.then(|| {
            let diff_id = Digest::of_bytes(b"layer tar");
            store
                .ensure_layer(&diff_id, |dir| fs::write(dir.join("f"), b"x"))
                .unwrap();
            let (digest, size) = store.put_blob_bytes(b"layer tar.gz").unwrap();
            LayerRef {
                diff_id,
                digest,
                size,
                media_type: default_layer_media_type(),
            }
        });
        CacheRecord {
            key,
            layer,
            config: ImageConfig::scratch(),
            created: "2024-01-01T00:00:00Z".to_string(),
        }
    }

    #[test]
    fn put_then_get_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = record(&store, true);
        assert_eq!(store.cache_get(&rec.key), None);
        store.cache_put(&rec).unwrap();
        assert_eq!(store.cache_get(&rec.key), Some(rec.clone()));
        let cfg_only = CacheRecord {
            key: Digest::of_bytes(b"k2"),
            layer: None,
            ..rec
        };
        store.cache_put(&cfg_only).unwrap();
        assert_eq!(store.cache_get(&cfg_only.key), Some(cfg_only));
    }

    #[test]
    fn record_whose_layer_is_gone_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = record(&store, true);
        store.cache_put(&rec).unwrap();
        let layer = rec.layer.as_ref().unwrap();
        fs::remove_dir_all(store.layer_dir(&layer.diff_id)).unwrap();
        assert_eq!(store.cache_get(&rec.key), None);
    }

    #[test]
    fn put_refuses_a_layer_not_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut rec = record(&store, true);
        rec.layer.as_mut().unwrap().digest = Digest::of_bytes(b"never stored");
        assert!(matches!(
            store.cache_put(&rec),
            Err(CacheError::LayerNotStored { .. })
        ));
    }

    #[test]
    fn corrupt_record_is_a_miss_and_clear_removes_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = record(&store, false);
        store.cache_put(&rec).unwrap();
        let bad = Digest::of_bytes(b"bad");
        fs::write(store.cache_path(&bad), b"{not json").unwrap();
        assert_eq!(store.cache_get(&bad), None);
        assert_eq!(store.clear_cache().unwrap(), 2);
        assert_eq!(store.cache_get(&rec.key), None);
    }

    #[test]
    fn layer_ref_descriptor_keeps_media_type() {
        let l = LayerRef {
            diff_id: Digest::of_bytes(b"a"),
            digest: Digest::of_bytes(b"b"),
            size: 3,
            media_type: default_layer_media_type(),
        };
        let d = l.descriptor().unwrap();
        assert_eq!(d.media_type(), &MediaType::ImageLayerGzip);
        assert_eq!(d.size(), 3);
        assert_eq!(d.digest().to_string(), l.digest.to_string());
    }
}
