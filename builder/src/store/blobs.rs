//! Content-addressed blobs under `oci/blobs/sha256/`. A blob is written to our tmp dir,
//! synced, checked against its digest and renamed into place; renaming onto an existing blob
//! is harmless (same name, same content) and refreshes its ctime, which gc reads as "in use
//! by a build in flight".

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;

use crate::image::ImageConfig;
use serde::Serialize;

use super::layout::{canonical_json, sync_dir};
use super::{Result, Store, StoreError};
use crate::digest::{Digest, DigestReader, DigestWriter};

impl Store {
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(d.hex())
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    pub fn put_blob_bytes(&self, data: &[u8]) -> Result<(Digest, u64)> {
        // Blobs are immutable and named by digest: one already here is this
        // one (a no-change rebuild writes nothing, and syncs nothing).
        let digest = Digest::of_bytes(data);
        if self
            .blob_path(&digest)
            .metadata()
            .is_ok_and(|m| m.len() == data.len() as u64)
        {
            return Ok((digest, data.len() as u64));
        }
        let mut w = self.blob_writer()?;
        w.write_all(data)
            .map_err(StoreError::io("write", w.path.clone()))?;
        w.commit()
    }

    /// Moves `tmp_file` into the store as a blob, after checking it against `expected`.
    /// The file is consumed either way: on a mismatch it is removed and nothing is stored.
    pub fn put_blob_file(
        &self,
        tmp_file: &Path,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let result = self.put_blob_file_inner(tmp_file, expected);
        if result.is_err() {
            let _ = fs::remove_file(tmp_file);
        }
        result
    }

    fn put_blob_file_inner(
        &self,
        tmp_file: &Path,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let file = File::open(tmp_file).map_err(StoreError::io("open", tmp_file))?;
        let mut reader = DigestReader::new(&file);
        io::copy(&mut reader, &mut io::sink()).map_err(StoreError::io("read", tmp_file))?;
        let (_, digest, size) = reader.finish();
        check_expected(tmp_file, expected, &digest)?;
        file.sync_all().map_err(StoreError::io("sync", tmp_file))?;
        let dest = self.blob_path(&digest);
        match fs::rename(tmp_file, &dest) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                // Another filesystem: copy next to the store first so the final step is
                // still a rename.
                let staged = self.tmp_path("blob");
                let copied = fs::copy(tmp_file, &staged)
                    .and_then(|_| File::open(&staged)?.sync_all())
                    .map_err(StoreError::io("copy", &staged))
                    .and_then(|()| {
                        fs::rename(&staged, &dest).map_err(StoreError::io("rename into", &dest))
                    });
                if copied.is_err() {
                    let _ = fs::remove_file(&staged);
                }
                copied?;
                let _ = fs::remove_file(tmp_file);
            }
            Err(e) => return Err(StoreError::io("rename into", &dest)(e)),
        }
        sync_dir(&self.blobs_dir())?;
        Ok((digest, size))
    }

    /// A streaming writer; nothing appears in the store until [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let path = self.tmp_path("blob");
        let file = File::create(&path).map_err(StoreError::io("create", &path))?;
        Ok(BlobWriter {
            store: self,
            path,
            inner: Some(DigestWriter::new(BufWriter::new(file))),
        })
    }

    /// The blob's content, checked against its digest.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let data = fs::read(&path).map_err(|e| self.missing_or_io(d, &path, e))?;
        let actual = Digest::of_bytes(&data);
        if &actual != d {
            return Err(StoreError::DigestMismatch {
                path,
                expected: d.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// The blob opened for reading (not checked: callers stream it through a `DigestReader`
    /// when they need to).
    pub fn open_blob(&self, d: &Digest) -> Result<File> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| self.missing_or_io(d, &path, e))
    }

    /// Stores `v` as canonical JSON (sorted keys, no whitespace), so equal values share a blob.
    pub fn put_json<T: Serialize>(&self, v: &T) -> Result<(Digest, u64)> {
        self.put_blob_bytes(&canonical_json("blob", v)?)
    }

    pub fn read_manifest(&self, d: &Digest) -> Result<ImageManifest> {
        let data = self.read_blob(d)?;
        serde_json::from_slice(&data).map_err(StoreError::json(self.blob_path(d)))
    }

    pub fn read_config(&self, d: &Digest) -> Result<ImageConfig> {
        let data = self.read_blob(d)?;
        serde_json::from_slice(&data).map_err(StoreError::json(self.blob_path(d)))
    }

    fn missing_or_io(&self, d: &Digest, path: &Path, e: io::Error) -> StoreError {
        if e.kind() == io::ErrorKind::NotFound {
            StoreError::BlobMissing {
                digest: d.clone(),
                needed_by: "read".to_string(),
            }
        } else {
            StoreError::io("read", path)(e)
        }
    }
}

fn check_expected(path: &Path, expected: Option<&Digest>, actual: &Digest) -> Result<()> {
    match expected {
        Some(expected) if expected != actual => Err(StoreError::DigestMismatch {
            path: path.to_path_buf(),
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        _ => Ok(()),
    }
}

/// Streams a blob into the store; dropped without [`commit`](BlobWriter::commit), it leaves
/// nothing behind.
pub struct BlobWriter<'a> {
    store: &'a Store,
    path: PathBuf,
    inner: Option<DigestWriter<BufWriter<File>>>,
}

impl BlobWriter<'_> {
    /// Syncs and moves the blob into place; returns its digest and size.
    pub fn commit(self) -> Result<(Digest, u64)> {
        self.commit_checked(None)
    }

    /// As [`commit`](BlobWriter::commit), refusing content whose digest is not `expected`.
    pub fn commit_expecting(self, expected: &Digest) -> Result<(Digest, u64)> {
        self.commit_checked(Some(expected))
    }

    fn commit_checked(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let Some(inner) = self.inner.take() else {
            return Err(StoreError::io("commit", &self.path)(io::Error::other(
                "blob writer already finished",
            )));
        };
        let (buf, digest, size) = inner.finish();
        let file = buf
            .into_inner()
            .map_err(|e| StoreError::io("write", &self.path)(e.into_error()))?;
        check_expected(&self.path, expected, &digest)?;
        file.sync_all()
            .map_err(StoreError::io("sync", &self.path))?;
        drop(file);
        let dest = self.store.blob_path(&digest);
        fs::rename(&self.path, &dest).map_err(StoreError::io("rename into", &dest))?;
        sync_dir(&self.store.blobs_dir())?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // After a successful commit the path was renamed away and this finds nothing.
        self.inner.take();
        let _ = fs::remove_file(&self.path);
    }
}
