//! The runtime's own console socket, for foreground `run`/`exec` with a
//! terminal: runc then allocates the pty itself and proxies it to its own
//! stdio. libcontainer only knows the `--console-socket` protocol, so we act
//! as the receiving end of it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::error::{Result, RuntimeError};

pub struct ConsoleListener {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleListener {
    /// Listens on a fresh socket under `dir` (the state root, which is ours).
    pub fn bind(dir: &Path, id: &str) -> Result<Self> {
        let path = dir.join(format!(".console-{}-{id}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(|e| RuntimeError::io(format!("console socket {}", path.display()), e))?;
        Ok(ConsoleListener { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the pty master the container's init sent. The sender has
    /// already written it into the socket buffer by the time libcontainer's
    /// create returns, so this does not block for long.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| RuntimeError::io("accepting console connection", e))?;
        let mut buf = [0u8; 4096];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| RuntimeError::sys("receiving pty master", e))?;
        for cmsg in msg
            .cmsgs()
            .map_err(|e| RuntimeError::sys("reading pty master message", e))?
        {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed this descriptor for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(RuntimeError::Invalid(
            "console socket: no pty master received".into(),
        ))
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
