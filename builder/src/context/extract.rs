//! ADD's archive unpacking: a local tar (plain or gzip) goes into the
//! destination directory, and nothing in it may land outside that directory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use flate2::read::GzDecoder;

use super::copy::CopyOptions;
use super::error::ContextError;
use super::securejoin::{is_missing, secure_join};
use super::write::{Attrs, Writer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArchiveFormat {
    Tar,
    TarGz,
}

const BLOCK: usize = 512;

/// Whether `path` is an archive ADD unpacks, decided by content as Docker
/// does: a file that merely looks compressed but holds no tar is copied.
/// Compressions without a decoder here are refused rather than copied, so
/// the result never silently differs from Docker's.
pub(crate) fn archive_format(path: &Path) -> Result<Option<ArchiveFormat>, ContextError> {
    let mut head = Vec::with_capacity(BLOCK);
    let f = File::open(path).map_err(|e| ContextError::io(path, e))?;
    f.take(BLOCK as u64)
        .read_to_end(&mut head)
        .map_err(|e| ContextError::io(path, e))?;
    let unsupported = |format| ContextError::UnsupportedCompression {
        archive: path.to_path_buf(),
        format,
    };
    if head.starts_with(b"BZh") {
        return Err(unsupported("bzip2"));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(unsupported("xz"));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(unsupported("zstd"));
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let f = File::open(path).map_err(|e| ContextError::io(path, e))?;
        let mut block = Vec::with_capacity(BLOCK);
        // A corrupt gzip stream is not an archive to unpack: copy it as is.
        let ok = GzDecoder::new(f)
            .take(BLOCK as u64)
            .read_to_end(&mut block)
            .is_ok();
        return Ok((ok && is_tar_header(&block)).then_some(ArchiveFormat::TarGz));
    }
    Ok(is_tar_header(&head).then_some(ArchiveFormat::Tar))
}

/// A first header block with a valid checksum (old v7 tars have no magic).
fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < BLOCK || block[0] == 0 {
        return false;
    }
    let field = &block[148..156];
    let text: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let Ok(stored) = u32::from_str_radix(text.trim_start(), 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                b' ' as u32
            } else {
                *b as u32
            }
        })
        .sum();
    sum == stored
}

/// Unpacks `archive` into the container directory `dest` (host `dest_host`,
/// existing). Entries keep their archive owner and mode unless `--chown` /
/// `--chmod` say otherwise.
pub(crate) fn extract(
    archive: &Path,
    format: ArchiveFormat,
    w: &mut Writer,
    dest: &Path,
    dest_host: &Path,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let f = File::open(archive).map_err(|e| ContextError::io(archive, e))?;
    let reader: Box<dyn Read> = match format {
        ArchiveFormat::Tar => Box::new(BufReader::new(f)),
        ArchiveFormat::TarGz => Box::new(GzDecoder::new(BufReader::new(f))),
    };
    let mut tar = tar::Archive::new(reader);
    let broken = |e: io::Error| ContextError::Archive {
        archive: archive.to_path_buf(),
        source: e,
    };
    let entries = tar.entries().map_err(broken)?;
    for entry in entries {
        let mut entry = entry.map_err(broken)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: &str| ContextError::UnsafeArchiveEntry {
            archive: archive.to_path_buf(),
            entry: raw.clone(),
            reason: reason.to_string(),
        };
        let rel = member_path(&entry.path_bytes()).map_err(&refuse)?;
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            // The archive's `./` itself: dest already exists.
            continue;
        };
        let header = entry.header();
        let kind = header.entry_type();
        let attrs = Attrs {
            owner: match opts.chown {
                Some(ids) => ids,
                None => (
                    header.uid().map_err(broken)? as u32,
                    header.gid().map_err(broken)? as u32,
                ),
            },
            mode: opts
                .chmod
                .unwrap_or(header.mode().map_err(broken)? & 0o7777),
            mtime: UNIX_EPOCH + Duration::from_secs(header.mtime().map_err(broken)?),
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent_container = dest.join(parent_rel);
        // Check before creating anything: a directory link already in the
        // tree (or made by an earlier entry) could point elsewhere.
        if !secure_join(w.root, &parent_container)?.starts_with(dest_host) {
            return Err(refuse("its directory resolves outside the destination"));
        }
        let parent = w.ensure_dir(&parent_container, &dest.to_string_lossy())?;
        let target = parent.join(&name);
        match kind {
            tar::EntryType::Directory => {
                let followed = secure_join(w.root, dest.join(&rel))?;
                let at = if followed.is_dir() && followed.starts_with(dest_host) {
                    followed
                } else {
                    target
                };
                w.dir(&at, &attrs)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                w.file(&target, &mut entry, &attrs)?;
            }
            tar::EntryType::Symlink => {
                let link = link_name(&entry).map_err(&refuse)?;
                if !symlink_stays_in(dest, parent_rel, &link) {
                    return Err(refuse(&format!(
                        "symbolic link to {} leaves the destination",
                        link.display()
                    )));
                }
                w.symlink(&target, &link, &attrs)?;
            }
            tar::EntryType::Link => {
                let link = link_name(&entry).map_err(&refuse)?;
                let link_rel = member_path(link.as_os_str().as_bytes()).map_err(&refuse)?;
                // The member itself, not what it may link to.
                let (Some(link_parent), Some(link_file)) =
                    (link_rel.parent(), link_rel.file_name())
                else {
                    return Err(refuse("hard link without a target name"));
                };
                let existing = secure_join(w.root, dest.join(link_parent))?.join(link_file);
                if !existing.starts_with(dest_host) {
                    return Err(refuse("hard link target resolves outside the destination"));
                }
                match std::fs::symlink_metadata(&existing) {
                    Ok(m) if !m.is_dir() => w.hardlink(&target, &existing)?,
                    Ok(_) => return Err(refuse("hard link to a directory")),
                    Err(e) if is_missing(&e) => {
                        return Err(refuse("hard link to a member not extracted before it"))
                    }
                    Err(e) => return Err(ContextError::io(existing, e)),
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let node = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().map_err(broken)?.unwrap_or(0);
                let minor = header.device_minor().map_err(broken)?.unwrap_or(0);
                w.node(&target, node, libc::makedev(major, minor), &attrs)?;
            }
            other => {
                tracing::warn!(archive = %archive.display(), entry = %raw, kind = ?other, "skipping archive entry of unsupported type");
            }
        }
    }
    Ok(())
}

/// A member name as a relative path with only normal components.
fn member_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    let path = Path::new(std::ffi::OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute name"),
            Component::ParentDir => return Err("name contains \"..\""),
        }
    }
    Ok(out)
}

fn link_name<R: Read>(entry: &tar::Entry<R>) -> Result<PathBuf, &'static str> {
    match entry.link_name_bytes() {
        Some(b) if !b.is_empty() => Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&b))),
        _ => Err("link without a target"),
    }
}

/// Whether a link at `dest/parent/…` with `target` points into `dest`,
/// read lexically as the container would (absolute from the root).
fn symlink_stays_in(dest: &Path, parent: &Path, target: &Path) -> bool {
    let dest_parts: Vec<_> = normal_parts(dest);
    let mut parts = if target.is_absolute() {
        Vec::new()
    } else {
        let mut p = dest_parts.clone();
        p.extend(normal_parts(parent));
        p
    };
    for c in target.components() {
        match c {
            Component::Normal(n) => parts.push(n.to_os_string()),
            Component::ParentDir => {
                // Climbing out of dest, even if later coming back in, is
                // what Docker calls a breakout.
                if parts.len() <= dest_parts.len() && !target.is_absolute() {
                    return false;
                }
                parts.pop();
            }
            _ => {}
        }
    }
    parts.starts_with(&dest_parts)
}

fn normal_parts(p: &Path) -> Vec<std::ffi::OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::copy::copy_into;
    use crate::context::ignore::IgnoreMatcher;
    use crate::context::select::{select, SourceRoot};
    use std::os::unix::fs::MetadataExt;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_uid(7);
        h.set_gid(8);
        h.set_mtime(1_500_000_000);
        h
    }

    /// A tar built entry by entry with raw names, so hostile names survive
    /// (the tar crate's own helpers refuse to write them).
    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, data) in entries {
            let body = if *kind == tar::EntryType::Regular {
                data.as_bytes()
            } else {
                b""
            };
            let mut h = header(*kind, body.len() as u64);
            {
                let gnu = h.as_gnu_mut().unwrap();
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                    gnu.linkname[..data.len()].copy_from_slice(data.as_bytes());
                }
            }
            if *kind == tar::EntryType::Directory {
                h.set_mode(0o750);
            }
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(body);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    }

    struct Fx {
        ctx: tempfile::TempDir,
        dst: tempfile::TempDir,
    }

    fn fx() -> Fx {
        Fx {
            ctx: tempfile::tempdir().unwrap(),
            dst: tempfile::tempdir().unwrap(),
        }
    }

    fn add(f: &Fx, name: &str, bytes: &[u8], dest: &str) -> Result<(), ContextError> {
        std::fs::write(f.ctx.path().join(name), bytes).unwrap();
        let src = SourceRoot::context(f.ctx.path(), IgnoreMatcher::empty());
        let sel = select(&src, &[name.to_string()])?;
        let opts = CopyOptions {
            extract_archives: true,
            ..CopyOptions::default()
        };
        copy_into(&src, &sel, f.dst.path(), dest, &opts)
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as L};

    #[test]
    fn plain_and_gzip_tars_are_unpacked_with_their_attributes() {
        let t = tar_of(&[
            ("./", D, ""),
            ("dir/", D, ""),
            ("dir/a.txt", F, "hello"),
            ("dir/link", L, "a.txt"),
            ("dir/hard", H, "dir/a.txt"),
            ("top", F, "t"),
        ]);
        for (name, bytes) in [("x.tar", t.clone()), ("x.tgz", gz(&t))] {
            let f = fx();
            add(&f, name, &bytes, "/opt/x").unwrap();
            let d = f.dst.path();
            assert_eq!(std::fs::read(d.join("opt/x/dir/a.txt")).unwrap(), b"hello");
            assert_eq!(std::fs::read(d.join("opt/x/dir/hard")).unwrap(), b"hello");
            assert_eq!(
                std::fs::read_link(d.join("opt/x/dir/link")).unwrap(),
                Path::new("a.txt")
            );
            let m = std::fs::metadata(d.join("opt/x/dir/a.txt")).unwrap();
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
                (7, 8, 0o644, 1_500_000_000)
            );
            let m = std::fs::metadata(d.join("opt/x/dir")).unwrap();
            assert_eq!((m.mode() & 0o7777, m.mtime()), (0o750, 1_500_000_000));
            assert!(!d.join("opt/x/x.tar").exists());
        }
    }

    #[test]
    fn non_archives_are_copied_as_files() {
        let f = fx();
        add(&f, "notes.gz", &gz(b"just text, not a tar"), "/d/").unwrap();
        assert!(f.dst.path().join("d/notes.gz").is_file());
        add(&f, "plain", b"hello", "/d/").unwrap();
        assert!(f.dst.path().join("d/plain").is_file());
    }

    #[test]
    fn unsupported_compressions_are_refused_by_name() {
        let f = fx();
        let e = add(
            &f,
            "x.tar.xz",
            &[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2],
            "/d/",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("xz compression is not supported"),
            "{e}"
        );
        let e = add(&f, "x.tar.bz2", b"BZh91AY&SY", "/d/").unwrap_err();
        assert!(e.to_string().contains("bzip2"), "{e}");
    }

    #[test]
    fn hostile_entries_are_refused_and_nothing_escapes() {
        let hostile: Vec<Vec<(&str, tar::EntryType, &str)>> = vec![
            vec![("../evil", F, "x")],
            vec![("a/../../evil", F, "x")],
            vec![("/abs", F, "x")],
            vec![("up", L, "../../etc")],
            vec![("abs", L, "/etc")],
            vec![("h", H, "../../etc/passwd")],
            vec![("h", H, "/etc/passwd")],
        ];
        for entries in hostile {
            let f = fx();
            let e = add(&f, "h.tar", &tar_of(&entries), "/dest").unwrap_err();
            assert!(
                matches!(e, ContextError::UnsafeArchiveEntry { .. }),
                "{entries:?}: {e}"
            );
            assert!(!f.dst.path().join("evil").exists());
            assert!(!f.dst.path().join("abs").exists());
        }
    }

    #[test]
    fn links_already_in_the_tree_cannot_redirect_writes() {
        let f = fx();
        std::fs::create_dir_all(f.dst.path().join("dest")).unwrap();
        std::fs::create_dir_all(f.dst.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", f.dst.path().join("dest/cfg")).unwrap();
        let e = add(&f, "h.tar", &tar_of(&[("cfg/passwd", F, "pwned")]), "/dest").unwrap_err();
        assert!(matches!(e, ContextError::UnsafeArchiveEntry { .. }), "{e}");
        assert!(!f.dst.path().join("etc/passwd").exists());
    }

    #[test]
    fn absolute_links_inside_dest_and_rootfs_tarballs_are_fine() {
        let f = fx();
        let t = tar_of(&[
            ("usr/bin/", D, ""),
            ("usr/bin/busybox", F, "bb"),
            ("bin", L, "/usr/bin"),
        ]);
        add(&f, "rootfs.tar", &t, "/").unwrap();
        assert_eq!(
            std::fs::read_link(f.dst.path().join("bin")).unwrap(),
            Path::new("/usr/bin")
        );
    }

    #[test]
    fn lexical_link_check() {
        let d = Path::new("/dest");
        assert!(symlink_stays_in(d, Path::new("a"), Path::new("../b")));
        assert!(!symlink_stays_in(d, Path::new("a"), Path::new("../../b")));
        assert!(symlink_stays_in(d, Path::new(""), Path::new("/dest/x")));
        assert!(!symlink_stays_in(d, Path::new(""), Path::new("/destx")));
        assert!(symlink_stays_in(
            Path::new("/"),
            Path::new(""),
            Path::new("/etc")
        ));
    }
}
