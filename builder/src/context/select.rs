//! COPY/ADD sources: which files of a source root the patterns name.

use std::path::{Path, PathBuf};

use super::error::ContextError;
use super::glob::{clean, is_literal, Glob, Syntax};
use super::ignore::IgnoreMatcher;
use super::securejoin::{resolve, Escapes, ResolveError};
use super::walk::walk;

/// Where COPY/ADD read from: the build context (with its ignore rules,
/// possibly none) or, for `COPY --from`, a stage's or image's root
/// filesystem (`ignore: None`). `ignore.is_some()` is what marks the context.
#[derive(Clone, Debug)]
pub struct SourceRoot {
    pub root: PathBuf,
    pub ignore: Option<IgnoreMatcher>,
}

impl SourceRoot {
    pub fn context(root: impl Into<PathBuf>, ignore: IgnoreMatcher) -> SourceRoot {
        SourceRoot {
            root: root.into(),
            ignore: Some(ignore),
        }
    }

    pub fn filesystem(root: impl Into<PathBuf>) -> SourceRoot {
        SourceRoot {
            root: root.into(),
            ignore: None,
        }
    }

    pub fn is_context(&self) -> bool {
        self.ignore.is_some()
    }

    /// Whether `rel` (relative to the root) is hidden by the ignore rules.
    pub fn excluded(&self, rel: &Path) -> bool {
        self.ignore.as_ref().is_some_and(|i| i.matches(rel))
    }

    pub(crate) fn may_reinclude_under(&self, dir: &Path) -> bool {
        self.ignore
            .as_ref()
            .is_some_and(|i| i.may_reinclude_under(dir))
    }

    /// Symlinks in a context must stay in it: an absolute target there names
    /// a host path. In a root filesystem it names a path of that filesystem.
    fn escapes(&self) -> Escapes {
        Escapes::Refuse {
            absolute_links_allowed: !self.is_context(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir,
    /// A fifo or device node.
    Special,
}

/// One source of a COPY/ADD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// The path as the pattern named it, relative to the root (`.` for the
    /// root); its last component names the copy of a file.
    pub rel: PathBuf,
    /// Where it really is, relative to the root, symlinks resolved. COPY
    /// follows a symlink named as a source (not those inside directories).
    pub resolved: PathBuf,
    pub kind: SourceKind,
    /// Matched by a wildcard rather than named literally.
    pub wildcard: bool,
}

impl Selected {
    pub fn host_path(&self, src: &SourceRoot) -> PathBuf {
        src.root.join(&self.resolved)
    }
}

/// Whether a COPY/ADD source is a URL (or git remote) rather than a path.
pub fn is_remote_source(s: &str) -> bool {
    s.contains("://") || s.starts_with("git@")
}

/// The sources named by `patterns`, in pattern order and, within one
/// wildcard, in byte order of the names. A pattern that selects nothing is
/// an error naming it, as is one leading out of the root.
pub fn select(src: &SourceRoot, patterns: &[String]) -> Result<Vec<Selected>, ContextError> {
    let mut out = Vec::new();
    for pattern in patterns {
        let found = select_one(src, pattern)?;
        if found.is_empty() {
            let pattern = pattern.clone();
            let in_context = src.is_context();
            return Err(if is_literal(&pattern) {
                ContextError::NotFound {
                    pattern,
                    in_context,
                }
            } else {
                ContextError::NoMatch {
                    pattern,
                    in_context,
                }
            });
        }
        out.extend(found);
    }
    Ok(out)
}

fn select_one(src: &SourceRoot, pattern: &str) -> Result<Vec<Selected>, ContextError> {
    if is_remote_source(pattern) {
        return Err(ContextError::RemoteSource {
            url: pattern.to_string(),
        });
    }
    let cleaned = clean(pattern.trim_start_matches('/'));
    if cleaned == ".." || cleaned.starts_with("../") {
        return Err(ContextError::OutsideRoot {
            pattern: pattern.to_string(),
            in_context: src.is_context(),
            detail: format!("{cleaned} goes above the root"),
        });
    }
    let wildcard = !is_literal(&cleaned);
    // (name as the pattern spells it, real location) of each candidate.
    let mut candidates: Vec<(PathBuf, PathBuf)> = vec![(PathBuf::from("."), PathBuf::new())];
    if cleaned != "." {
        for part in cleaned.split('/') {
            let mut next = Vec::new();
            for (named, real) in &candidates {
                if is_literal(part) {
                    next.push((named.join(part), real.join(part)));
                    continue;
                }
                let glob = Glob::parse(part, Syntax::GoMatch).map_err(|reason| {
                    ContextError::BadPattern {
                        pattern: pattern.to_string(),
                        reason,
                    }
                })?;
                for name in sorted_names(&src.root.join(real))? {
                    if glob.matches(&name.to_string_lossy()) {
                        next.push((named.join(&name), real.join(&name)));
                    }
                }
            }
            // Resolve now, so the next component is looked up in the real
            // directory and an escape is reported even if nothing follows.
            candidates = Vec::new();
            for (named, real) in next {
                if let Some(real) = resolve_existing(src, pattern, &real)? {
                    candidates.push((named, real));
                }
            }
        }
    }

    let mut out = Vec::new();
    for (named, real) in candidates {
        let named = named
            .strip_prefix(".")
            .map(Path::to_path_buf)
            .unwrap_or(named);
        let named = if named.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            named
        };
        let host = src.root.join(&real);
        let meta = std::fs::metadata(&host).map_err(|e| ContextError::io(&host, e))?;
        let kind = if meta.is_dir() {
            SourceKind::Dir
        } else if meta.is_file() {
            SourceKind::File
        } else {
            SourceKind::Special
        };
        let hidden = src.excluded(&named) || src.excluded(&real);
        if hidden && !(kind == SourceKind::Dir && has_included_entries(src, &real)?) {
            tracing::debug!(path = %named.display(), "excluded by .dockerignore");
            continue;
        }
        out.push(Selected {
            rel: named,
            resolved: real,
            kind,
            wildcard,
        });
    }
    Ok(out)
}

/// `Some(real path)` for an existing path, `None` for a missing one.
fn resolve_existing(
    src: &SourceRoot,
    pattern: &str,
    real: &Path,
) -> Result<Option<PathBuf>, ContextError> {
    let resolved = match resolve(&src.root, real, src.escapes(), true) {
        Ok(r) => r,
        Err(ResolveError::Escape(detail)) => {
            return Err(ContextError::OutsideRoot {
                pattern: pattern.to_string(),
                in_context: src.is_context(),
                detail,
            })
        }
        Err(ResolveError::Loop) => {
            return Err(ContextError::SymlinkLoop {
                root: src.root.clone(),
                path: PathBuf::from(pattern),
            })
        }
        Err(ResolveError::Io(p, e)) => return Err(ContextError::io(p, e)),
    };
    let host = src.root.join(&resolved);
    match std::fs::symlink_metadata(&host) {
        Ok(_) => Ok(Some(resolved)),
        Err(e) if super::securejoin::is_missing(&e) => {
            // The name itself exists but is a link to nothing: say so.
            let link = src.root.join(real);
            if let Ok(target) = std::fs::read_link(&link) {
                return Err(ContextError::DanglingLink {
                    pattern: pattern.to_string(),
                    link,
                    target,
                });
            }
            Ok(None)
        }
        Err(e) => Err(ContextError::io(host, e)),
    }
}

fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>, ContextError> {
    let reader = match std::fs::read_dir(dir) {
        Ok(r) => r,
        // A wildcard below a file or a missing directory matches nothing.
        Err(e) if super::securejoin::is_missing(&e) => return Ok(Vec::new()),
        Err(e) => return Err(ContextError::io(dir, e)),
    };
    let mut names = Vec::new();
    for item in reader {
        names.push(item.map_err(|e| ContextError::io(dir, e))?.file_name());
    }
    names.sort();
    Ok(names)
}

/// An excluded directory still exists in the context when a `!` rule brings
/// back something inside it.
fn has_included_entries(src: &SourceRoot, dir: &Path) -> Result<bool, ContextError> {
    if !src.may_reinclude_under(dir) {
        return Ok(false);
    }
    let mut found = false;
    let stop = || ContextError::io(dir, std::io::Error::other("stop"));
    let result = walk(src, dir, &mut |_| {
        found = true;
        Err(stop())
    });
    match result {
        Ok(()) => Ok(false),
        Err(_) if found => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    fn context(files: &[&str], ignore: &str) -> (tempfile::TempDir, SourceRoot) {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            let p = dir.path().join(f);
            if f.ends_with('/') {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, f).unwrap();
            }
        }
        let src = SourceRoot::context(dir.path(), IgnoreMatcher::parse(ignore).unwrap());
        (dir, src)
    }

    fn rels(sel: &[Selected]) -> Vec<String> {
        sel.iter().map(|s| s.rel.display().to_string()).collect()
    }

    #[test]
    fn literal_paths_and_root() {
        let (_d, src) = context(&["a.txt", "src/x.sh", "empty/"], "");
        let sel = select(&src, &pats(&["a.txt", "/src/", "./empty", ".", "/"])).unwrap();
        assert_eq!(rels(&sel), ["a.txt", "src", "empty", ".", "."]);
        assert_eq!(
            sel.iter().map(|s| s.kind).collect::<Vec<_>>(),
            [
                SourceKind::File,
                SourceKind::Dir,
                SourceKind::Dir,
                SourceKind::Dir,
                SourceKind::Dir
            ]
        );
        assert!(sel.iter().all(|s| !s.wildcard));
    }

    #[test]
    fn wildcards_are_sorted_and_flagged() {
        let (_d, src) = context(&["b.sh", "a.sh", "c.txt", "sub/d.sh", "s1/x", "s2/x"], "");
        let sel = select(&src, &pats(&["*.sh", "s?/x"])).unwrap();
        assert_eq!(rels(&sel), ["a.sh", "b.sh", "s1/x", "s2/x"]);
        assert!(sel.iter().all(|s| s.wildcard));
    }

    #[test]
    fn missing_sources_are_errors_naming_them() {
        let (_d, src) = context(&["a.txt"], "");
        let e = select(&src, &pats(&["missing.txt"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"
        );
        let e = select(&src, &pats(&["*.none"])).unwrap_err();
        assert!(matches!(&e, ContextError::NoMatch { pattern, .. } if pattern == "*.none"));
        assert!(e
            .to_string()
            .starts_with("COPY failed: no source files were specified"));
        let fs = SourceRoot::filesystem(src.root.clone());
        let e = select(&fs, &pats(&["/missing"])).unwrap_err();
        assert!(e.to_string().contains("\"/missing\""), "{e}");
    }

    #[test]
    fn excluded_files_are_not_selectable() {
        let (_d, src) = context(
            &[
                "secret.txt",
                "app.log",
                "keep.log",
                "tmp/x",
                "docs/a",
                "docs/keep",
            ],
            "secret.txt\n*.log\n!keep.log\ntmp\ndocs\n!docs/keep\n",
        );
        assert!(matches!(
            select(&src, &pats(&["secret.txt"])),
            Err(ContextError::NotFound { .. })
        ));
        assert!(select(&src, &pats(&["tmp/x"])).is_err());
        assert!(select(&src, &pats(&["tmp"])).is_err());
        assert_eq!(
            rels(&select(&src, &pats(&["*.log"])).unwrap()),
            ["keep.log"]
        );
        // An excluded directory with a re-included file is still there.
        assert_eq!(rels(&select(&src, &pats(&["docs"])).unwrap()), ["docs"]);
        assert!(select(&src, &pats(&["docs/a"])).is_err());
    }

    #[test]
    fn leaving_the_root_is_refused() {
        let (d, src) = context(&["in/f"], "");
        symlink("../..", d.path().join("up")).unwrap();
        symlink("/etc", d.path().join("abs")).unwrap();
        symlink("in", d.path().join("ok")).unwrap();
        for p in ["../x", "in/../../x", "up/x", "up", "abs/passwd"] {
            let e = select(&src, &pats(&[p])).unwrap_err();
            assert!(
                matches!(&e, ContextError::OutsideRoot { pattern, .. } if pattern == p),
                "{p}: {e}"
            );
        }
        let sel = select(&src, &pats(&["ok/f", "ok"])).unwrap();
        assert_eq!(sel[0].resolved, PathBuf::from("in/f"));
        assert_eq!(sel[0].rel, PathBuf::from("ok/f"));
        assert_eq!(sel[1].kind, SourceKind::Dir);
        // In a root filesystem absolute links start at its root.
        let fs = SourceRoot::filesystem(d.path());
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/passwd"), "").unwrap();
        let sel = select(&fs, &pats(&["abs/passwd"])).unwrap();
        assert_eq!(sel[0].resolved, PathBuf::from("etc/passwd"));
    }

    #[test]
    fn dangling_links_and_urls_are_named() {
        let (d, src) = context(&[], "");
        symlink("nowhere", d.path().join("dangling")).unwrap();
        assert!(matches!(
            select(&src, &pats(&["dangling"])),
            Err(ContextError::DanglingLink { .. })
        ));
        assert!(matches!(
            select(&src, &pats(&["https://example.com/x.tar.gz"])),
            Err(ContextError::RemoteSource { .. })
        ));
    }

    #[test]
    fn bad_wildcards_are_errors() {
        let (_d, src) = context(&["a"], "");
        assert!(matches!(
            select(&src, &pats(&["[a"])),
            Err(ContextError::BadPattern { .. })
        ));
    }
}
