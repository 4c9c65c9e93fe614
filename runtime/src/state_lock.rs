//! An flock(2) on a container's state directory, so that commands run by
//! different processes at once never interleave their reads, rewrites and
//! removal of it.
//!
//! libcontainer rewrites `state.json` in place (open with O_TRUNC, then
//! write) after `kill`, `start`, `pause` and `resume`, and `delete` removes
//! the directory with `remove_dir_all`. A `kill` whose rewrite landed while a
//! foreground `run` was deleting its container recreated `state.json` between
//! the unlink of its entries and the rmdir (so the delete failed with "Directory
//! not empty" and `run` lost the exit status), or after the rmdir (so the
//! `kill`, whose signal had already gone out, failed with "No such file").
//! Commands that change the state hold the lock exclusively, readers share it.
//!
//! The lock is on the directory itself rather than on a lock file in it: a
//! lock file would have to be created, which is the very race above, and it
//! could not outlive the directory without being left in the state root. It
//! is never held across a fork (create's and exec's process setup run
//! without it): a child would inherit the open file description, and with
//! it the lock, for as long as it keeps the descriptor.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Result, RuntimeError};

/// What the holder does with the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads `state.json` and the config; many at once.
    Read,
    /// Rewrites `state.json` or removes the directory; alone.
    Write,
}

/// Held until dropped (closing the descriptor releases the lock, also when
/// the holder dies).
#[derive(Debug)]
pub struct StateLock {
    _dir: File,
}

/// A container deleted and created again under the same id while we waited
/// makes us start over; this bounds that, which only a pathological loop of
/// delete/create can exhaust.
const ATTEMPTS: usize = 100;

impl StateLock {
    /// Locks the state directory `dir` of container `id`. Fails with
    /// `NotExist` when there is no such directory, including when a
    /// `delete` that held the lock before us has just removed it.
    pub fn acquire(dir: &Path, id: &str, access: Access) -> Result<StateLock> {
        let what = || format!("locking state directory {}", dir.display());
        for _ in 0..ATTEMPTS {
            let f = match File::open(dir) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(RuntimeError::NotExist(id.to_string()))
                }
                Err(e) => return Err(RuntimeError::io(what(), e)),
            };
            let op = match access {
                Access::Read => libc::LOCK_SH,
                Access::Write => libc::LOCK_EX,
            };
            loop {
                // SAFETY: flock on a descriptor we own.
                if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
                    break;
                }
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(RuntimeError::io(what(), e));
                }
            }
            // The directory we waited on may have been removed by the holder
            // before us (an unlinked directory has no links left); if so,
            // look again at what the path names now.
            let held = f.metadata().map_err(|e| RuntimeError::io(what(), e))?;
            if held.nlink() > 0 {
                return Ok(StateLock { _dir: f });
            }
        }
        Err(RuntimeError::io(
            what(),
            std::io::Error::other(format!(
                "the directory was replaced {ATTEMPTS} times while waiting for its lock"
            )),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn missing_directory_is_not_exist() {
        let d = tempfile::tempdir().unwrap();
        let err = StateLock::acquire(&d.path().join("gone"), "gone", Access::Read).unwrap_err();
        assert!(
            matches!(err, RuntimeError::NotExist(ref id) if id == "gone"),
            "{err}"
        );
    }

    #[test]
    fn readers_share_writers_exclude() {
        let d = tempfile::tempdir().unwrap();
        let r1 = StateLock::acquire(d.path(), "c", Access::Read).unwrap();
        let r2 = StateLock::acquire(d.path(), "c", Access::Read).unwrap();
        let (tx, rx) = mpsc::channel();
        let path = d.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            let w = StateLock::acquire(&path, "c", Access::Write).unwrap();
            tx.send(()).unwrap();
            drop(w);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a writer got the lock while readers held it"
        );
        drop(r1);
        drop(r2);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the writer gets the lock once the readers are gone");
        writer.join().unwrap();
    }

    #[test]
    fn waiter_sees_a_directory_removed_by_the_holder_as_gone() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        let w = StateLock::acquire(&dir, "c", Access::Write).unwrap();
        let path = dir.clone();
        let waiter = std::thread::spawn(move || StateLock::acquire(&path, "c", Access::Read));
        // Let the waiter open the directory and block on the lock.
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_dir(&dir).unwrap();
        drop(w);
        let err = waiter.join().unwrap().unwrap_err();
        assert!(matches!(err, RuntimeError::NotExist(_)), "{err}");
    }

    #[test]
    fn waiter_moves_on_to_a_directory_created_again() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("c");
        std::fs::create_dir(&dir).unwrap();
        let w = StateLock::acquire(&dir, "c", Access::Write).unwrap();
        let path = dir.clone();
        let waiter = std::thread::spawn(move || StateLock::acquire(&path, "c", Access::Write));
        std::thread::sleep(Duration::from_millis(100));
        std::fs::remove_dir(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("mark"), "new").unwrap();
        drop(w);
        let lock = waiter.join().unwrap().expect("the new directory is locked");
        let held = lock._dir.metadata().unwrap();
        assert!(held.nlink() > 0);
        assert_eq!(held.ino(), std::fs::metadata(&dir).unwrap().ino());
    }
}
