//! Preparing the step's rootfs before the container starts, and undoing the
//! parts of that preparation that must not end up in the layer.
//!
//! The rootfs is an image's filesystem, so its symlinks are untrusted:
//! every path is resolved the way the container would see it, never
//! letting a link (absolute or `..`) lead out onto the host.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, File, FileTimes};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

/// Linux's limit on symlinks followed in one lookup.
const MAX_LINKS: usize = 40;

/// `path` (as seen inside the container) as a host path under `root`,
/// following symlinks inside `root`. Components that do not exist are kept
/// as they are, so the result is also where to create them.
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = join(root, &resolved).join(&c);
        match fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("too many levels of symlinks at {}", candidate.display()),
                    ));
                }
                let target = fs::read_link(&candidate)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                for t in components(&target).into_iter().rev() {
                    pending.push_front(t);
                }
            }
            Ok(_) => resolved.push(c),
            Err(e) if e.kind() == io::ErrorKind::NotFound => resolved.push(c),
            Err(e) => return Err(e),
        }
    }
    Ok(join(root, &resolved))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn join(root: &Path, parts: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(parts);
    p
}

/// Creates the working directory (and its parents) if missing, as Docker
/// does for a RUN whose WORKDIR was never created. Unlike the host files it
/// stays: it is part of what the step produced.
pub(crate) fn ensure_cwd(root: &Path, cwd: &Path) -> io::Result<()> {
    let target = resolve_in_root(root, cwd)?;
    let rel = target.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "cwd resolves outside the rootfs",
        )
    })?;
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", at.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new().mode(0o755).create(&at)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A bind mount of a host file over the container's, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostFile {
    pub(crate) source: PathBuf,
    pub(crate) destination: &'static str,
}

/// What was created in the rootfs only to have a mount point; undone once
/// the container is gone, so a RUN's layer does not gain an empty
/// `/etc/resolv.conf` (buildah's rule: those files are the runtime's, not
/// the image's).
#[derive(Debug, Default)]
pub(crate) struct MountPoints {
    // In creation order; undone in reverse.
    created: Vec<Created>,
}

#[derive(Debug)]
enum Created {
    File(PathBuf),
    Dir(PathBuf),
    /// A directory's times before something was created in it, so the
    /// directory looks untouched afterwards.
    Times {
        dir: PathBuf,
        accessed: SystemTime,
        modified: SystemTime,
    },
}

impl MountPoints {
    /// For each of the host's `/etc/resolv.conf` and `/etc/hosts` that
    /// exists, a mount point in the rootfs: the image's own file when it
    /// has a plain one, else a created empty one. An image whose `/etc` or
    /// file is a symlink or something odd keeps it, without the bind: the
    /// runtime would follow that link to a place we did not choose.
    pub(crate) fn prepare(&mut self, root: &Path, host_etc: &Path) -> io::Result<Vec<HostFile>> {
        let mut binds = Vec::new();
        for (name, destination) in [("resolv.conf", "/etc/resolv.conf"), ("hosts", "/etc/hosts")] {
            let Ok(source) = fs::canonicalize(host_etc.join(name)) else {
                continue;
            };
            if !source.is_file() {
                continue;
            }
            let etc = root.join("etc");
            match fs::symlink_metadata(&etc) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    tracing::warn!(path = %etc.display(), "not a directory; no host {name} bind");
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.remember_times(root)?;
                    fs::create_dir(&etc)?;
                    self.created.push(Created::Dir(etc.clone()));
                }
                Err(e) => return Err(e),
            }
            let file = etc.join(name);
            match fs::symlink_metadata(&file) {
                Ok(m) if m.is_file() => {}
                Ok(_) => {
                    tracing::warn!(path = %file.display(), "not a plain file; no host {name} bind");
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.remember_times(&etc)?;
                    File::options().write(true).create_new(true).open(&file)?;
                    self.created.push(Created::File(file));
                }
                Err(e) => return Err(e),
            }
            binds.push(HostFile {
                source,
                destination,
            });
        }
        Ok(binds)
    }

    fn remember_times(&mut self, dir: &Path) -> io::Result<()> {
        if self
            .created
            .iter()
            .any(|c| matches!(c, Created::Times { dir: d, .. } if d == dir))
        {
            return Ok(());
        }
        let m = fs::metadata(dir)?;
        self.created.push(Created::Times {
            dir: dir.to_path_buf(),
            accessed: m.accessed()?,
            modified: m.modified()?,
        });
        Ok(())
    }

    /// Call only once the container (and its mounts) is gone. A created
    /// file that is no longer empty, or a created dir the step filled, is
    /// the step's output and is kept.
    pub(crate) fn undo(&mut self) -> io::Result<()> {
        let mut first_err = None;
        while let Some(c) = self.created.pop() {
            let r = match &c {
                Created::File(p) => match fs::symlink_metadata(p) {
                    Ok(m) if m.is_file() && m.len() == 0 => fs::remove_file(p),
                    _ => Ok(()),
                },
                Created::Dir(p) => match fs::remove_dir(p) {
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => Ok(()),
                    r => r,
                },
                Created::Times {
                    dir,
                    accessed,
                    modified,
                } => File::open(dir).and_then(|f| {
                    f.set_times(
                        FileTimes::new()
                            .set_accessed(*accessed)
                            .set_modified(*modified),
                    )
                }),
            };
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for MountPoints {
    fn drop(&mut self) {
        if let Err(e) = self.undo() {
            tracing::warn!(error = %e, "could not remove mount points created for a RUN step");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_never_leave_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir_all(root.join("srv/app")).unwrap();
        symlink("/srv", root.join("abs")).unwrap();
        symlink("../../../../..", root.join("srv/up")).unwrap();
        symlink("/etc", root.join("hostetc")).unwrap();
        assert_eq!(
            resolve_in_root(root, Path::new("/abs/app")).unwrap(),
            root.join("srv/app")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/srv/up/etc")).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_in_root(root, Path::new("/../../hostetc/x")).unwrap(),
            root.join("etc/x")
        );
    }

    #[test]
    fn symlink_loops_are_refused() {
        let t = tempfile::tempdir().unwrap();
        symlink("/b", t.path().join("a")).unwrap();
        symlink("/a", t.path().join("b")).unwrap();
        assert!(resolve_in_root(t.path(), Path::new("/a/x")).is_err());
    }

    #[test]
    fn cwd_is_created_through_links_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fs::create_dir(root.join("srv")).unwrap();
        symlink("/srv", root.join("app")).unwrap();
        ensure_cwd(root, Path::new("/app/x/y")).unwrap();
        assert!(root.join("srv/x/y").is_dir());
        fs::write(root.join("file"), b"").unwrap();
        assert!(ensure_cwd(root, Path::new("/file/sub")).is_err());
    }

    #[test]
    fn created_mount_points_are_removed_and_times_restored() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        let root = t.path().join("root");
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(host.join("resolv.conf"), "nameserver 1.1.1.1\n").unwrap();
        fs::write(host.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        fs::write(root.join("etc/hosts"), "image's own\n").unwrap();
        let old = FileTimes::new()
            .set_accessed(SystemTime::UNIX_EPOCH)
            .set_modified(SystemTime::UNIX_EPOCH);
        File::open(root.join("etc"))
            .unwrap()
            .set_times(old)
            .unwrap();

        let mut mp = MountPoints::default();
        let binds = mp.prepare(&root, &host).unwrap();
        assert_eq!(
            binds.iter().map(|b| b.destination).collect::<Vec<_>>(),
            ["/etc/resolv.conf", "/etc/hosts"]
        );
        assert_eq!(
            binds[0].source,
            host.join("resolv.conf").canonicalize().unwrap()
        );
        assert!(root.join("etc/resolv.conf").is_file());
        mp.undo().unwrap();
        assert!(!root.join("etc/resolv.conf").exists());
        assert_eq!(
            fs::read_to_string(root.join("etc/hosts")).unwrap(),
            "image's own\n"
        );
        let m = fs::metadata(root.join("etc")).unwrap();
        assert_eq!(m.modified().unwrap(), SystemTime::UNIX_EPOCH);
    }

    #[test]
    fn missing_etc_is_created_then_removed() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        let root = t.path().join("root");
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(&root).unwrap();
        fs::write(host.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        {
            let mut mp = MountPoints::default();
            let binds = mp.prepare(&root, &host).unwrap();
            assert_eq!(binds.len(), 1, "no host resolv.conf, no bind");
            assert!(root.join("etc/hosts").is_file());
        } // dropped: undone
        assert!(!root.join("etc").exists());
    }

    #[test]
    fn symlinked_etc_files_get_no_bind() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        let root = t.path().join("root");
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(host.join("resolv.conf"), "nameserver 1.1.1.1\n").unwrap();
        symlink(
            "/run/systemd/resolve/stub-resolv.conf",
            root.join("etc/resolv.conf"),
        )
        .unwrap();
        let mut mp = MountPoints::default();
        assert!(mp.prepare(&root, &host).unwrap().is_empty());
        mp.undo().unwrap();
        assert!(fs::symlink_metadata(root.join("etc/resolv.conf")).is_ok());
    }

    #[test]
    fn a_file_the_step_filled_is_kept() {
        let t = tempfile::tempdir().unwrap();
        let host = t.path().join("host");
        let root = t.path().join("root");
        fs::create_dir_all(&host).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(host.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let mut mp = MountPoints::default();
        mp.prepare(&root, &host).unwrap();
        fs::write(root.join("etc/hosts"), "written by the step\n").unwrap();
        mp.undo().unwrap();
        assert!(root.join("etc/hosts").is_file());
    }
}
