//! A deterministic walk of a directory of a source root: sorted by name,
//! symlinks not followed, `.dockerignore` applied.

use std::fs::Metadata;
use std::path::{Path, PathBuf};

use super::error::ContextError;
use super::select::SourceRoot;

/// One file, directory, symlink or special file below the walked directory.
#[derive(Debug)]
pub struct Entry {
    /// Relative to the walked directory.
    pub rel: PathBuf,
    pub host: PathBuf,
    /// `lstat` of `host`.
    pub meta: Metadata,
}

/// Visits everything below `start` (a real path relative to the root, no
/// symlinks in it), parents before children, siblings in byte order of
/// their names. `start` itself is not visited.
///
/// An excluded directory is skipped whole unless a `!` rule could re-include
/// something in it; then it is walked, and visited (with its own metadata)
/// only just before the first included entry below it, as BuildKit sends
/// such directories.
pub fn walk(
    src: &SourceRoot,
    start: &Path,
    visit: &mut dyn FnMut(&Entry) -> Result<(), ContextError>,
) -> Result<(), ContextError> {
    let mut pending = Vec::new();
    walk_dir(
        src,
        &src.root.join(start),
        start,
        Path::new(""),
        &mut pending,
        visit,
    )
}

struct Pending {
    entry: Entry,
    visited: bool,
}

fn walk_dir(
    src: &SourceRoot,
    host_dir: &Path,
    root_rel: &Path,
    out_rel: &Path,
    pending: &mut Vec<Pending>,
    visit: &mut dyn FnMut(&Entry) -> Result<(), ContextError>,
) -> Result<(), ContextError> {
    let reader = std::fs::read_dir(host_dir).map_err(|e| ContextError::io(host_dir, e))?;
    let mut names = Vec::new();
    for item in reader {
        names.push(item.map_err(|e| ContextError::io(host_dir, e))?.file_name());
    }
    names.sort();
    for name in names {
        let host = host_dir.join(&name);
        let rel_in_root = root_rel.join(&name);
        let meta = std::fs::symlink_metadata(&host).map_err(|e| ContextError::io(&host, e))?;
        let entry = Entry {
            rel: out_rel.join(&name),
            host,
            meta,
        };
        let excluded = src.excluded(&rel_in_root);
        if !excluded {
            for p in pending.iter_mut().filter(|p| !p.visited) {
                visit(&p.entry)?;
                p.visited = true;
            }
            visit(&entry)?;
            if entry.meta.is_dir() {
                walk_dir(src, &entry.host, &rel_in_root, &entry.rel, pending, visit)?;
            }
        } else if entry.meta.is_dir() && src.may_reinclude_under(&rel_in_root) {
            let (host, rel) = (entry.host.clone(), entry.rel.clone());
            pending.push(Pending {
                entry,
                visited: false,
            });
            walk_dir(src, &host, &rel_in_root, &rel, pending, visit)?;
            pending.pop();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::ignore::IgnoreMatcher;

    fn listing(src: &SourceRoot) -> Vec<String> {
        let mut out = vec![".".to_string()];
        walk(src, Path::new(""), &mut |e| {
            out.push(format!("./{}", e.rel.display()));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn busybox_fixture_listing_matches_the_reference() {
        let root = &crate::testing::fixtures_dir().join("busybox-app");
        if !root.exists() {
            eprintln!("fixture missing, skipped");
            return;
        }
        let ignore = crate::context::ignore::load_ignore(root, &root.join("Dockerfile")).unwrap();
        let got = listing(&SourceRoot::context(root, ignore));
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
    }

    #[test]
    fn python_fixture_listing_leaves_out_env_logs_and_dockerfile() {
        let root = &crate::testing::fixtures_dir().join("python-app");
        if !root.exists() {
            eprintln!("fixture missing, skipped");
            return;
        }
        let ignore = crate::context::ignore::load_ignore(root, &root.join("Dockerfile")).unwrap();
        let got = listing(&SourceRoot::context(root, ignore));
        let want = [
            ".",
            "./app.py",
            "./helpers",
            "./helpers/__init__.py",
            "./helpers/greeting.py",
            "./requirements.txt",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn excluded_directory_appears_only_for_reincluded_children() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for f in ["docs/a.md", "docs/README.md", "docs/sub/x", "b/c", "z"] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), f).unwrap();
        }
        let ignore = IgnoreMatcher::parse("docs\nb\n!docs/README.md\n").unwrap();
        let got = listing(&SourceRoot::context(r, ignore));
        assert_eq!(got, [".", "./docs", "./docs/README.md", "./z"]);
    }

    #[test]
    fn symlinks_are_not_followed_and_order_is_bytewise() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d/f"), "").unwrap();
        std::os::unix::fs::symlink("d", r.join("L")).unwrap();
        std::fs::write(r.join("a"), "").unwrap();
        let got = listing(&SourceRoot::filesystem(r));
        assert_eq!(got, [".", "./L", "./a", "./d", "./d/f"]);
    }
}
