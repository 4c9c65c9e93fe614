//! Creating files, directories, links and nodes in a destination root with
//! the owner, mode and mtime COPY/ADD give them. Shared by plain copies and
//! archive extraction.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sys::stat::{utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;

use super::error::ContextError;
use super::securejoin::{is_missing, secure_join};

pub(crate) type Owner = (u32, u32);

pub(crate) struct Writer<'a> {
    pub root: &'a Path,
    /// Owner of directories the copy has to create on the way to `dest`.
    pub new_dir_owner: Owner,
    /// Directory mtimes are set last: creating entries inside changes them.
    dir_times: Vec<(PathBuf, SystemTime)>,
}

pub(crate) struct Attrs {
    pub owner: Owner,
    pub mode: u32,
    pub mtime: SystemTime,
}

impl<'a> Writer<'a> {
    pub fn new(root: &'a Path, new_dir_owner: Owner) -> Self {
        Writer {
            root,
            new_dir_owner,
            dir_times: Vec::new(),
        }
    }

    /// The host path of the container directory `dir`, creating it and its
    /// missing parents (mode 0755, `new_dir_owner`). `dest` is only for the
    /// error message.
    pub fn ensure_dir(&self, dir: &Path, dest: &str) -> Result<PathBuf, ContextError> {
        let mut cur = PathBuf::from("/");
        for part in dir.components() {
            let Component::Normal(part) = part else {
                continue;
            };
            cur.push(part);
            let host = secure_join(self.root, &cur)?;
            match std::fs::symlink_metadata(&host) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(ContextError::DestNotDirectory {
                        dest: dest.to_string(),
                        path: cur,
                    })
                }
                Err(e) if is_missing(&e) => {
                    std::fs::create_dir(&host).map_err(|e| ContextError::io(&host, e))?;
                    std::os::unix::fs::chown(
                        &host,
                        Some(self.new_dir_owner.0),
                        Some(self.new_dir_owner.1),
                    )
                    .map_err(|e| ContextError::io(&host, e))?;
                    // Explicitly, so the umask does not decide.
                    set_mode(&host, 0o755)?;
                }
                Err(e) => return Err(ContextError::io(host, e)),
            }
        }
        secure_join(self.root, dir)
    }

    /// Makes `host` (not followed) free for a new non-directory entry.
    pub fn clear(&self, host: &Path) -> Result<(), ContextError> {
        match std::fs::symlink_metadata(host) {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(host).map_err(|e| ContextError::io(host, e))
            }
            Ok(_) => std::fs::remove_file(host).map_err(|e| ContextError::io(host, e)),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(ContextError::io(host, e)),
        }
    }

    /// A directory at `host`; an existing directory is kept (its contents
    /// merge) but gets the new attributes, anything else is replaced.
    pub fn dir(&mut self, host: &Path, attrs: &Attrs) -> Result<(), ContextError> {
        match std::fs::symlink_metadata(host) {
            Ok(m) if m.is_dir() => {}
            _ => {
                self.clear(host)?;
                std::fs::create_dir(host).map_err(|e| ContextError::io(host, e))?;
            }
        }
        std::os::unix::fs::chown(host, Some(attrs.owner.0), Some(attrs.owner.1))
            .map_err(|e| ContextError::io(host, e))?;
        set_mode(host, attrs.mode)?;
        self.dir_times.push((host.to_path_buf(), attrs.mtime));
        Ok(())
    }

    pub fn file(
        &self,
        host: &Path,
        content: &mut dyn Read,
        attrs: &Attrs,
    ) -> Result<(), ContextError> {
        self.clear(host)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(host)
            .map_err(|e| ContextError::io(host, e))?;
        io::copy(content, &mut out).map_err(|e| ContextError::io(host, e))?;
        // chown before chmod: chown clears set-id bits.
        std::os::unix::fs::fchown(&out, Some(attrs.owner.0), Some(attrs.owner.1))
            .map_err(|e| ContextError::io(host, e))?;
        out.set_permissions(std::fs::Permissions::from_mode(attrs.mode))
            .map_err(|e| ContextError::io(host, e))?;
        set_file_mtime(&out, host, attrs.mtime)
    }

    pub fn symlink(&self, host: &Path, target: &Path, attrs: &Attrs) -> Result<(), ContextError> {
        self.clear(host)?;
        std::os::unix::fs::symlink(target, host).map_err(|e| ContextError::io(host, e))?;
        std::os::unix::fs::lchown(host, Some(attrs.owner.0), Some(attrs.owner.1))
            .map_err(|e| ContextError::io(host, e))?;
        set_mtime_nofollow(host, attrs.mtime)
    }

    pub fn hardlink(&self, host: &Path, existing: &Path) -> Result<(), ContextError> {
        self.clear(host)?;
        std::fs::hard_link(existing, host).map_err(|e| ContextError::io(host, e))
    }

    /// A fifo or device node; `kind` is the `S_IF*` type.
    pub fn node(
        &self,
        host: &Path,
        kind: libc::mode_t,
        rdev: libc::dev_t,
        attrs: &Attrs,
    ) -> Result<(), ContextError> {
        self.clear(host)?;
        let kind = nix::sys::stat::SFlag::from_bits_truncate(kind);
        let perm = nix::sys::stat::Mode::from_bits_truncate(0o600);
        nix::sys::stat::mknod(host, kind, perm, rdev)
            .map_err(|e| ContextError::io(host, io::Error::from(e)))?;
        std::os::unix::fs::lchown(host, Some(attrs.owner.0), Some(attrs.owner.1))
            .map_err(|e| ContextError::io(host, e))?;
        set_mode(host, attrs.mode)?;
        set_mtime_nofollow(host, attrs.mtime)
    }

    /// Sets the directory mtimes, innermost first.
    pub fn finish(self) -> Result<(), ContextError> {
        for (dir, mtime) in self.dir_times.iter().rev() {
            set_mtime_nofollow(dir, *mtime)?;
        }
        Ok(())
    }
}

fn set_mode(host: &Path, mode: u32) -> Result<(), ContextError> {
    std::fs::set_permissions(host, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ContextError::io(host, e))
}

fn timespec(t: SystemTime) -> TimeSpec {
    // Before 1970 is unusual enough to round to the epoch.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    TimeSpec::new(
        d.as_secs() as libc::time_t,
        d.subsec_nanos() as libc::c_long,
    )
}

fn set_file_mtime(file: &File, host: &Path, mtime: SystemTime) -> Result<(), ContextError> {
    let times = std::fs::FileTimes::new()
        .set_accessed(mtime)
        .set_modified(mtime);
    file.set_times(times).map_err(|e| ContextError::io(host, e))
}

pub(crate) fn set_mtime_nofollow(host: &Path, mtime: SystemTime) -> Result<(), ContextError> {
    let t = timespec(mtime);
    utimensat(None, host, &t, &t, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| ContextError::io(host, io::Error::from(e)))
}
