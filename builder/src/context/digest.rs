//! The content digest of COPY/ADD sources: the part of a step's cache key
//! that says "the same files would be copied".
//!
//! It covers names, types, permission bits, owners, contents and link
//! targets, and deliberately not timestamps: a checkout or `touch` must not
//! invalidate the cache.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::digest::{Digest, DigestWriter};

use super::error::ContextError;
use super::select::{Selected, SourceRoot};
use super::walk::walk;

/// Bump when the record layout changes, so old cache keys stop matching.
const FORMAT: &[u8] = b"keel-context-digest-v1\0";

/// The digest of exactly what `copy_into` would copy for `selected`.
pub fn digest_selection(src: &SourceRoot, selected: &[Selected]) -> Result<Digest, ContextError> {
    let mut out = DigestWriter::new(io::sink());
    let mut buf = vec![0u8; 1 << 16];
    put(&mut out, FORMAT);
    for sel in selected {
        put_bytes(&mut out, b'S', sel.rel.as_os_str().as_bytes());
        let host = sel.host_path(src);
        // The named source itself is followed, as the copy follows it.
        let meta = std::fs::metadata(&host).map_err(|e| ContextError::io(&host, e))?;
        if meta.is_dir() {
            put(&mut out, b"D");
            walk(src, &sel.resolved, &mut |e| {
                record(&mut out, &mut buf, &e.rel, &e.host, &e.meta)
            })?;
        } else {
            record(&mut out, &mut buf, Path::new(""), &host, &meta)?;
        }
        put(&mut out, b"E");
    }
    Ok(out.finish().1)
}

fn record(
    out: &mut DigestWriter<io::Sink>,
    buf: &mut [u8],
    rel: &Path,
    host: &Path,
    meta: &Metadata,
) -> Result<(), ContextError> {
    put_bytes(out, b'N', rel.as_os_str().as_bytes());
    // st_mode carries both the file type and the permission bits.
    put(out, &meta.mode().to_le_bytes());
    put(out, &meta.uid().to_le_bytes());
    put(out, &meta.gid().to_le_bytes());
    let ft = meta.file_type();
    if ft.is_file() {
        let content = content_digest(host, buf)?;
        put_bytes(out, b'C', content.as_str().as_bytes());
    } else if ft.is_symlink() {
        let target = std::fs::read_link(host).map_err(|e| ContextError::io(host, e))?;
        put_bytes(out, b'L', target.as_os_str().as_bytes());
    } else if !ft.is_dir() {
        put(out, b"R");
        put(out, &meta.rdev().to_le_bytes());
    }
    Ok(())
}

/// Hashing each file on its own keeps the record framing exact even when a
/// file changes size while it is read.
fn content_digest(host: &Path, buf: &mut [u8]) -> Result<Digest, ContextError> {
    let mut file = File::open(host).map_err(|e| ContextError::io(host, e))?;
    let mut w = DigestWriter::new(io::sink());
    loop {
        let n = match file.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ContextError::io(host, e)),
        };
        put(&mut w, &buf[..n]);
    }
    Ok(w.finish().1)
}

/// A length-prefixed field, so no two different records hash alike.
fn put_bytes(out: &mut DigestWriter<io::Sink>, tag: u8, data: &[u8]) {
    put(out, &[tag]);
    put(out, &(data.len() as u64).to_le_bytes());
    put(out, data);
}

fn put(out: &mut DigestWriter<io::Sink>, data: &[u8]) {
    // Writing to a sink cannot fail.
    let _ = out.write_all(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ignore::IgnoreMatcher;
    use crate::context::select::select;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::{Duration, SystemTime};

    fn setup() -> (tempfile::TempDir, SourceRoot) {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/a.sh"), "echo a\n").unwrap();
        std::fs::write(r.join("src/sub/b"), "b").unwrap();
        std::fs::write(r.join("src/x.log"), "log").unwrap();
        symlink("a.sh", r.join("src/link")).unwrap();
        let src = SourceRoot::context(r, IgnoreMatcher::parse("*.log\nsrc/*.log\n").unwrap());
        (dir, src)
    }

    fn dig(src: &SourceRoot, p: &[&str]) -> Digest {
        let pats: Vec<String> = p.iter().map(|s| s.to_string()).collect();
        digest_selection(src, &select(src, &pats).unwrap()).unwrap()
    }

    #[test]
    fn stable_and_blind_to_timestamps() {
        let (d, src) = setup();
        let before = dig(&src, &["src"]);
        assert_eq!(before, dig(&src, &["src"]));
        let f = File::options()
            .write(true)
            .open(d.path().join("src/a.sh"))
            .unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(86400))
            .unwrap();
        assert_eq!(before, dig(&src, &["src"]));
    }

    #[test]
    fn content_mode_owner_name_and_link_changes_show() {
        let (d, src) = setup();
        let r = d.path();
        let base = dig(&src, &["src"]);
        std::fs::write(r.join("src/a.sh"), "echo b\n").unwrap();
        let content = dig(&src, &["src"]);
        assert_ne!(base, content);
        std::fs::set_permissions(r.join("src/a.sh"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        let mode = dig(&src, &["src"]);
        assert_ne!(content, mode);
        std::os::unix::fs::lchown(r.join("src/sub/b"), Some(1234), Some(1234)).unwrap();
        let owner = dig(&src, &["src"]);
        assert_ne!(mode, owner);
        std::fs::rename(r.join("src/sub/b"), r.join("src/sub/c")).unwrap();
        let name = dig(&src, &["src"]);
        assert_ne!(owner, name);
        std::fs::remove_file(r.join("src/link")).unwrap();
        symlink("sub/c", r.join("src/link")).unwrap();
        assert_ne!(name, dig(&src, &["src"]));
    }

    #[test]
    fn ignored_files_do_not_count() {
        let (d, src) = setup();
        let base = dig(&src, &["src"]);
        std::fs::write(d.path().join("src/x.log"), "other log").unwrap();
        std::fs::write(d.path().join("src/y.log"), "new log").unwrap();
        assert_eq!(base, dig(&src, &["src"]));
    }

    #[test]
    fn the_selected_name_counts() {
        let (d, src) = setup();
        std::fs::write(d.path().join("one"), "same").unwrap();
        std::fs::write(d.path().join("two"), "same").unwrap();
        assert_ne!(dig(&src, &["one"]), dig(&src, &["two"]));
        assert_ne!(dig(&src, &["one", "two"]), dig(&src, &["two", "one"]));
    }

    #[test]
    fn eight_thousand_files_hash_quickly() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..8000 {
            let sub = dir.path().join(format!("d{}", i % 80));
            if i < 80 {
                std::fs::create_dir(&sub).unwrap();
            }
            std::fs::write(sub.join(format!("f{i}")), format!("content {i}")).unwrap();
        }
        let src = SourceRoot::context(dir.path(), IgnoreMatcher::empty());
        let start = std::time::Instant::now();
        let d1 = dig(&src, &["."]);
        let took = start.elapsed();
        assert_eq!(d1, dig(&src, &["."]));
        // Generous even for an unoptimised build on a busy machine.
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
}
