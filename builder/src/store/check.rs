//! Check: is the store what it claims to be. Reads everything and takes no lock (it would
//! block builds for as long as hashing takes), so a prune running at the same time can make
//! it report objects that were just removed.

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde_json::Value;

use super::layout::SHORT_LINKS;
use super::refs::{descriptor_digest, entry_name};
use super::{Result, Store, StoreError};
use crate::digest::{Digest, DigestReader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `oci-layout` or `index.json` unreadable or not what the spec requires.
    Layout {
        path: PathBuf,
        reason: String,
    },
    /// A blob whose content does not hash to its name.
    CorruptBlob {
        digest: Digest,
        actual: Digest,
    },
    UnreadableBlob {
        path: PathBuf,
        error: String,
    },
    /// Something under `blobs/sha256/` not named by a digest.
    StrayFile {
        path: PathBuf,
    },
    /// An image (`image` is its name, or its manifest digest if dangling) whose manifest
    /// or config is missing or invalid.
    BadImage {
        image: String,
        reason: String,
    },
    MissingBlob {
        image: String,
        role: String,
        digest: Digest,
    },
    SizeMismatch {
        image: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    MissingLayerDir {
        image: String,
        diff_id: Digest,
    },
    DanglingShortLink {
        link: PathBuf,
    },
    BadCacheRecord {
        path: PathBuf,
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Layout { path, reason } => write!(f, "{}: {reason}", path.display()),
            Problem::CorruptBlob { digest, actual } => {
                write!(
                    f,
                    "blob {digest} is corrupt: its content hashes to {actual}"
                )
            }
            Problem::UnreadableBlob { path, error } => {
                write!(f, "blob {} unreadable: {error}", path.display())
            }
            Problem::StrayFile { path } => {
                write!(
                    f,
                    "{} is not a blob (not named by a sha256 digest)",
                    path.display()
                )
            }
            Problem::BadImage { image, reason } => write!(f, "image {image}: {reason}"),
            Problem::MissingBlob {
                image,
                role,
                digest,
            } => write!(f, "image {image}: {role} blob {digest} is missing"),
            Problem::SizeMismatch {
                image,
                digest,
                expected,
                actual,
            } => write!(
                f,
                "image {image}: blob {digest} has {actual} bytes, its descriptor says {expected}"
            ),
            Problem::MissingLayerDir { image, diff_id } => {
                write!(f, "image {image}: layer {diff_id} is not extracted")
            }
            Problem::DanglingShortLink { link } => {
                write!(f, "short link {} points at no layer", link.display())
            }
            Problem::BadCacheRecord { path, reason } => {
                write!(f, "cache record {}: {reason}", path.display())
            }
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    pub blobs_checked: usize,
    pub images_checked: usize,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Store {
    /// Recomputes every blob's digest; checks that every image in the index has its
    /// manifest, config and layer blobs (with the sizes their descriptors give), that tagged
    /// images have their layer dirs, that short links lead somewhere and cache records parse.
    /// Errors only when the store cannot be read at all; what is wrong goes in the report.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        self.check_layout_files(&mut report);
        self.check_blobs(&mut report)?;
        if let Ok(index) = self.read_index() {
            let mut seen = std::collections::HashSet::new();
            for e in index.manifests() {
                let label = entry_name(e)
                    .map(str::to_string)
                    .unwrap_or_else(|| e.digest().to_string());
                // Layer dirs matter for tagged images: those are the ones bundles are made of.
                let first = seen.insert(e.digest().to_string());
                if first || entry_name(e).is_some() {
                    self.check_image(e, &label, entry_name(e).is_some(), &mut report);
                }
            }
        }
        self.check_short_links(&mut report);
        for (path, record) in self.cache_records() {
            if let Err(reason) = record {
                report
                    .problems
                    .push(Problem::BadCacheRecord { path, reason });
            }
        }
        Ok(report)
    }

    fn check_layout_files(&self, report: &mut CheckReport) {
        let layout = self.oci_dir().join("oci-layout");
        match fs::read(&layout)
            .map_err(|e| e.to_string())
            .and_then(|d| serde_json::from_slice::<Value>(&d).map_err(|e| e.to_string()))
        {
            Ok(v)
                if v.get("imageLayoutVersion")
                    .and_then(Value::as_str)
                    .is_some() => {}
            Ok(_) => report.problems.push(Problem::Layout {
                path: layout,
                reason: "no imageLayoutVersion".to_string(),
            }),
            Err(reason) => report.problems.push(Problem::Layout {
                path: layout,
                reason,
            }),
        }
        if let Err(e) = self.read_index() {
            report.problems.push(Problem::Layout {
                path: self.index_path(),
                reason: e.to_string(),
            });
        }
    }

    fn check_blobs(&self, report: &mut CheckReport) -> Result<()> {
        let dir = self.blobs_dir();
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(StoreError::io("list", &dir))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let Some(expected) = entry
                .file_name()
                .to_str()
                .and_then(|n| Digest::parse(&format!("sha256:{n}")).ok())
            else {
                report.problems.push(Problem::StrayFile { path });
                continue;
            };
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                report.problems.push(Problem::StrayFile { path });
                continue;
            }
            report.blobs_checked += 1;
            let hashed = fs::File::open(&path).and_then(|f| {
                let mut r = DigestReader::new(f);
                io::copy(&mut r, &mut io::sink())?;
                Ok(r.finish().1)
            });
            match hashed {
                Ok(actual) if actual == expected => {}
                Ok(actual) => report.problems.push(Problem::CorruptBlob {
                    digest: expected,
                    actual,
                }),
                Err(e) => report.problems.push(Problem::UnreadableBlob {
                    path,
                    error: e.to_string(),
                }),
            }
        }
        Ok(())
    }

    fn check_image(
        &self,
        entry: &oci_spec::image::Descriptor,
        label: &str,
        tagged: bool,
        report: &mut CheckReport,
    ) {
        report.images_checked += 1;
        let bad = |reason: String| Problem::BadImage {
            image: label.to_string(),
            reason,
        };
        let m = match descriptor_digest(entry, &self.index_path(), "manifests[].digest") {
            Ok(d) => d,
            Err(e) => return report.problems.push(bad(e.to_string())),
        };
        if !self.blob_present(label, "manifest", &m, entry.size(), report) {
            return;
        }
        let manifest = match self.read_manifest(&m) {
            Ok(manifest) => manifest,
            Err(e) => return report.problems.push(bad(e.to_string())),
        };
        let manifest_path = self.blob_path(&m);
        let c = match descriptor_digest(manifest.config(), &manifest_path, "config.digest") {
            Ok(d) => d,
            Err(e) => return report.problems.push(bad(e.to_string())),
        };
        let config_ok = self.blob_present(label, "config", &c, manifest.config().size(), report);
        for (i, l) in manifest.layers().iter().enumerate() {
            match descriptor_digest(l, &manifest_path, &format!("layers[{i}].digest")) {
                Ok(d) => {
                    self.blob_present(label, &format!("layer {i}"), &d, l.size(), report);
                }
                Err(e) => report.problems.push(bad(e.to_string())),
            }
        }
        if !config_ok {
            return;
        }
        let config = match self.read_config(&c) {
            Ok(config) => config,
            Err(e) => return report.problems.push(bad(e.to_string())),
        };
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != manifest.layers().len() {
            report.problems.push(bad(format!(
                "{} layers but {} rootfs.diff_ids",
                manifest.layers().len(),
                diff_ids.len()
            )));
        }
        if !tagged {
            return;
        }
        for d in diff_ids {
            if !self.has_layer(d) {
                report.problems.push(Problem::MissingLayerDir {
                    image: label.to_string(),
                    diff_id: d.clone(),
                });
            }
        }
    }

    /// Whether the blob is there with `size` bytes; records a problem if not.
    fn blob_present(
        &self,
        image: &str,
        role: &str,
        d: &Digest,
        size: u64,
        report: &mut CheckReport,
    ) -> bool {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) if m.len() == size => true,
            Ok(m) => {
                report.problems.push(Problem::SizeMismatch {
                    image: image.to_string(),
                    digest: d.clone(),
                    expected: size,
                    actual: m.len(),
                });
                false
            }
            Err(_) => {
                report.problems.push(Problem::MissingBlob {
                    image: image.to_string(),
                    role: role.to_string(),
                    digest: d.clone(),
                });
                false
            }
        }
    }

    fn check_short_links(&self, report: &mut CheckReport) {
        let links = self.layers_dir().join(SHORT_LINKS);
        let Ok(entries) = fs::read_dir(&links) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false) {
                continue;
            }
            report
                .problems
                .push(Problem::DanglingShortLink { link: path });
        }
    }
}
