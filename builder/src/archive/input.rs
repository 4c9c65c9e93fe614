//! The input of `load`, as a set of named members: a tar (plain or gzipped) is streamed
//! once into numbered files in a store tmp dir, each hashed on the way, with symlinks and
//! hard links between members kept as a table; a directory is read in place. Member
//! names are checked lexically and never used as paths for writing, so no name in an
//! archive can make `load` write outside the store.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use tar::EntryType;

use super::ArchiveError;
use crate::digest::{Digest, DigestReader, DigestWriter};
use crate::store::{Store, TempDir};

/// How many links one lookup may follow (a loop of symlinks ends here).
const MAX_LINK_HOPS: usize = 16;

pub(super) enum Input {
    Spooled(Spool),
    Dir(PathBuf),
}

pub(super) struct Spool {
    /// Removed with everything in it when the load ends, whatever the outcome.
    _tmp: TempDir,
    files: HashMap<String, Spooled>,
    /// Member name -> member name it links to (already resolved against the link's dir).
    links: HashMap<String, String>,
}

#[derive(Clone)]
struct Spooled {
    path: PathBuf,
    digest: Digest,
    size: u64,
}

impl Input {
    /// Opens `path`: a directory as it is, a file as a tar or gzipped tar.
    pub(super) fn open(store: &Store, path: &Path) -> Result<Input, ArchiveError> {
        let meta = fs::metadata(path).map_err(ArchiveError::io("open", path))?;
        if meta.is_dir() {
            return Ok(Input::Dir(path.to_path_buf()));
        }
        let file = File::open(path).map_err(ArchiveError::io("open", path))?;
        let mut reader = BufReader::new(file);
        let gzipped = {
            let head =
                io::BufRead::fill_buf(&mut reader).map_err(ArchiveError::io("read", path))?;
            head.starts_with(&[0x1f, 0x8b])
        };
        let stream: Box<dyn Read> = if gzipped {
            Box::new(MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        Ok(Input::Spooled(Spool::read(store, path, stream)?))
    }

    pub(super) fn has(&self, name: &str) -> bool {
        match self {
            Input::Spooled(s) => s.resolve(name, "lookup").is_ok(),
            Input::Dir(d) => clean_name(name).is_ok_and(|n| d.join(n).is_file()),
        }
    }

    /// The member's bytes, refusing members larger than `limit` (JSON documents, read
    /// whole, must not be a way to exhaust memory).
    pub(super) fn read_small(
        &self,
        name: &str,
        referrer: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ArchiveError> {
        let (file, path) = self.open_member(name, referrer)?;
        let mut data = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(ArchiveError::io("read", &path))?;
        if data.len() as u64 > limit {
            return Err(ArchiveError::BadMember {
                member: name.to_string(),
                reason: format!("larger than {limit} bytes, too large for a JSON document"),
            });
        }
        Ok(data)
    }

    /// The member opened for reading.
    pub(super) fn open_member(
        &self,
        name: &str,
        referrer: &str,
    ) -> Result<(File, PathBuf), ArchiveError> {
        let path = match self {
            Input::Spooled(s) => s.resolve(name, referrer)?.path.clone(),
            Input::Dir(d) => d.join(checked_name(name)?),
        };
        match File::open(&path) {
            Ok(f) => Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ArchiveError::MissingMember {
                member: name.to_string(),
                referrer: referrer.to_string(),
            }),
            Err(e) => Err(ArchiveError::io("open", path)(e)),
        }
    }

    /// Digest and size of the member's bytes (known from spooling, or hashed now).
    pub(super) fn digest_of(
        &self,
        name: &str,
        referrer: &str,
    ) -> Result<(Digest, u64), ArchiveError> {
        if let Input::Spooled(s) = self {
            let f = s.resolve(name, referrer)?;
            return Ok((f.digest.clone(), f.size));
        }
        let (file, path) = self.open_member(name, referrer)?;
        let mut r = DigestReader::new(BufReader::new(file));
        io::copy(&mut r, &mut io::sink()).map_err(ArchiveError::io("read", &path))?;
        let (_, d, n) = r.finish();
        Ok((d, n))
    }

    /// Puts the member into the store as a blob that must hash to `expected`; a spooled
    /// member is moved (it is ours), a directory's is copied.
    pub(super) fn put_blob(
        &self,
        store: &Store,
        name: &str,
        referrer: &str,
        expected: &Digest,
    ) -> Result<u64, ArchiveError> {
        if let Input::Spooled(s) = self {
            let f = s.resolve(name, referrer)?;
            if &f.digest != expected {
                return Err(ArchiveError::DigestMismatch {
                    what: format!("archive member {name}"),
                    expected: expected.clone(),
                    actual: f.digest.clone(),
                });
            }
            // Another name (or image) may have moved this file in already.
            if store.has_blob(expected) {
                return Ok(f.size);
            }
            let (_, size) = store.put_blob_file(&f.path, Some(expected))?;
            return Ok(size);
        }
        if store.has_blob(expected) {
            let (d, size) = self.digest_of(name, referrer)?;
            if &d != expected {
                return Err(ArchiveError::DigestMismatch {
                    what: format!("layout file {name}"),
                    expected: expected.clone(),
                    actual: d,
                });
            }
            return Ok(size);
        }
        let (mut file, path) = self.open_member(name, referrer)?;
        let mut w = store.blob_writer()?;
        io::copy(&mut file, &mut w).map_err(ArchiveError::io("copy", &path))?;
        let (_, size) = w.commit_expecting(expected)?;
        Ok(size)
    }
}

impl Spool {
    fn read(store: &Store, path: &Path, stream: Box<dyn Read>) -> Result<Spool, ArchiveError> {
        let tmp = store.tmp_dir("load")?;
        let mut spool = Spool {
            files: HashMap::new(),
            links: HashMap::new(),
            _tmp: tmp,
        };
        let mut archive = tar::Archive::new(stream);
        let mut last = String::from("(start)");
        let read_err = |after: &str| {
            let after = after.to_string();
            let path = path.to_path_buf();
            move |source| ArchiveError::ReadArchive {
                path,
                after,
                source,
            }
        };
        let entries = archive.entries().map_err(read_err(&last))?;
        let mut seq = 0u64;
        for entry in entries {
            let mut entry = entry.map_err(read_err(&last))?;
            let raw = entry.path_bytes().into_owned();
            let member = String::from_utf8(raw).map_err(|e| ArchiveError::UnsafeMember {
                member: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                reason: "the name is not UTF-8".to_string(),
            })?;
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                EntryType::XGlobalHeader | EntryType::XHeader | EntryType::GNULongName
            ) {
                continue;
            }
            let name = checked_name(&member)?;
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                    seq += 1;
                    let file_path = spool._tmp.path().join(format!("m{seq}"));
                    let spooled = copy_member(&mut entry, &file_path).map_err(|source| {
                        ArchiveError::ReadArchive {
                            path: path.to_path_buf(),
                            after: member.clone(),
                            source,
                        }
                    })?;
                    spool.links.remove(&name);
                    spool.files.insert(name, spooled);
                }
                EntryType::Symlink => {
                    let target = link_target(&entry, &member)?;
                    let resolved = resolve_symlink(&name, &target).ok_or_else(|| {
                        ArchiveError::UnsafeMember {
                            member: member.clone(),
                            reason: format!("symlink to {target:?} leaves the archive"),
                        }
                    })?;
                    spool.files.remove(&name);
                    spool.links.insert(name, resolved);
                }
                EntryType::Link => {
                    let target = link_target(&entry, &member)?;
                    let target = checked_name(&target).map_err(|_| ArchiveError::UnsafeMember {
                        member: member.clone(),
                        reason: format!("hard link to {target:?} leaves the archive"),
                    })?;
                    spool.files.remove(&name);
                    spool.links.insert(name, target);
                }
                // Directories hold nothing by themselves; devices and fifos are never
                // part of an image archive (layers are members of their own).
                other => {
                    tracing::debug!(%member, kind = ?other, "ignoring archive member");
                }
            }
            last = member;
        }
        Ok(spool)
    }

    fn resolve(&self, name: &str, referrer: &str) -> Result<&Spooled, ArchiveError> {
        let mut current = checked_name(name)?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(f) = self.files.get(&current) {
                return Ok(f);
            }
            match self.links.get(&current) {
                Some(next) => current = next.clone(),
                None => break,
            }
        }
        Err(ArchiveError::MissingMember {
            member: name.to_string(),
            referrer: referrer.to_string(),
        })
    }
}

fn copy_member(entry: &mut impl Read, dest: &Path) -> io::Result<Spooled> {
    let file = File::create(dest)?;
    let mut w = DigestWriter::new(BufWriter::new(file));
    io::copy(entry, &mut w)?;
    let (buf, digest, size) = w.finish();
    buf.into_inner().map_err(|e| e.into_error())?.flush()?;
    Ok(Spooled {
        path: dest.to_path_buf(),
        digest,
        size,
    })
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>, member: &str) -> Result<String, ArchiveError> {
    let target = entry
        .link_name_bytes()
        .ok_or_else(|| ArchiveError::BadMember {
            member: member.to_string(),
            reason: "link without a target".to_string(),
        })?;
    String::from_utf8(target.into_owned()).map_err(|_| ArchiveError::UnsafeMember {
        member: member.to_string(),
        reason: "the link target is not UTF-8".to_string(),
    })
}

/// `./a//b/` -> `a/b`; `..` anywhere and absolute names are refused: no tool writes them
/// into an image archive, so they are a sign of a crafted one.
pub(super) fn clean_name(name: &str) -> Result<String, &'static str> {
    if name.starts_with('/') {
        return Err("absolute name");
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("name contains \"..\""),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("empty name");
    }
    Ok(parts.join("/"))
}

fn checked_name(name: &str) -> Result<String, ArchiveError> {
    clean_name(name).map_err(|reason| ArchiveError::UnsafeMember {
        member: name.to_string(),
        reason: reason.to_string(),
    })
}

/// Where a symlink member `link` pointing at `target` leads, as a member name; `None` if
/// that is outside the archive (absolute, or `..` above its root). Docker writes
/// `layer.tar -> ../<id>/layer.tar` for a layer two images share.
fn resolve_symlink(link: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(clean_name("./manifest.json").unwrap(), "manifest.json");
        assert_eq!(clean_name("a//b/./c/").unwrap(), "a/b/c");
        for bad in ["../x", "a/../../x", "/etc/passwd", "a/..", "", "./"] {
            assert!(clean_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_archive_only() {
        assert_eq!(
            resolve_symlink("b/layer.tar", "../a/layer.tar").as_deref(),
            Some("a/layer.tar")
        );
        assert_eq!(
            resolve_symlink("x", "blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(resolve_symlink("b/layer.tar", "../../etc/passwd"), None);
        assert_eq!(resolve_symlink("layer.tar", "/etc/passwd"), None);
    }
}
