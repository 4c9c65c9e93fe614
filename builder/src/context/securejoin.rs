//! Resolving a path inside a root directory the way a process chrooted
//! there would, without ever producing a host path outside the root.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::error::ContextError;

/// Linux gives up after 40 links in one lookup; a tighter bound would
/// reject trees the container itself can use.
const MAX_LINKS: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Escapes {
    /// As in a container: `/..` is `/`, absolute targets start at the root.
    Clamp,
    /// A `..` above the root, or (when `absolute_links_allowed` is false)
    /// an absolute symlink target, is an error.
    Refuse { absolute_links_allowed: bool },
}

#[derive(Debug)]
pub(crate) enum ResolveError {
    /// What left the root, for the message.
    Escape(String),
    Loop,
    Io(PathBuf, io::Error),
}

/// Resolves `path` (absolute or relative, both taken from the root) to a
/// path relative to `root` with every existing symlink replaced by its
/// target. Missing components are kept as they are, so the result may not
/// exist. With `follow_last` false a final symlink is left unresolved.
pub(crate) fn resolve(
    root: &Path,
    path: &Path,
    escapes: Escapes,
    follow_last: bool,
) -> Result<PathBuf, ResolveError> {
    let mut todo: VecDeque<OsString> = components(path).collect();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            if done.pop().is_none() {
                if let Escapes::Refuse { .. } = escapes {
                    return Err(ResolveError::Escape(format!(
                        "{} goes above the root",
                        path.display()
                    )));
                }
            }
            continue;
        }
        done.push(part);
        if todo.is_empty() && !follow_last {
            break;
        }
        let host = join_all(root, &done);
        let meta = match std::fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if is_missing(&e) => continue,
            Err(e) => return Err(ResolveError::Io(host, e)),
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(ResolveError::Loop);
        }
        let target = std::fs::read_link(&host).map_err(|e| ResolveError::Io(host.clone(), e))?;
        done.pop();
        if target.is_absolute() {
            if let Escapes::Refuse {
                absolute_links_allowed: false,
            } = escapes
            {
                return Err(ResolveError::Escape(format!(
                    "symbolic link {} points to the absolute path {}",
                    join_all(Path::new(""), &done)
                        .join(host.file_name().unwrap_or_default())
                        .display(),
                    target.display()
                )));
            }
            done.clear();
        }
        for part in components(&target).collect::<Vec<_>>().into_iter().rev() {
            todo.push_front(part);
        }
    }
    Ok(join_all(Path::new(""), &done))
}

fn components(path: &Path) -> impl Iterator<Item = OsString> + '_ {
    path.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n.to_os_string()),
        Component::ParentDir => Some(OsString::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

fn join_all(base: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = base.to_path_buf();
    p.extend(parts);
    p
}

/// A path through a regular file (`ENOTDIR`) does not exist either.
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR)
}

/// The host path of the container path `path` inside `root`, following
/// symlinks as the container would (absolute targets start at `root`, `..`
/// stops at `root`). The result is always `root` or below it; it need not
/// exist.
pub fn secure_join(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf, ContextError> {
    let path = path.as_ref();
    match resolve(root, path, Escapes::Clamp, true) {
        Ok(rel) => Ok(root.join(rel)),
        Err(ResolveError::Loop) => Err(ContextError::SymlinkLoop {
            root: root.to_path_buf(),
            path: path.to_path_buf(),
        }),
        Err(ResolveError::Io(p, e)) => Err(ContextError::io(p, e)),
        // Clamping never refuses.
        Err(ResolveError::Escape(detail)) => Err(ContextError::io(path, io::Error::other(detail))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/usr/lib", r.join("lib")).unwrap();
        symlink("../../../../etc", r.join("usr/up")).unwrap();
        symlink("/", r.join("usr/rootlink")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        symlink("lib/../etc", r.join("tricky")).unwrap();
        dir
    }

    #[test]
    fn plain_paths_stay_lexical() {
        let t = tree();
        let r = t.path();
        assert_eq!(secure_join(r, "/usr/lib/x").unwrap(), r.join("usr/lib/x"));
        assert_eq!(secure_join(r, "/").unwrap(), r.to_path_buf());
        assert_eq!(secure_join(r, "/new/dir/").unwrap(), r.join("new/dir"));
    }

    #[test]
    fn absolute_links_are_relative_to_root() {
        let t = tree();
        let r = t.path();
        assert_eq!(
            secure_join(r, "/lib/libc.so").unwrap(),
            r.join("usr/lib/libc.so")
        );
        assert_eq!(secure_join(r, "/usr/rootlink/etc").unwrap(), r.join("etc"));
    }

    #[test]
    fn escapes_are_clamped_to_root() {
        let t = tree();
        let r = t.path();
        assert_eq!(
            secure_join(r, "/../../etc/passwd").unwrap(),
            r.join("etc/passwd")
        );
        assert_eq!(
            secure_join(r, "/usr/up/passwd").unwrap(),
            r.join("etc/passwd")
        );
        // `..` climbs from where `lib` really is (/usr/lib), not from `/lib`.
        assert_eq!(secure_join(r, "/tricky/x").unwrap(), r.join("usr/etc/x"));
        for p in ["/usr/up", "/../..", "/lib/../../../.."] {
            assert!(secure_join(r, p).unwrap().starts_with(r), "{p}");
        }
    }

    #[test]
    fn loops_are_errors() {
        let t = tree();
        assert!(matches!(
            secure_join(t.path(), "/loop1/x"),
            Err(ContextError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn refusing_mode_names_the_escape() {
        let t = tree();
        let r = t.path();
        let strict = Escapes::Refuse {
            absolute_links_allowed: false,
        };
        assert!(matches!(
            resolve(r, Path::new("usr/up/passwd"), strict, true),
            Err(ResolveError::Escape(_))
        ));
        assert!(matches!(
            resolve(r, Path::new("lib"), strict, true),
            Err(ResolveError::Escape(_))
        ));
        assert_eq!(
            resolve(r, Path::new("lib"), strict, false).unwrap(),
            PathBuf::from("lib")
        );
        let lenient = Escapes::Refuse {
            absolute_links_allowed: true,
        };
        assert_eq!(
            resolve(r, Path::new("lib/x"), lenient, true).unwrap(),
            PathBuf::from("usr/lib/x")
        );
    }
}
