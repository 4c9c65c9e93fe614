//! The store's writer lock: `flock` on `<root>/lock`. flock (not fcntl) locks belong to the
//! open file, so threads of one process exclude each other too, and the kernel drops the lock
//! when a killed holder's file is closed: a crashed build never leaves the store locked.

use std::fs::{File, OpenOptions};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::{layout, Result, Store, StoreError};

/// Held while `index.json`, cache records or gc change; unlocks on drop.
pub struct StoreLock {
    _flock: Flock<File>,
}

impl Store {
    /// Waits for and takes the exclusive writer lock.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join(layout::LOCK);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StoreError::io("open lock file", &path))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(flock) => return Ok(StoreLock { _flock: flock }),
                Err((f, Errno::EINTR)) => file = f,
                Err((_, errno)) => {
                    return Err(StoreError::io("lock", &path)(errno.into()));
                }
            }
        }
    }
}
