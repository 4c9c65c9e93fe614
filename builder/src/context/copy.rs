//! COPY and ADD: putting selected sources into a container root with
//! Docker's rules for what the destination means.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::error::ContextError;
use super::extract::{archive_format, extract};
use super::glob::clean;
use super::securejoin::secure_join;
use super::select::{Selected, SourceKind, SourceRoot};
use super::walk::walk;
use super::write::{Attrs, Owner, Writer};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// `--chown=uid:gid`, already resolved to numbers; else everything
    /// copied belongs to 0:0.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`: the permission bits of every copied file and directory.
    pub chmod: Option<u32>,
    /// ADD: local tar archives (plain or gzip) are unpacked into `dest`.
    pub extract_archives: bool,
}

/// Copies `selected` (from `select` on `src`) to the container path `dest`
/// inside `dest_root` (the parent image's merged root).
///
/// `dest` is a directory when it ends in `/`, when there are several
/// sources, for a directory source (whose contents, not itself, are copied)
/// and for an archive ADD unpacks; a single file goes into `dest` when that
/// is an existing directory, else it is written under that name.
pub fn copy_into(
    src: &SourceRoot,
    selected: &[Selected],
    dest_root: &Path,
    dest: &str,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    if !dest.starts_with('/') {
        return Err(ContextError::DestNotAbsolute {
            dest: dest.to_string(),
        });
    }
    let dest_path = PathBuf::from(clean(dest));
    let dest_is_dir = dest.ends_with('/') || dest.ends_with("/.") || selected.len() > 1;
    let owner: Owner = opts.chown.unwrap_or((0, 0));
    let mut w = Writer::new(dest_root, owner);
    for sel in selected {
        let host = sel.host_path(src);
        // The named source is followed (select resolved it); what is below
        // a directory source is copied as it is.
        let meta = std::fs::metadata(&host).map_err(|e| ContextError::io(&host, e))?;
        tracing::debug!(source = %sel.rel.display(), dest, "copying");
        if sel.kind == SourceKind::Dir {
            let dir = w.ensure_dir(&dest_path, dest)?;
            copy_tree(src, sel, &mut w, &dest_path, dir, opts)?;
            continue;
        }
        if opts.extract_archives && sel.kind == SourceKind::File {
            if let Some(format) = archive_format(&host)? {
                let dir = w.ensure_dir(&dest_path, dest)?;
                extract(&host, format, &mut w, &dest_path, &dir, opts)?;
                continue;
            }
        }
        let name = sel.rel.file_name().unwrap_or_default();
        let target = if dest_is_dir {
            w.ensure_dir(&dest_path, dest)?.join(name)
        } else {
            let resolved = secure_join(dest_root, &dest_path)?;
            if resolved.is_dir() {
                resolved.join(name)
            } else {
                let rel = resolved.strip_prefix(dest_root).unwrap_or(&resolved);
                let parent = Path::new("/").join(rel.parent().unwrap_or(Path::new("")));
                let dir = w.ensure_dir(&parent, dest)?;
                dir.join(resolved.file_name().unwrap_or(name))
            }
        };
        copy_entry(&mut w, &host, &meta, &target, opts)?;
    }
    w.finish()
}

fn copy_tree(
    src: &SourceRoot,
    sel: &Selected,
    w: &mut Writer,
    dest_path: &Path,
    dest_dir: PathBuf,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    // Host directory of each copied directory, so entries need no lookup.
    let mut dirs: HashMap<PathBuf, PathBuf> = HashMap::new();
    dirs.insert(PathBuf::new(), dest_dir);
    walk(src, &sel.resolved, &mut |e| {
        let parent_rel = e.rel.parent().unwrap_or(Path::new(""));
        let parent = match dirs.get(parent_rel) {
            Some(p) => p.clone(),
            None => secure_join(w.root, dest_path.join(parent_rel))?,
        };
        let name = e.rel.file_name().unwrap_or_default();
        let mut target = parent.join(name);
        if e.meta.is_dir() {
            // An existing link to a directory (say /lib -> usr/lib) is
            // merged into, not replaced.
            let followed = secure_join(w.root, dest_path.join(&e.rel))?;
            if followed.is_dir() {
                target = followed;
            }
            dirs.insert(e.rel.clone(), target.clone());
        }
        copy_entry(w, &e.host, &e.meta, &target, opts)
    })
}

fn copy_entry(
    w: &mut Writer,
    host: &Path,
    meta: &Metadata,
    target: &Path,
    opts: &CopyOptions,
) -> Result<(), ContextError> {
    let ft = meta.file_type();
    let attrs = Attrs {
        owner: opts.chown.unwrap_or((0, 0)),
        mode: opts.chmod.unwrap_or(meta.mode() & 0o7777),
        mtime: meta.modified().map_err(|e| ContextError::io(host, e))?,
    };
    if ft.is_dir() {
        w.dir(target, &attrs)
    } else if ft.is_file() {
        let mut f = File::open(host).map_err(|e| ContextError::io(host, e))?;
        w.file(target, &mut f, &attrs)
    } else if ft.is_symlink() {
        let link = std::fs::read_link(host).map_err(|e| ContextError::io(host, e))?;
        w.symlink(target, &link, &attrs)
    } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
        let kind = meta.mode() & libc::S_IFMT;
        w.node(target, kind, meta.rdev(), &attrs)
    } else {
        tracing::warn!(path = %host.display(), "not copying a socket");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ignore::IgnoreMatcher;
    use crate::context::select::select;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::{Duration, UNIX_EPOCH};

    struct Fx {
        _ctx: tempfile::TempDir,
        _dst: tempfile::TempDir,
        src: SourceRoot,
        dest: PathBuf,
    }

    const OLD: u64 = 1_000_000_000;

    fn fx(ignore: &str) -> Fx {
        let ctx = tempfile::tempdir().unwrap();
        let r = ctx.path();
        std::fs::create_dir_all(r.join("src/sub")).unwrap();
        std::fs::write(r.join("src/app.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(r.join("src/app.sh"), std::fs::Permissions::from_mode(0o751))
            .unwrap();
        std::fs::write(r.join("src/sub/data"), "data").unwrap();
        std::fs::write(r.join("src/skip.bak"), "bak").unwrap();
        symlink("app.sh", r.join("src/run")).unwrap();
        std::fs::write(r.join("one.txt"), "one").unwrap();
        std::fs::write(r.join("two.txt"), "two").unwrap();
        let old = UNIX_EPOCH + Duration::from_secs(OLD);
        File::options()
            .write(true)
            .open(r.join("one.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        std::os::unix::fs::chown(r.join("one.txt"), Some(4321), Some(4321)).unwrap();
        let dst = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dst.path().join("usr/lib")).unwrap();
        std::fs::create_dir_all(dst.path().join("existing")).unwrap();
        symlink("usr/lib", dst.path().join("lib")).unwrap();
        let src = SourceRoot::context(r, IgnoreMatcher::parse(ignore).unwrap());
        let dest = dst.path().to_path_buf();
        Fx {
            _ctx: ctx,
            _dst: dst,
            src,
            dest,
        }
    }

    fn cp(f: &Fx, pats: &[&str], dest: &str, opts: CopyOptions) -> Result<(), ContextError> {
        let pats: Vec<String> = pats.iter().map(|s| s.to_string()).collect();
        let sel = select(&f.src, &pats)?;
        copy_into(&f.src, &sel, &f.dest, dest, &opts)
    }

    fn meta(f: &Fx, p: &str) -> Metadata {
        std::fs::symlink_metadata(f.dest.join(p)).unwrap()
    }

    #[test]
    fn file_to_new_name_keeps_mode_and_mtime_and_resets_owner() {
        let f = fx("");
        cp(&f, &["one.txt"], "/opt/renamed", CopyOptions::default()).unwrap();
        let m = meta(&f, "opt/renamed");
        assert!(m.is_file());
        assert_eq!(std::fs::read(f.dest.join("opt/renamed")).unwrap(), b"one");
        assert_eq!((m.uid(), m.gid()), (0, 0));
        assert_eq!(m.mtime() as u64, OLD);
        let parent = meta(&f, "opt");
        assert_eq!(parent.mode() & 0o7777, 0o755);
    }

    #[test]
    fn file_into_existing_or_slash_directory() {
        let f = fx("");
        cp(&f, &["one.txt"], "/existing", CopyOptions::default()).unwrap();
        assert!(meta(&f, "existing/one.txt").is_file());
        cp(&f, &["two.txt"], "/new/dir/", CopyOptions::default()).unwrap();
        assert!(meta(&f, "new/dir/two.txt").is_file());
    }

    #[test]
    fn several_sources_make_a_directory() {
        let f = fx("");
        cp(&f, &["*.txt"], "/multi", CopyOptions::default()).unwrap();
        assert!(meta(&f, "multi").is_dir());
        assert!(meta(&f, "multi/one.txt").is_file());
        assert!(meta(&f, "multi/two.txt").is_file());
    }

    #[test]
    fn directory_contents_are_copied_with_ignore_rules() {
        let f = fx("**/*.bak\n");
        cp(&f, &["src"], "/app", CopyOptions::default()).unwrap();
        assert!(meta(&f, "app/app.sh").is_file());
        assert_eq!(meta(&f, "app/app.sh").mode() & 0o7777, 0o751);
        assert!(meta(&f, "app/sub/data").is_file());
        assert!(!f.dest.join("app/src").exists());
        assert!(!f.dest.join("app/skip.bak").exists());
        let link = meta(&f, "app/run");
        assert!(link.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(f.dest.join("app/run")).unwrap(),
            Path::new("app.sh")
        );
        assert_eq!(
            meta(&f, "app/sub").mtime(),
            std::fs::metadata(f.src.root.join("src/sub"))
                .unwrap()
                .mtime()
        );
    }

    #[test]
    fn chown_and_chmod_apply_to_copies_and_created_dirs() {
        let f = fx("");
        let opts = CopyOptions {
            chown: Some((1000, 1001)),
            chmod: Some(0o640),
            extract_archives: false,
        };
        cp(&f, &["src"], "/home/app/", opts).unwrap();
        for p in ["home", "home/app"] {
            let m = meta(&f, p);
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777),
                (1000, 1001, 0o755),
                "{p}"
            );
        }
        for p in ["home/app/app.sh", "home/app/sub", "home/app/sub/data"] {
            let m = meta(&f, p);
            assert_eq!(
                (m.uid(), m.gid(), m.mode() & 0o7777),
                (1000, 1001, 0o640),
                "{p}"
            );
        }
        let m = meta(&f, "home/app/run");
        assert_eq!((m.uid(), m.gid()), (1000, 1001));
    }

    #[test]
    fn destination_symlinks_resolve_inside_the_root() {
        let f = fx("");
        cp(&f, &["one.txt"], "/lib/", CopyOptions::default()).unwrap();
        assert!(meta(&f, "usr/lib/one.txt").is_file());
        assert!(meta(&f, "lib").file_type().is_symlink());
        symlink("/../../../escape", f.dest.join("out")).unwrap();
        cp(&f, &["two.txt"], "/out/", CopyOptions::default()).unwrap();
        assert!(meta(&f, "escape/two.txt").is_file());
    }

    #[test]
    fn bad_destinations_are_errors() {
        let f = fx("");
        assert!(matches!(
            cp(&f, &["one.txt"], "relative/", CopyOptions::default()),
            Err(ContextError::DestNotAbsolute { .. })
        ));
        cp(&f, &["one.txt"], "/afile", CopyOptions::default()).unwrap();
        assert!(matches!(
            cp(&f, &["two.txt"], "/afile/", CopyOptions::default()),
            Err(ContextError::DestNotDirectory { .. })
        ));
    }

    #[test]
    fn busybox_fixture_copy_of_the_context_matches_the_reference() {
        let root = &crate::testing::fixtures_dir().join("busybox-app");
        if !root.exists() {
            eprintln!("fixture missing, skipped");
            return;
        }
        let ignore = crate::context::load_ignore(root, &root.join("Dockerfile")).unwrap();
        let src = SourceRoot::context(root, ignore);
        let dst = tempfile::tempdir().unwrap();
        let sel = select(&src, &[".".to_string()]).unwrap();
        copy_into(&src, &sel, dst.path(), "/ctx/", &CopyOptions::default()).unwrap();
        let mut got = Vec::new();
        for e in walkdir::WalkDir::new(dst.path().join("ctx")).sort_by_file_name() {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(dst.path().join("ctx")).unwrap();
            got.push(
                format!("./{}", rel.display())
                    .trim_end_matches('/')
                    .to_string(),
            );
        }
        got[0] = ".".to_string();
        let want = [
            ".",
            "./config",
            "./config/app.conf",
            "./keep.log",
            "./src",
            "./src/app.sh",
            "./src/build.sh",
            "./src/entrypoint.sh",
            "./static",
            "./static/index.html",
            "./static/style.css",
        ];
        assert_eq!(got, want);
        // Read-only fixture files stay read-only, but are now root's.
        let m = std::fs::metadata(dst.path().join("ctx/src/app.sh")).unwrap();
        assert_eq!((m.mode() & 0o7777, m.uid()), (0o444, 0));
    }

    #[test]
    fn copy_from_a_root_filesystem_follows_the_named_link() {
        let f = fx("");
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(other.path().join("usr/bin")).unwrap();
        std::fs::write(other.path().join("usr/bin/tool-1.2"), "bin").unwrap();
        symlink("/usr/bin/tool-1.2", other.path().join("usr/bin/tool")).unwrap();
        let fs = SourceRoot::filesystem(other.path());
        let sel = select(&fs, &["/usr/bin/tool".to_string()]).unwrap();
        copy_into(&fs, &sel, &f.dest, "/bin/", &CopyOptions::default()).unwrap();
        let m = meta(&f, "bin/tool");
        assert!(m.is_file());
        assert_eq!(std::fs::read(f.dest.join("bin/tool")).unwrap(), b"bin");
    }
}
