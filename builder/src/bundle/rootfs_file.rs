//! Reading files of an image's rootfs as the container would see them.
//!
//! An image's `/etc/passwd` may be a symlink, and an absolute one points into
//! the image, not the host: resolution has to treat the rootfs as `/`.
//! `openat2(RESOLVE_IN_ROOT)` does exactly that in the kernel, with `..` and
//! absolute links clamped at the rootfs, so no userspace walk can race it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use super::BundleError;

/// passwd and group files of real images are a few KiB; a limit keeps a
/// hostile image from making us read gigabytes into memory.
pub(super) const MAX_ROOTFS_FILE: u64 = 16 * 1024 * 1024;

/// Opens `path` (absolute, as seen inside the container) under `rootfs`.
/// `Ok(None)` when it does not exist.
pub(super) fn open_in_rootfs(
    rootfs: &Path,
    path: &str,
    flags: OFlag,
) -> Result<Option<File>, BundleError> {
    let err = |source: io::Error| BundleError::RootfsFile {
        path: path.to_string(),
        rootfs: rootfs.to_path_buf(),
        source,
    };
    let root = File::open(rootfs).map_err(err)?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() { "." } else { relative };
    match openat2(std::os::fd::AsRawFd::as_raw_fd(&root), relative, how) {
        Ok(fd) => {
            // SAFETY: openat2 just returned this descriptor and nothing else owns it.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            Ok(Some(File::from(owned)))
        }
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(err(io::Error::from(e))),
    }
}

/// Reads a regular file of the rootfs, `Ok(None)` when it does not exist.
pub(super) fn read_rootfs_file(rootfs: &Path, path: &str) -> Result<Option<Vec<u8>>, BundleError> {
    // O_NONBLOCK so that a FIFO planted at /etc/passwd cannot hang us before
    // the file-type check below; it changes nothing for regular files.
    let Some(mut file) = open_in_rootfs(rootfs, path, OFlag::O_RDONLY | OFlag::O_NONBLOCK)? else {
        return Ok(None);
    };
    let err = |source: io::Error| BundleError::RootfsFile {
        path: path.to_string(),
        rootfs: rootfs.to_path_buf(),
        source,
    };
    let meta = file.metadata().map_err(err)?;
    if !meta.is_file() {
        return Err(BundleError::NotRegularFile {
            path: path.to_string(),
            rootfs: rootfs.to_path_buf(),
        });
    }
    if meta.size() > MAX_ROOTFS_FILE {
        return Err(BundleError::FileTooLarge {
            path: path.to_string(),
            rootfs: rootfs.to_path_buf(),
            limit: MAX_ROOTFS_FILE,
        });
    }
    let mut data = Vec::with_capacity(meta.size() as usize);
    (&mut file)
        .take(MAX_ROOTFS_FILE)
        .read_to_end(&mut data)
        .map_err(err)?;
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlink_resolves_inside_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::create_dir_all(root.join("real")).unwrap();
        fs::write(root.join("real/passwd"), "inside\n").unwrap();
        // On the host /real/passwd does not exist; inside the rootfs it does.
        symlink("/real/passwd", root.join("etc/passwd")).unwrap();
        let data = read_rootfs_file(root, "/etc/passwd").unwrap().unwrap();
        assert_eq!(data, b"inside\n");
    }

    #[test]
    fn dotdot_symlink_cannot_escape_to_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(dir.path().join("secret"), "host\n").unwrap();
        symlink("../../../secret", root.join("etc/passwd")).unwrap();
        // Clamped at the rootfs, ../../../secret is /secret inside it: absent.
        assert!(read_rootfs_file(&root, "/etc/passwd").unwrap().is_none());
    }

    #[test]
    fn missing_file_is_none_and_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_rootfs_file(dir.path(), "/etc/group")
            .unwrap()
            .is_none());
        fs::create_dir_all(dir.path().join("etc/group")).unwrap();
        let err = read_rootfs_file(dir.path(), "/etc/group").unwrap_err();
        assert!(matches!(err, BundleError::NotRegularFile { .. }), "{err}");
    }
}
