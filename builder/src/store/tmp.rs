//! `tmp/`: one directory per live process, `tmp/<pid>-<random>/`, holding work in flight.
//! A process killed with -9 cannot clean up, so whoever opens the store next removes the
//! directories of pids that are gone; directories of live pids are a concurrent build's.

use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::{Result, Store, StoreError};

/// Our `tmp/<pid>-<random>/`; removed when the store is dropped.
pub(super) struct ProcessTmp {
    path: PathBuf,
}

impl ProcessTmp {
    pub(super) fn create(tmp_root: &Path) -> Result<ProcessTmp> {
        let pid = std::process::id();
        loop {
            let path = tmp_root.join(format!("{pid}-{:016x}", random_u64()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(ProcessTmp { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::io("create directory", &path)(e)),
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ProcessTmp {
    fn drop(&mut self) {
        remove_tree(&self.path);
    }
}

/// A directory under the store's `tmp/`, removed (with everything in it) on drop unless
/// [`TempDir::keep`] is called.
#[derive(Debug)]
pub struct TempDir {
    path: Option<PathBuf>,
}

impl TempDir {
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    /// Disarms the guard: the directory stays (until the process's tmp dir goes).
    pub fn keep(mut self) -> PathBuf {
        self.path.take().unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_tree(&path);
        }
    }
}

impl Store {
    /// A fresh empty directory for `purpose` (used in its name, to tell what leaked).
    pub fn tmp_dir(&self, purpose: &str) -> Result<TempDir> {
        let path = self.tmp_path(purpose);
        fs::create_dir(&path).map_err(StoreError::io("create directory", &path))?;
        Ok(TempDir { path: Some(path) })
    }

    /// A new name in our tmp dir, not created.
    pub(crate) fn tmp_path(&self, purpose: &str) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let purpose: String = purpose
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.own_tmp.path().join(format!("{purpose}-{n}"))
    }

    pub(crate) fn own_tmp_dir(&self) -> &Path {
        self.own_tmp.path()
    }
}

/// Removes the entries of `tmp_root` that belong to no live process; returns what it removed.
/// Failures are logged, not returned: a leftover costs disk space, not correctness.
pub(super) fn remove_dead(tmp_root: &Path, except: Option<&Path>) -> Vec<PathBuf> {
    let entries = match fs::read_dir(tmp_root) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(path = %tmp_root.display(), error = %e, "cannot list tmp dir");
            return Vec::new();
        }
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if Some(path.as_path()) == except {
            continue;
        }
        let owner = entry
            .file_name()
            .to_str()
            .and_then(|name| name.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<i32>().ok());
        if owner.is_some_and(pid_alive) {
            continue;
        }
        tracing::info!(path = %path.display(), "removing work of a dead process");
        if remove_tree(&path) {
            removed.push(path);
        }
    }
    removed
}

/// The tmp dirs of process `pid` in the store at `root` (normally one): what a guardian
/// removes once that process is dead.
pub(crate) fn dirs_of(root: &Path, pid: u32) -> Vec<PathBuf> {
    let tmp_root = root.join(super::layout::TMP);
    let Ok(entries) = fs::read_dir(&tmp_root) else {
        return Vec::new();
    };
    let prefix = format!("{pid}-");
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.strip_prefix(&prefix).is_some_and(|r| !r.is_empty()))
        })
        .map(|e| e.path())
        .collect()
}

/// Live processes' tmp dirs other than `except`, for gc to tell what is in flight.
pub(super) fn live_others(tmp_root: &Path, except: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(tmp_root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != except)
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split_once('-'))
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
                .is_some_and(pid_alive)
        })
        .collect()
}

/// A zombie counts as alive, and a reused pid keeps a dead build's leftovers until that
/// process exits too: both only delay the cleanup.
pub(crate) fn pid_alive(pid: i32) -> bool {
    // kill(0 or negative) addresses process groups, never a single owner.
    if pid <= 0 {
        return false;
    }
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

/// Removes a file or a tree. Mounts inside it (an overlay left by a killed build) are
/// detached first, so that removing cannot reach through them into layer dirs or the host.
/// Returns whether the path is gone.
pub(crate) fn remove_tree(path: &Path) -> bool {
    for mount in mounts_under(path) {
        if let Err(e) = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(path = %mount.display(), error = %e, "cannot unmount; leaving the tree");
            return false;
        }
    }
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove");
            false
        }
    }
}

/// Mount points at or below `path`, deepest first.
fn mounts_under(path: &Path) -> Vec<PathBuf> {
    let Ok(path) = fs::canonicalize(path) else {
        return Vec::new();
    };
    let Ok(info) = fs::read("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| p.starts_with(&path))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo writes space, tab, newline and backslash in paths as `\ooo`.
fn unescape_mountinfo(bytes: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(v as u8);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Only for unique names; collisions are retried by the callers.
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return u64::from_ne_bytes(buf);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo(br"/a\040b"), Path::new("/a b"));
        assert_eq!(unescape_mountinfo(br"/plain"), Path::new("/plain"));
        assert_eq!(unescape_mountinfo(br"/end\04"), Path::new(r"/end\04"));
    }

    #[test]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id() as i32));
        assert!(!pid_alive(0));
        assert!(!pid_alive(-1));
    }
}
