//! A layer tar unpacked into a directory without ever leaving it: names are
//! cleaned lexically inside `dest`, every parent is checked with `lstat` to be
//! a real directory (never a symlink), and files are created with
//! `O_NOFOLLOW|O_EXCL`, so neither `..` nor a symlink planted by an earlier
//! entry can redirect a write.
//!
//! `dest` is assumed private to this process while it is being filled (the
//! store extracts under `tmp/` and renames into place), so the checks are not
//! raced by another writer.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{fchown, lchown, symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use tar::{Archive, Entry, EntryType};

use super::{xattr, LayerError, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};

/// What to do with the whiteouts of a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Whiteouts {
    /// Keep them as overlayfs understands them (char device 0/0,
    /// `trusted.overlay.opaque=y`): `dest` becomes an overlay lower dir.
    #[default]
    Overlay,
    /// Delete what they hide from `dest`, which already holds the lower
    /// layers: layers are flattened into one directory.
    Apply,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    pub whiteouts: Whiteouts,
}

/// Counts for progress reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Entries applied, of every kind (whiteouts included).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Whiteouts and opaque markers seen.
    pub whiteouts: u64,
}

/// Unpacks the layer tar `tar` into `dest` (created if missing). After the
/// archive's end the rest of `tar` is read and discarded, so a digest
/// computed around `tar` covers the whole blob.
pub fn extract(
    tar: impl Read,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractStats, LayerError> {
    fs::create_dir_all(dest).map_err(|source| LayerError::Io {
        op: "creating extraction directory",
        path: dest.to_path_buf(),
        source,
    })?;
    let mut ex = Extractor {
        dest,
        whiteouts: opts.whiteouts,
        stats: ExtractStats::default(),
        dirs: Vec::new(),
        written: HashSet::new(),
    };
    let mut archive = Archive::new(tar);
    let mut last = String::from("(start of archive)");
    let entries = archive.entries().map_err(|source| LayerError::TarRead {
        after: last.clone(),
        source,
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|source| LayerError::TarRead {
            after: last.clone(),
            source,
        })?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        ex.entry(&mut entry, &name)?;
        last = name;
    }
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(|source| LayerError::TarRead {
        after: "(end of archive)".into(),
        source,
    })?;
    ex.finish_dirs()?;
    Ok(ex.stats)
}

struct DirMeta {
    path: PathBuf,
    entry: String,
    mode: u32,
    mtime: u64,
}

struct Extractor<'a> {
    dest: &'a Path,
    whiteouts: Whiteouts,
    stats: ExtractStats,
    /// Directory modes and mtimes, applied once nothing more is created in them.
    dirs: Vec<DirMeta>,
    /// Paths (relative to `dest`) this layer wrote; only kept in `Apply` mode,
    /// where whiteouts must hide only what the lower layers left.
    written: HashSet<PathBuf>,
}

/// The entry's name as components inside the layer: a leading `/` is
/// relative to the layer root (as Docker and containerd do), `.` and empty
/// components vanish, and a `..` may not climb above the root.
fn clean(entry: &str, raw: &[u8]) -> Result<Vec<OsString>, LayerError> {
    let mut comps: Vec<OsString> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if comps.pop().is_none() {
                    return Err(LayerError::UnsafeEntry {
                        entry: entry.to_string(),
                        reason: "its `..` leads outside the layer".into(),
                    });
                }
            }
            _ => comps.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(comps)
}

fn rel_path(comps: &[OsString]) -> PathBuf {
    comps.iter().collect()
}

impl Extractor<'_> {
    fn entry<R: Read>(&mut self, entry: &mut Entry<'_, R>, name: &str) -> Result<(), LayerError> {
        let kind = entry.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        let comps = clean(name, &entry.path_bytes())?;
        let Some((last, parents)) = comps.split_last() else {
            if kind == EntryType::Directory {
                // The root's own metadata stays the store's, not the layer's.
                return Ok(());
            }
            return Err(LayerError::BadEntry {
                entry: name.to_string(),
                reason: "a non-directory entry names the layer root".into(),
            });
        };

        let last_bytes = last.as_bytes();
        if last_bytes == OPAQUE_MARKER.as_bytes() {
            self.stats.entries += 1;
            self.stats.whiteouts += 1;
            return self.opaque(name, parents);
        }
        if last_bytes.starts_with(b".wh..wh.") {
            // Other AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): not content.
            tracing::debug!(entry = name, "skipping AUFS metadata entry");
            return Ok(());
        }
        if let Some(hidden) = last_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(LayerError::UnsafeEntry {
                    entry: name.to_string(),
                    reason: "whiteout of an invalid name".into(),
                });
            }
            self.stats.entries += 1;
            self.stats.whiteouts += 1;
            let mtime = entry.header().mtime().unwrap_or(0);
            return self.whiteout(name, parents, OsStr::from_bytes(hidden), mtime);
        }

        let parent = self.make_parent(name, parents)?;
        let path = parent.join(last);
        let meta = EntryMeta::read(entry, name)?;
        match kind {
            EntryType::Directory => self.directory(name, &path, &meta)?,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(entry, name, &path, &meta)?
            }
            EntryType::Symlink => self.symlink(entry, name, &path, &meta)?,
            EntryType::Link => self.hardlink(entry, name, &path)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.node(entry, kind, name, &path, &meta)?
            }
            other => {
                return Err(LayerError::BadEntry {
                    entry: name.to_string(),
                    reason: format!("unsupported tar entry type {:?}", other.as_byte() as char),
                })
            }
        }
        self.stats.entries += 1;
        if self.whiteouts == Whiteouts::Apply {
            self.written.insert(rel_path(&comps));
        }
        Ok(())
    }

    /// The directory an entry goes in, every component checked to be a real
    /// directory; missing ones are created (mode 0755, as Docker does).
    fn make_parent(&self, entry: &str, parents: &[OsString]) -> Result<PathBuf, LayerError> {
        match self.parent(entry, parents, true)? {
            Some(p) => Ok(p),
            None => Err(self.fail(
                entry,
                "creating parent directory",
                io::Error::from(io::ErrorKind::NotFound),
            )),
        }
    }

    /// Like `make_parent`, but `None` when a component does not exist.
    fn find_parent(
        &self,
        entry: &str,
        parents: &[OsString],
    ) -> Result<Option<PathBuf>, LayerError> {
        self.parent(entry, parents, false)
    }

    fn parent(
        &self,
        entry: &str,
        parents: &[OsString],
        create: bool,
    ) -> Result<Option<PathBuf>, LayerError> {
        let mut p = self.dest.to_path_buf();
        for c in parents {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(LayerError::UnsafeEntry {
                        entry: entry.to_string(),
                        reason: format!(
                            "its parent {} is a symlink, which extraction never follows",
                            p.strip_prefix(self.dest).unwrap_or(&p).display()
                        ),
                    })
                }
                Ok(_) => {
                    return Err(LayerError::BadEntry {
                        entry: entry.to_string(),
                        reason: format!(
                            "its parent {} is not a directory",
                            p.strip_prefix(self.dest).unwrap_or(&p).display()
                        ),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    // Set explicitly: mkdir's mode is cut by the umask.
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&p)
                        .and_then(|()| fs::set_permissions(&p, fs::Permissions::from_mode(0o755)))
                        .map_err(|source| self.fail(entry, "creating parent directory", source))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(self.fail(entry, "checking parent directory", source)),
            }
        }
        Ok(Some(p))
    }

    fn fail(&self, entry: &str, op: &'static str, source: io::Error) -> LayerError {
        LayerError::Extract {
            entry: entry.to_string(),
            op,
            source,
        }
    }

    /// Makes room for a new entry at `path`: anything there goes, except a
    /// directory that a directory entry merges into. Returns whether such a
    /// directory is there.
    fn replace(&self, entry: &str, path: &Path, new_is_dir: bool) -> Result<bool, LayerError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.fail(entry, "checking existing path", source)),
            Ok(m) if m.is_dir() && new_is_dir => Ok(true),
            Ok(m) => {
                if m.is_dir() {
                    fs::remove_dir_all(path)
                } else {
                    fs::remove_file(path)
                }
                .map_err(|source| self.fail(entry, "replacing existing path", source))?;
                Ok(false)
            }
        }
    }

    fn directory(&mut self, name: &str, path: &Path, meta: &EntryMeta) -> Result<(), LayerError> {
        if !self.replace(name, path, true)? {
            // Owner-only until its real mode is set at the end.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(path)
                .map_err(|source| self.fail(name, "creating directory", source))?;
        }
        lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|source| self.fail(name, "setting owner", source))?;
        self.set_xattrs(name, path, meta, false)?;
        self.dirs.push(DirMeta {
            path: path.to_path_buf(),
            entry: name.to_string(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        name: &str,
        path: &Path,
        meta: &EntryMeta,
    ) -> Result<(), LayerError> {
        self.replace(name, path, false)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| self.fail(name, "creating file", source))?;
        let n = io::copy(&mut BufReader::with_capacity(128 * 1024, entry), &mut f)
            .map_err(|source| self.fail(name, "writing file content", source))?;
        // Owner before mode: chown clears setuid/setgid.
        fchown(&f, Some(meta.uid), Some(meta.gid))
            .map_err(|source| self.fail(name, "setting owner", source))?;
        f.set_permissions(fs::Permissions::from_mode(meta.mode))
            .map_err(|source| self.fail(name, "setting mode", source))?;
        // After chown, which would drop security.capability.
        self.set_xattrs(name, path, meta, false)?;
        f.set_times(
            fs::FileTimes::new()
                .set_accessed(meta.time())
                .set_modified(meta.time()),
        )
        .map_err(|source| self.fail(name, "setting mtime", source))?;
        self.stats.files += 1;
        self.stats.bytes += n;
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        name: &str,
        path: &Path,
        meta: &EntryMeta,
    ) -> Result<(), LayerError> {
        let Some(target) = entry.link_name_bytes() else {
            return Err(LayerError::BadEntry {
                entry: name.to_string(),
                reason: "symlink without a target".into(),
            });
        };
        // The target is read inside the container, never resolved here.
        let target = OsStr::from_bytes(&target).to_os_string();
        self.replace(name, path, false)?;
        symlink(&target, path).map_err(|source| self.fail(name, "creating symlink", source))?;
        lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|source| self.fail(name, "setting owner", source))?;
        self.set_xattrs(name, path, meta, true)?;
        self.set_times_nofollow(name, path, meta.mtime)
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        name: &str,
        path: &Path,
    ) -> Result<(), LayerError> {
        let Some(raw) = entry.link_name_bytes() else {
            return Err(LayerError::BadEntry {
                entry: name.to_string(),
                reason: "hardlink without a target".into(),
            });
        };
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let bad = |reason: String| LayerError::UnsafeEntry {
            entry: name.to_string(),
            reason,
        };
        let comps = clean(name, &raw).map_err(|_| {
            bad(format!(
                "its hardlink target {shown} leads outside the layer"
            ))
        })?;
        let Some((last, parents)) = comps.split_last() else {
            return Err(bad("hardlink to the layer root".into()));
        };
        let Some(parent) = self.find_parent(name, parents)? else {
            return Err(bad(format!(
                "its hardlink target {shown} is not in the layer"
            )));
        };
        let target = parent.join(last);
        match fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => {
                return Err(bad(format!("its hardlink target {shown} is a directory")))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(bad(format!(
                    "its hardlink target {shown} is not in the layer"
                )))
            }
            Err(source) => return Err(self.fail(name, "checking hardlink target", source)),
        }
        if target == path {
            return Ok(());
        }
        self.replace(name, path, false)?;
        // link(2) does not follow a symlink target: the link names the symlink itself.
        fs::hard_link(&target, path).map_err(|source| self.fail(name, "creating hardlink", source))
    }

    fn node<R: Read>(
        &mut self,
        entry: &mut Entry<'_, R>,
        kind: EntryType,
        name: &str,
        path: &Path,
        meta: &EntryMeta,
    ) -> Result<(), LayerError> {
        let header = entry.header();
        let dev_err = |source| LayerError::BadEntry {
            entry: name.to_string(),
            reason: format!("bad device number: {source}"),
        };
        let (sflag, major, minor) = match kind {
            EntryType::Char | EntryType::Block => (
                if kind == EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                },
                header.device_major().map_err(dev_err)?.unwrap_or(0),
                header.device_minor().map_err(dev_err)?.unwrap_or(0),
            ),
            // A fifo's device fields are often left blank.
            _ => (SFlag::S_IFIFO, 0, 0),
        };
        self.replace(name, path, false)?;
        mknod(
            path,
            sflag,
            Mode::empty(),
            makedev(major.into(), minor.into()),
        )
        .map_err(|e| self.fail(name, "creating device node", e.into()))?;
        lchown(path, Some(meta.uid), Some(meta.gid))
            .map_err(|source| self.fail(name, "setting owner", source))?;
        // A node is never opened here; chmod by path is safe because we just made it.
        fs::set_permissions(path, fs::Permissions::from_mode(meta.mode))
            .map_err(|source| self.fail(name, "setting mode", source))?;
        self.set_xattrs(name, path, meta, false)?;
        self.set_times_nofollow(name, path, meta.mtime)
    }

    fn whiteout(
        &mut self,
        name: &str,
        parents: &[OsString],
        hidden: &OsStr,
        mtime: u64,
    ) -> Result<(), LayerError> {
        match self.whiteouts {
            Whiteouts::Overlay => {
                let parent = self.make_parent(name, parents)?;
                let path = parent.join(hidden);
                self.replace(name, &path, false)?;
                mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| self.fail(name, "creating overlay whiteout", e.into()))?;
                self.set_times_nofollow(name, &path, mtime)
            }
            Whiteouts::Apply => {
                let Some(parent) = self.find_parent(name, parents)? else {
                    return Ok(()); // nothing below to hide
                };
                let mut rel = rel_path(parents);
                rel.push(hidden);
                if self.written.contains(&rel) {
                    // A whiteout hides lower layers only, never its own layer's entries.
                    return Ok(());
                }
                self.replace(name, &parent.join(hidden), false)?;
                Ok(())
            }
        }
    }

    fn opaque(&mut self, name: &str, parents: &[OsString]) -> Result<(), LayerError> {
        match self.whiteouts {
            Whiteouts::Overlay => {
                let dir = self.make_parent(name, parents)?;
                xattr::set(&dir, OsStr::new(OVERLAY_OPAQUE_XATTR), b"y").map_err(|source| {
                    LayerError::XattrWrite {
                        entry: name.to_string(),
                        name: OVERLAY_OPAQUE_XATTR.into(),
                        source,
                    }
                })
            }
            Whiteouts::Apply => {
                let Some(dir) = self.find_parent(name, parents)? else {
                    return Ok(());
                };
                self.clear_lower(name, &dir, rel_path(parents))
            }
        }
    }

    /// Deletes everything under `dir` that this layer did not write: an
    /// opaque directory shows none of the lower layers' content, at any depth.
    fn clear_lower(&self, name: &str, dir: &Path, rel: PathBuf) -> Result<(), LayerError> {
        let list_err = |source| self.fail(name, "listing opaque directory", source);
        for child in fs::read_dir(dir).map_err(list_err)? {
            let child = child.map_err(list_err)?;
            let child_rel = rel.join(child.file_name());
            let path = child.path();
            if !self.written.contains(&child_rel) {
                self.replace(name, &path, false)?;
            } else if child.file_type().map_err(list_err)?.is_dir() {
                self.clear_lower(name, &path, child_rel)?;
            }
        }
        Ok(())
    }

    fn set_xattrs(
        &self,
        name: &str,
        path: &Path,
        meta: &EntryMeta,
        is_symlink: bool,
    ) -> Result<(), LayerError> {
        for (key, value) in &meta.xattrs {
            match xattr::set(path, key, value) {
                Ok(()) => {}
                // The kernel allows no user.* xattrs on symlinks.
                Err(e)
                    if is_symlink
                        && key.as_bytes().starts_with(b"user.")
                        && e.raw_os_error() == Some(libc::EPERM) =>
                {
                    tracing::warn!(entry = name, xattr = ?key, "dropping user xattr of a symlink");
                }
                Err(source) => {
                    return Err(LayerError::XattrWrite {
                        entry: name.to_string(),
                        name: key.to_string_lossy().into_owned(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    fn set_times_nofollow(&self, name: &str, path: &Path, mtime: u64) -> Result<(), LayerError> {
        let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| self.fail(name, "setting mtime", e.into()))
    }

    /// Directory modes and mtimes last, since creating entries in a directory
    /// changes its mtime and a read-only mode would stop a non-root extractor.
    fn finish_dirs(&self) -> Result<(), LayerError> {
        for d in &self.dirs {
            // O_NOFOLLOW: a later entry may have replaced the directory with a symlink.
            let f = match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&d.path)
            {
                Ok(f) => f,
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        || e.raw_os_error() == Some(libc::ELOOP)
                        || e.raw_os_error() == Some(libc::ENOTDIR) =>
                {
                    continue;
                }
                Err(source) => return Err(self.fail(&d.entry, "opening directory", source)),
            };
            f.set_permissions(fs::Permissions::from_mode(d.mode))
                .map_err(|source| self.fail(&d.entry, "setting mode", source))?;
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(d.mtime);
            f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
                .map_err(|source| self.fail(&d.entry, "setting mtime", source))?;
        }
        Ok(())
    }
}

/// The metadata of an entry that extraction applies.
struct EntryMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

impl EntryMeta {
    fn read<R: Read>(entry: &mut Entry<'_, R>, name: &str) -> Result<EntryMeta, LayerError> {
        let bad = |what: &str, e: io::Error| LayerError::BadEntry {
            entry: name.to_string(),
            reason: format!("bad {what}: {e}"),
        };
        let h = entry.header();
        let mode = h.mode().map_err(|e| bad("mode", e))? & 0o7777;
        let uid = h.uid().map_err(|e| bad("uid", e))?;
        let gid = h.gid().map_err(|e| bad("gid", e))?;
        let mut mtime = h.mtime().map_err(|e| bad("mtime", e))?;
        let id = |v: u64, what: &str| {
            u32::try_from(v).map_err(|_| LayerError::BadEntry {
                entry: name.to_string(),
                reason: format!("{what} {v} is out of range"),
            })
        };
        let (uid, gid) = (id(uid, "uid")?, id(gid, "gid")?);

        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions().map_err(|e| bad("PAX header", e))? {
            for ext in pax {
                let ext = ext.map_err(|e| bad("PAX record", e))?;
                let key = ext.key_bytes();
                if key == b"mtime" {
                    // PAX mtimes may have a fraction; the header's seconds suffice.
                    let v = ext.value_bytes();
                    let secs = v.split(|&b| b == b'.').next().unwrap_or(v);
                    if let Some(s) = std::str::from_utf8(secs).ok().and_then(|s| s.parse().ok()) {
                        mtime = s;
                    }
                } else if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
                    // Overlay attributes from a layer could redirect lookups to
                    // other layers' files; only whiteout markers may set any.
                    if xname.starts_with(super::OVERLAY_XATTR_PREFIX) {
                        tracing::warn!(entry = name, "dropping overlay xattr stored in a layer");
                        continue;
                    }
                    xattrs.push((
                        OsStr::from_bytes(xname).to_os_string(),
                        ext.value_bytes().to_vec(),
                    ));
                }
            }
        }
        Ok(EntryMeta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    fn time(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(self.mtime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use tar::{Builder, Header};

    /// Appends an entry with its name written raw into the header, bypassing
    /// the tar crate's own checks, as a hostile archive would.
    fn raw(b: &mut Builder<Vec<u8>>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn file(b: &mut Builder<Vec<u8>>, name: &str, data: &[u8]) {
        raw(b, name, EntryType::Regular, "", data);
    }

    fn tar_of(f: impl FnOnce(&mut Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = Builder::new(Vec::new());
        f(&mut b);
        b.into_inner().unwrap()
    }

    /// A sandbox: `dest` to extract into, `outside` beside it holding a
    /// canary, and the whole tree listed afterwards to prove nothing else changed.
    struct Sandbox {
        tmp: tempfile::TempDir,
    }

    impl Sandbox {
        fn new() -> Sandbox {
            let tmp = tempfile::Builder::new()
                .prefix("keel-outside-")
                .tempdir()
                .unwrap();
            fs::create_dir(tmp.path().join("dest")).unwrap();
            fs::create_dir(tmp.path().join("outside")).unwrap();
            fs::write(tmp.path().join("outside/canary"), b"untouched").unwrap();
            Sandbox { tmp }
        }
        fn dest(&self) -> PathBuf {
            self.tmp.path().join("dest")
        }
        fn outside(&self) -> PathBuf {
            self.tmp.path().join("outside")
        }
        /// Every path outside `dest`, to compare before and after.
        fn outside_listing(&self) -> Vec<PathBuf> {
            walkdir::WalkDir::new(self.tmp.path())
                .into_iter()
                .filter_entry(|e| e.path() != self.dest())
                .map(|e| e.unwrap().into_path())
                .collect()
        }
        fn extract(&self, tar: &[u8], whiteouts: Whiteouts) -> Result<ExtractStats, LayerError> {
            extract(tar, &self.dest(), &ExtractOptions { whiteouts })
        }
        fn assert_outside_untouched(&self, before: &[PathBuf]) {
            assert_eq!(self.outside_listing(), before);
            assert_eq!(
                fs::read(self.outside().join("canary")).unwrap(),
                b"untouched"
            );
        }
    }

    fn assert_unsafe(r: Result<ExtractStats, LayerError>, entry: &str) {
        match r {
            Err(LayerError::UnsafeEntry { entry: e, .. }) => assert_eq!(e, entry),
            other => panic!("expected {entry} to be refused, got {other:?}"),
        }
    }

    #[test]
    fn dot_dot_escapes_are_refused() {
        for name in ["../x", "a/../../x", "./../outside/canary", "a/b/../../../x"] {
            let sb = Sandbox::new();
            let before = sb.outside_listing();
            let tar = tar_of(|b| file(b, name, b"pwned"));
            assert_unsafe(sb.extract(&tar, Whiteouts::Overlay), name);
            sb.assert_outside_untouched(&before);
            assert!(!sb.tmp.path().join("x").exists());
        }
    }

    #[test]
    fn dot_dot_inside_dest_and_absolute_names_stay_inside() {
        let sb = Sandbox::new();
        let before = sb.outside_listing();
        let tar = tar_of(|b| {
            file(b, "/etc/passwd", b"in layer");
            file(b, "a/../b", b"b");
        });
        sb.extract(&tar, Whiteouts::Overlay).unwrap();
        assert_eq!(fs::read(sb.dest().join("etc/passwd")).unwrap(), b"in layer");
        assert_eq!(fs::read(sb.dest().join("b")).unwrap(), b"b");
        sb.assert_outside_untouched(&before);
    }

    #[test]
    fn writing_through_a_symlink_is_refused() {
        let sb = Sandbox::new();
        let before = sb.outside_listing();
        let out = sb.outside();
        let abs = out.to_str().unwrap().to_string();
        for (link, name) in [(abs.as_str(), "evil/f"), ("../outside", "evil/canary")] {
            let tar = tar_of(|b| {
                raw(b, "evil", EntryType::Symlink, link, b"");
                file(b, name, b"pwned");
            });
            assert_unsafe(sb.extract(&tar, Whiteouts::Overlay), name);
            sb.assert_outside_untouched(&before);
            // The symlink itself is kept: its target is for the container.
            assert_eq!(
                fs::read_link(sb.dest().join("evil")).unwrap(),
                Path::new(link)
            );
        }
        // Whiteouts and opaque markers do not reach through symlinks either.
        for (mode, marker) in [
            (Whiteouts::Apply, "evil/.wh.canary"),
            (Whiteouts::Apply, "evil/.wh..wh..opq"),
            (Whiteouts::Overlay, "evil/.wh.canary"),
            (Whiteouts::Overlay, "evil/.wh..wh..opq"),
        ] {
            let tar = tar_of(|b| file(b, marker, b""));
            assert_unsafe(sb.extract(&tar, mode), marker);
            sb.assert_outside_untouched(&before);
        }
    }

    #[test]
    fn a_file_replaces_a_symlink_instead_of_writing_through_it() {
        let sb = Sandbox::new();
        let before = sb.outside_listing();
        let target = sb.outside().join("canary");
        let tar = tar_of(|b| {
            raw(b, "evil", EntryType::Symlink, target.to_str().unwrap(), b"");
            file(b, "evil", b"replaced");
        });
        sb.extract(&tar, Whiteouts::Overlay).unwrap();
        let m = sb.dest().join("evil").symlink_metadata().unwrap();
        assert!(m.is_file());
        assert_eq!(fs::read(sb.dest().join("evil")).unwrap(), b"replaced");
        sb.assert_outside_untouched(&before);
    }

    #[test]
    fn hardlinks_must_stay_inside() {
        let passwd_links = fs::metadata("/etc/passwd").map(|m| m.nlink()).ok();
        let sb = Sandbox::new();
        let before = sb.outside_listing();
        let canary = sb.outside().join("canary");
        for target in ["/etc/passwd", "../outside/canary", canary.to_str().unwrap()] {
            let tar = tar_of(|b| raw(b, "h", EntryType::Link, target, b""));
            assert_unsafe(sb.extract(&tar, Whiteouts::Overlay), "h");
            assert!(!sb.dest().join("h").exists());
        }
        // Through a symlinked parent, and to a symlink (which links the symlink itself).
        let tar = tar_of(|b| {
            raw(
                b,
                "evil",
                EntryType::Symlink,
                sb.outside().to_str().unwrap(),
                b"",
            );
            raw(b, "h", EntryType::Link, "evil/canary", b"");
        });
        assert_unsafe(sb.extract(&tar, Whiteouts::Overlay), "h");
        let tar = tar_of(|b| {
            raw(b, "s", EntryType::Symlink, "/etc/passwd", b"");
            raw(b, "h2", EntryType::Link, "s", b"");
        });
        sb.extract(&tar, Whiteouts::Overlay).unwrap();
        assert!(sb
            .dest()
            .join("h2")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_symlink());
        sb.assert_outside_untouched(&before);
        assert_eq!(
            fs::metadata("/etc/passwd").map(|m| m.nlink()).ok(),
            passwd_links
        );
        assert_eq!(fs::metadata(&canary).unwrap().nlink(), 1);
    }

    #[test]
    fn hardlinks_inside_work_and_later_entries_replace_earlier_ones() {
        let sb = Sandbox::new();
        let tar = tar_of(|b| {
            file(b, "d/f", b"first");
            raw(b, "d/", EntryType::Directory, "", b"");
            file(b, "d/g", b"second");
            raw(b, "/abs-link", EntryType::Link, "/d/f", b"");
            file(b, "x", b"old");
            raw(b, "x/", EntryType::Directory, "", b"");
            file(b, "x/y", b"y");
        });
        let stats = sb.extract(&tar, Whiteouts::Overlay).unwrap();
        let d = sb.dest();
        // A directory over a directory merges.
        assert_eq!(fs::read(d.join("d/f")).unwrap(), b"first");
        assert_eq!(fs::read(d.join("d/g")).unwrap(), b"second");
        let ino = |p: &str| d.join(p).symlink_metadata().unwrap().ino();
        assert_eq!(ino("abs-link"), ino("d/f"));
        // A directory over a file replaces it.
        assert_eq!(fs::read(d.join("x/y")).unwrap(), b"y");
        assert_eq!((stats.files, stats.bytes), (4, (5 + 6 + 3 + 1) as u64));
    }

    #[test]
    fn overlay_xattrs_inside_a_layer_are_dropped() {
        let sb = Sandbox::new();
        let tar = tar_of(|b| {
            b.append_pax_extensions([
                ("SCHILY.xattr.trusted.overlay.redirect", &b"/elsewhere"[..]),
                ("SCHILY.xattr.user.ok", &b"1"[..]),
            ])
            .unwrap();
            raw(b, "d/", EntryType::Directory, "", b"");
        });
        sb.extract(&tar, Whiteouts::Overlay).unwrap();
        let names = xattr::list(&sb.dest().join("d")).unwrap();
        assert_eq!(names, [b"user.ok".to_vec()]);
    }

    #[test]
    fn apply_mode_deletes_what_whiteouts_hide_from_lower_layers_only() {
        let sb = Sandbox::new();
        let lower = tar_of(|b| {
            file(b, "a", b"a");
            file(b, "keep", b"k");
            file(b, "d/x", b"x");
            file(b, "d/sub/y", b"y");
        });
        sb.extract(&lower, Whiteouts::Apply).unwrap();
        let upper = tar_of(|b| {
            file(b, ".wh.a", b"");
            file(b, ".wh.never-existed", b"");
            file(b, "missing-dir/.wh.x", b"");
            raw(b, "d/", EntryType::Directory, "", b"");
            raw(b, "d/sub/", EntryType::Directory, "", b"");
            file(b, "d/sub/z", b"z");
            // After the layer's own entries: they must survive it.
            file(b, "d/.wh..wh..opq", b"");
            file(b, "new", b"n");
            file(b, ".wh.new", b"");
        });
        let stats = sb.extract(&upper, Whiteouts::Apply).unwrap();
        assert_eq!(stats.whiteouts, 5);
        let mut names: Vec<_> = walkdir::WalkDir::new(sb.dest())
            .min_depth(1)
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(sb.dest())
                    .unwrap()
                    .to_path_buf()
            })
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["d", "d/sub", "d/sub/z", "keep", "new"]
                .map(PathBuf::from)
                .to_vec()
        );
        assert!(!sb.dest().join("missing-dir").exists());
    }

    #[test]
    fn trailing_garbage_is_read_to_the_end() {
        let sb = Sandbox::new();
        let mut tar = tar_of(|b| file(b, "f", b"x"));
        let len = tar.len();
        tar.extend_from_slice(&[0u8; 4096]);
        let mut r = crate::digest::DigestReader::new(&tar[..]);
        sb.extract_reader(&mut r);
        let (_, digest, n) = r.finish();
        assert_eq!(n, len as u64 + 4096);
        assert_eq!(digest, crate::digest::Digest::of_bytes(&tar));
    }

    impl Sandbox {
        fn extract_reader(&self, r: impl Read) {
            extract(r, &self.dest(), &ExtractOptions::default()).unwrap();
        }
    }

    #[test]
    fn bad_whiteout_names_and_unknown_types_are_errors() {
        let sb = Sandbox::new();
        let tar = tar_of(|b| file(b, "d/.wh..", b""));
        assert_unsafe(sb.extract(&tar, Whiteouts::Apply), "d/.wh..");
        let tar = tar_of(|b| raw(b, "weird", EntryType::new(b'Z'), "", b""));
        assert!(matches!(
            sb.extract(&tar, Whiteouts::Overlay),
            Err(LayerError::BadEntry { .. })
        ));
    }
}
