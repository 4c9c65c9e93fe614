//! A directory tree as a layer tar: every entry in a fixed order with only the
//! metadata that describes the file (numeric owner, mode, mtime, xattrs), so
//! the same tree always gives the same bytes and so the same diff_id.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{Builder, EntryType, Header};

use super::{
    xattr, LayerError, LayerOptions, OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, OVERLAY_XATTR_PREFIX,
    WHITEOUT_PREFIX,
};

/// Writes the overlay upper dir `upper` as an OCI layer tar: overlay
/// whiteouts (char devices 0/0) become `.wh.<name>` files, opaque directories
/// get a `.wh..wh..opq` entry right after them, `trusted.overlay.*` xattrs
/// are dropped.
///
/// Entries come depth-first, parents before children, each directory's
/// children sorted by the bytes of their on-disk names.
pub fn write_diff(upper: &Path, out: impl Write, opts: &LayerOptions) -> Result<(), LayerError> {
    TreeWriter::new(upper, out, opts, true).write()
}

/// Writes a plain directory (a root filesystem being imported) as a layer
/// tar, in the same order and format as [`write_diff`] but without
/// translating anything into whiteouts.
pub fn write_dir(dir: &Path, out: impl Write, opts: &LayerOptions) -> Result<(), LayerError> {
    TreeWriter::new(dir, out, opts, false).write()
}

/// `SCHILY.xattr.<name>` keys and raw values, in xattr name order.
type PaxRecords = Vec<(String, Vec<u8>)>;

struct TreeWriter<'a, W: Write> {
    root: &'a Path,
    tar: Builder<W>,
    source_date_epoch: Option<i64>,
    overlay: bool,
    /// First archive path seen for each multiply-linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<'a, W: Write> TreeWriter<'a, W> {
    fn new(root: &'a Path, out: W, opts: &LayerOptions, overlay: bool) -> Self {
        TreeWriter {
            root,
            tar: Builder::new(out),
            source_date_epoch: opts.source_date_epoch,
            overlay,
            links: HashMap::new(),
        }
    }

    fn write(mut self) -> Result<(), LayerError> {
        let meta = fs::symlink_metadata(self.root).map_err(|source| LayerError::Io {
            op: "reading layer directory",
            path: self.root.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(LayerError::Io {
                op: "reading layer directory",
                path: self.root.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
            });
        }
        self.write_children(self.root.to_path_buf(), Vec::new())?;
        let mut out = self
            .tar
            .into_inner()
            .map_err(|source| LayerError::TarWrite {
                entry: "(end of archive)".into(),
                source,
            })?;
        out.flush().map_err(|source| LayerError::TarWrite {
            entry: "(end of archive)".into(),
            source,
        })
    }

    /// `prefix` is the archive path of `dir` with its trailing `/` (empty for the root).
    fn write_children(&mut self, dir: PathBuf, prefix: Vec<u8>) -> Result<(), LayerError> {
        let read_err = |source| LayerError::Io {
            op: "listing directory",
            path: dir.clone(),
            source,
        };
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(read_err)? {
            names.push(entry.map_err(read_err)?.file_name());
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));

        for name in names {
            let path = dir.join(&name);
            let mut rel = prefix.clone();
            rel.extend_from_slice(name.as_bytes());
            let meta = fs::symlink_metadata(&path).map_err(|source| LayerError::Io {
                op: "reading metadata of",
                path: path.clone(),
                source,
            })?;
            let ft = meta.file_type();

            if ft.is_dir() {
                let mut dir_rel = rel;
                dir_rel.push(b'/');
                let (pax, opaque) = self.xattrs(&path)?;
                let mut h = self.header(&meta, EntryType::Directory);
                self.append(&mut h, &dir_rel, &pax, io::empty())?;
                if opaque {
                    let mut marker = dir_rel.clone();
                    marker.extend_from_slice(OPAQUE_MARKER.as_bytes());
                    self.append_whiteout(&marker, &meta)?;
                }
                self.write_children(path, dir_rel)?;
                continue;
            }

            // Checked before hardlinks: overlayfs shares one inode among its whiteouts.
            if self.overlay && ft.is_char_device() && meta.rdev() == 0 {
                let mut wh = prefix.clone();
                wh.extend_from_slice(WHITEOUT_PREFIX.as_bytes());
                wh.extend_from_slice(name.as_bytes());
                self.append_whiteout(&wh, &meta)?;
                continue;
            }

            if ft.is_socket() {
                tracing::debug!(path = %path.display(), "skipping socket: sockets cannot be archived");
                continue;
            }

            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    let mut h = self.header(&meta, EntryType::Link);
                    self.append_link(&mut h, &rel, &first)?;
                    continue;
                }
                self.links.insert(key, rel.clone());
            }

            let (pax, _) = self.xattrs(&path)?;
            if ft.is_file() {
                let mut h = self.header(&meta, EntryType::Regular);
                h.set_size(meta.len());
                let file = File::open(&path).map_err(|source| LayerError::Io {
                    op: "opening",
                    path: path.clone(),
                    source,
                })?;
                let data = ExactReader {
                    inner: file,
                    remaining: meta.len(),
                };
                self.append(&mut h, &rel, &pax, data)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&path).map_err(|source| LayerError::Io {
                    op: "reading symlink",
                    path: path.clone(),
                    source,
                })?;
                let mut h = self.header(&meta, EntryType::Symlink);
                self.append_pax(&rel, &pax)?;
                self.append_link(&mut h, &rel, target.as_os_str().as_bytes())?;
            } else if ft.is_char_device() || ft.is_block_device() {
                let kind = if ft.is_char_device() {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                let mut h = self.header(&meta, kind);
                let rdev = meta.rdev();
                let entry = String::from_utf8_lossy(&rel).into_owned();
                let dev_err = |source| LayerError::TarWrite {
                    entry: entry.clone(),
                    source,
                };
                h.set_device_major(libc::major(rdev)).map_err(dev_err)?;
                h.set_device_minor(libc::minor(rdev)).map_err(dev_err)?;
                self.append(&mut h, &rel, &pax, io::empty())?;
            } else if ft.is_fifo() {
                let mut h = self.header(&meta, EntryType::Fifo);
                self.append(&mut h, &rel, &pax, io::empty())?;
            }
        }
        Ok(())
    }

    /// A header with only what describes the file: no names, atime or ctime.
    fn header(&self, meta: &Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid().into());
        h.set_gid(meta.gid().into());
        h.set_mtime(self.clamp(meta.mtime()));
        h.set_size(0);
        h
    }

    fn clamp(&self, mtime: i64) -> u64 {
        let t = match self.source_date_epoch {
            Some(limit) => mtime.min(limit),
            None => mtime,
        };
        t.max(0) as u64
    }

    /// The PAX xattr records to store for `path`, and whether overlayfs marks it opaque.
    fn xattrs(&self, path: &Path) -> Result<(PaxRecords, bool), LayerError> {
        let read_err = |name: &[u8], source| LayerError::XattrRead {
            path: path.to_path_buf(),
            name: String::from_utf8_lossy(name).into_owned(),
            source,
        };
        let mut records = Vec::new();
        let mut opaque = false;
        for name in xattr::list(path).map_err(|e| read_err(b"(list)", e))? {
            if name.starts_with(OVERLAY_XATTR_PREFIX) {
                if self.overlay {
                    let suffix = &name[OVERLAY_XATTR_PREFIX.len()..];
                    // A redirected dir or a metacopy file has its data in a
                    // lower layer: archiving the upper copy would lose it.
                    if suffix == b"redirect" || suffix == b"metacopy" {
                        return Err(LayerError::PartialOverlayEntry {
                            path: path.to_path_buf(),
                            xattr: String::from_utf8_lossy(&name).into_owned(),
                        });
                    }
                    if name == OVERLAY_OPAQUE_XATTR.as_bytes() {
                        let v = xattr::get(path, &name).map_err(|e| read_err(&name, e))?;
                        opaque = v.as_deref() == Some(b"y");
                    }
                }
                continue;
            }
            let Some(value) = xattr::get(path, &name).map_err(|e| read_err(&name, e))? else {
                continue; // removed since it was listed
            };
            let key = String::from_utf8(name).map_err(|e| LayerError::XattrRead {
                path: path.to_path_buf(),
                name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
                source: io::Error::new(io::ErrorKind::InvalidData, "name is not UTF-8"),
            })?;
            records.push((format!("SCHILY.xattr.{key}"), value));
        }
        Ok((records, opaque))
    }

    fn append_whiteout(&mut self, rel: &[u8], like: &Metadata) -> Result<(), LayerError> {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.clamp(like.mtime()));
        h.set_size(0);
        self.append(&mut h, rel, &Vec::new(), io::empty())
    }

    fn append_pax(&mut self, rel: &[u8], pax: &PaxRecords) -> Result<(), LayerError> {
        if pax.is_empty() {
            return Ok(());
        }
        self.tar
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|source| LayerError::TarWrite {
                entry: String::from_utf8_lossy(rel).into_owned(),
                source,
            })
    }

    fn append(
        &mut self,
        h: &mut Header,
        rel: &[u8],
        pax: &PaxRecords,
        data: impl Read,
    ) -> Result<(), LayerError> {
        self.append_pax(rel, pax)?;
        self.tar
            .append_data(h, Path::new(OsStr::from_bytes(rel)), data)
            .map_err(|source| LayerError::TarWrite {
                entry: String::from_utf8_lossy(rel).into_owned(),
                source,
            })
    }

    fn append_link(&mut self, h: &mut Header, rel: &[u8], target: &[u8]) -> Result<(), LayerError> {
        self.tar
            .append_link(
                h,
                Path::new(OsStr::from_bytes(rel)),
                Path::new(OsStr::from_bytes(target)),
            )
            .map_err(|source| LayerError::TarWrite {
                entry: String::from_utf8_lossy(rel).into_owned(),
                source,
            })
    }
}

/// Yields exactly the size recorded in the header: a file that shrank while
/// being archived must fail the layer rather than shift every later entry.
struct ExactReader {
    inner: File,
    remaining: u64,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}
