//! `save`: images of the store into one tar file, docker-archive or OCI archive.
//!
//! The tar is deterministic (members sorted by name, mtime 0, owner 0:0, fixed modes), so
//! the same images always give the same bytes. It is written to a hidden temp file beside
//! `out` and renamed onto it once complete and synced: a failed save leaves `out` as it was.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::{ArchiveError, ArchiveFormat, IMAGE_NAME_ANNOTATION};
use crate::digest::{Digest, DigestReader};
use crate::layer::open_layer;
use crate::store::{normalize_name, Image, Store, REF_NAME_ANNOTATION};

/// Writes `images` (names or ids, as `Store::resolve` takes them) to `out`.
///
/// docker-archive `RepoTags`: an image asked for by name carries that name (as `docker
/// save NAME` does); one asked for by id or digest carries all of its names.
pub fn save(
    store: &Store,
    images: &[String],
    format: ArchiveFormat,
    out: &Path,
) -> Result<(), ArchiveError> {
    let selected = select(store, images)?;
    let members = match format {
        ArchiveFormat::DockerArchive => docker_members(store, &selected)?,
        ArchiveFormat::OciArchive => oci_members(store, &selected)?,
    };
    write_atomically(store, out, &members)?;
    tracing::info!(out = %out.display(), images = selected.len(), ?format, "saved");
    Ok(())
}

/// An image to write and the names it goes under, one entry per manifest.
struct Selected {
    image: Image,
    names: Vec<String>,
}

fn select(store: &Store, refs: &[String]) -> Result<Vec<Selected>, ArchiveError> {
    let mut out: Vec<Selected> = Vec::new();
    for r in refs {
        let image = store.resolve(r)?;
        let names = match normalize_name(r) {
            Ok(n) if image.names.contains(&n) => vec![n],
            _ => image.names.clone(),
        };
        match out
            .iter_mut()
            .find(|s| s.image.manifest_digest == image.manifest_digest)
        {
            Some(s) => {
                for n in names {
                    if !s.names.contains(&n) {
                        s.names.push(n);
                    }
                }
            }
            None => out.push(Selected { image, names }),
        }
    }
    Ok(out)
}

/// What a member's content is; blobs are read (and checked) only while the tar is written.
enum Content {
    Bytes(Vec<u8>),
    /// A store blob as it is.
    Blob {
        digest: Digest,
        size: u64,
    },
    /// A layer blob decompressed; `size` and `diff_id` measured beforehand.
    Uncompressed {
        blob: Digest,
        diff_id: Digest,
        size: u64,
    },
    Dir,
}

fn docker_members(
    store: &Store,
    selected: &[Selected],
) -> Result<BTreeMap<String, Content>, ArchiveError> {
    let mut members = BTreeMap::new();
    let mut manifest = Vec::new();
    for s in selected {
        let config_name = format!("{}.json", s.image.config_digest.hex());
        let config = store.read_blob(&s.image.config_digest)?;
        members.insert(config_name.clone(), Content::Bytes(config));
        let diff_ids = &s.image.config.rootfs.diff_ids;
        let mut layers = Vec::new();
        for (l, diff_id) in s.image.manifest.layers().iter().zip(diff_ids) {
            let dir = diff_id.hex().to_string();
            let name = format!("{dir}/layer.tar");
            if !members.contains_key(&name) {
                let blob =
                    Digest::parse(l.digest().as_ref()).map_err(|e| ArchiveError::BadMember {
                        member: format!("manifest {}", s.image.manifest_digest),
                        reason: e.to_string(),
                    })?;
                let size = measure_layer(store, &blob, diff_id)?;
                members.insert(format!("{dir}/"), Content::Dir);
                members.insert(
                    name.clone(),
                    Content::Uncompressed {
                        blob,
                        diff_id: diff_id.clone(),
                        size,
                    },
                );
            }
            layers.push(name);
        }
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": if s.names.is_empty() { json!(null) } else { json!(s.names) },
            "Layers": layers,
        }));
    }
    members.insert(
        "manifest.json".to_string(),
        Content::Bytes(json_bytes(&json!(manifest))),
    );
    Ok(members)
}

/// The uncompressed size of a layer blob, which the tar header needs before the content;
/// the diff_id is checked on the way, so a corrupt blob fails before anything is written.
fn measure_layer(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<u64, ArchiveError> {
    let path = store.blob_path(blob);
    let tar = open_layer(io::BufReader::new(store.open_blob(blob)?))
        .map_err(ArchiveError::layer(blob.to_string()))?;
    let mut r = DigestReader::new(tar);
    io::copy(&mut r, &mut io::sink()).map_err(ArchiveError::io("decompress", &path))?;
    let (_, actual, size) = r.finish();
    if &actual != diff_id {
        return Err(ArchiveError::DigestMismatch {
            what: format!("uncompressed layer blob {blob}"),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(size)
}

fn oci_members(
    store: &Store,
    selected: &[Selected],
) -> Result<BTreeMap<String, Content>, ArchiveError> {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut index_entries = Vec::new();
    let tag_of = |name: &str| {
        let slash = name.rfind('/').map_or(0, |i| i + 1);
        name[slash..]
            .rfind(':')
            .map_or("latest".to_string(), |i| name[slash + i + 1..].to_string())
    };
    // A tag part two entries share would make `oci-archive:FILE:TAG` ambiguous: those
    // entries are referred to by their full names instead.
    let mut tag_count: BTreeMap<String, usize> = BTreeMap::new();
    for s in selected {
        for n in &s.names {
            *tag_count.entry(tag_of(n)).or_default() += 1;
        }
    }
    for s in selected {
        let m = &s.image.manifest;
        let manifest_size = manifest_size(store, &s.image)?;
        blobs.insert(s.image.manifest_digest.clone(), manifest_size);
        blobs.insert(s.image.config_digest.clone(), m.config().size());
        for l in m.layers() {
            let d = Digest::parse(l.digest().as_ref()).map_err(|e| ArchiveError::BadMember {
                member: format!("manifest {}", s.image.manifest_digest),
                reason: e.to_string(),
            })?;
            blobs.insert(d, l.size());
        }
        let entry = |annotations: Option<serde_json::Value>| {
            let mut e = json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": s.image.manifest_digest.as_str(),
                "size": manifest_size,
            });
            if let Some(a) = annotations {
                e["annotations"] = a;
            }
            e
        };
        if s.names.is_empty() {
            index_entries.push(entry(None));
        }
        for n in &s.names {
            let tag = tag_of(n);
            let ref_name = if tag_count.get(&tag) == Some(&1) {
                tag
            } else {
                n.clone()
            };
            index_entries.push(entry(Some(json!({
                REF_NAME_ANNOTATION: ref_name,
                IMAGE_NAME_ANNOTATION: n,
            }))));
        }
    }
    let mut members = BTreeMap::new();
    members.insert("blobs/".to_string(), Content::Dir);
    members.insert("blobs/sha256/".to_string(), Content::Dir);
    for (digest, size) in blobs {
        members.insert(
            format!("blobs/sha256/{}", digest.hex()),
            Content::Blob { digest, size },
        );
    }
    members.insert(
        "oci-layout".to_string(),
        Content::Bytes(json_bytes(&json!({"imageLayoutVersion": "1.0.0"}))),
    );
    members.insert(
        "index.json".to_string(),
        Content::Bytes(json_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index_entries,
        }))),
    );
    Ok(members)
}

/// The manifest blob's size on disk (the index entry that has it is not at hand here;
/// the content is checked against the digest when it is written).
fn manifest_size(store: &Store, image: &Image) -> Result<u64, ArchiveError> {
    let path = store.blob_path(&image.manifest_digest);
    Ok(fs::metadata(&path)
        .map_err(ArchiveError::io("stat", &path))?
        .len())
}

/// serde_json's default map is sorted, so this is deterministic.
fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Removes the temp file unless the save completed.
struct TempOut {
    path: Option<PathBuf>,
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

fn write_atomically(
    store: &Store,
    out: &Path,
    members: &BTreeMap<String, Content>,
) -> Result<(), ArchiveError> {
    let file_name = out
        .file_name()
        .ok_or_else(|| ArchiveError::Write {
            path: out.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?
        .to_string_lossy()
        .into_owned();
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp_path = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let guard = TempOut {
        path: Some(tmp_path.clone()),
    };
    let file = File::create(&tmp_path).map_err(ArchiveError::io("create", &tmp_path))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    for (name, content) in members {
        append(store, &mut tar, name, content).map_err(|e| match e {
            AppendError::Archive(e) => e,
            AppendError::Io(source) => ArchiveError::Write {
                path: tmp_path.clone(),
                source,
            },
        })?;
    }
    let write_err = |source| ArchiveError::Write {
        path: tmp_path.clone(),
        source,
    };
    let buf = tar.into_inner().map_err(write_err)?;
    let file = buf.into_inner().map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    fs::rename(&tmp_path, out).map_err(ArchiveError::io("rename into", out))?;
    let mut guard = guard;
    guard.path = None;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(ArchiveError::io("sync directory", &dir))?;
    Ok(())
}

enum AppendError {
    Archive(ArchiveError),
    Io(io::Error),
}

impl From<io::Error> for AppendError {
    fn from(e: io::Error) -> Self {
        AppendError::Io(e)
    }
}

impl From<ArchiveError> for AppendError {
    fn from(e: ArchiveError) -> Self {
        AppendError::Archive(e)
    }
}

impl From<crate::store::StoreError> for AppendError {
    fn from(e: crate::store::StoreError) -> Self {
        AppendError::Archive(e.into())
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

fn append<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    name: &str,
    content: &Content,
) -> Result<(), AppendError> {
    match content {
        Content::Dir => {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            tar.append_data(&mut h, name, io::empty())?;
        }
        Content::Bytes(data) => {
            let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
            tar.append_data(&mut h, name, &data[..])?;
        }
        Content::Blob { digest, size } => {
            let file = store.open_blob(digest)?;
            let mut h = header(tar::EntryType::Regular, 0o644, *size);
            let mut r = Exact::new(DigestReader::new(io::BufReader::new(file)), *size);
            tar.append_data(&mut h, name, &mut r)?;
            check_digest(r.inner, digest, &format!("blob {digest}"))?;
        }
        Content::Uncompressed {
            blob,
            diff_id,
            size,
        } => {
            let file = store.open_blob(blob)?;
            let plain = open_layer(io::BufReader::new(file))
                .map_err(ArchiveError::layer(blob.to_string()))?;
            let mut h = header(tar::EntryType::Regular, 0o644, *size);
            let mut r = Exact::new(DigestReader::new(plain), *size);
            tar.append_data(&mut h, name, &mut r)?;
            check_digest(r.inner, diff_id, &format!("uncompressed layer blob {blob}"))?;
        }
    }
    Ok(())
}

fn check_digest<R: Read>(
    r: DigestReader<R>,
    expected: &Digest,
    what: &str,
) -> Result<(), ArchiveError> {
    let (_, actual, _) = r.finish();
    if &actual != expected {
        return Err(ArchiveError::DigestMismatch {
            what: what.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

/// Yields exactly the size given in the tar header, failing otherwise: tar pads by what
/// it copied, so a blob that changed size would silently corrupt every later member.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Exact<R> {
    fn new(inner: R, size: u64) -> Self {
        Exact {
            inner,
            remaining: size,
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other("content is longer than measured")),
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "content is shorter than measured",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
