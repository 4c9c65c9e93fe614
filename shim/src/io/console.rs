//! The receiving end of the runtime's `--console-socket`: with
//! `process.terminal` the container's init makes the pty and sends the
//! master over this socket (SCM_RIGHTS) before `create` returns, so the
//! supervisor can read it without racing the runtime.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use super::IoError;

pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listens at `path`, replacing a socket a dead supervisor left there.
    pub fn bind(path: &Path) -> Result<ConsoleSocket, IoError> {
        let err = |source| IoError::ConsoleSocket {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let listener = UnixListener::bind(path).map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        Ok(ConsoleSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the pty master, waiting at most `timeout_ms` for the runtime's
    /// connection (it is normally queued already).
    pub fn receive_master(&self, timeout_ms: i32) -> Result<OwnedFd, IoError> {
        let no_master = |reason: String| IoError::NoMaster {
            path: self.path.clone(),
            reason,
        };
        let mut p = [super::pollfd(self.listener.as_fd(), libc::POLLIN)];
        let ready = super::poll(&mut p, timeout_ms).map_err(|source| IoError::ConsoleSocket {
            path: self.path.clone(),
            source,
        })?;
        if ready == 0 {
            return Err(no_master(format!(
                "the runtime did not connect within {timeout_ms} ms"
            )));
        }
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|source| IoError::ConsoleSocket {
                path: self.path.clone(),
                source,
            })?;
        // The message itself is tiny (runc sends the pty's name); what
        // matters is the descriptor riding on it.
        let mut buf = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| no_master(format!("recvmsg: {e}")))?;
        let cmsgs = msg
            .cmsgs()
            .map_err(|e| no_master(format!("reading control message: {e}")))?;
        for cmsg in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                let mut owned: Vec<OwnedFd> = fds
                    .iter()
                    // SAFETY: the kernel just installed these descriptors
                    // in this process; nothing else owns them.
                    .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
                    .collect();
                if !owned.is_empty() {
                    return Ok(owned.swap_remove(0));
                }
            }
        }
        Err(no_master("the message carried no descriptor".into()))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{sendmsg, ControlMessage};
    use std::io::IoSlice;
    use std::os::unix::net::UnixStream;

    #[test]
    fn receives_a_descriptor_sent_with_scm_rights() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let sock = ConsoleSocket::bind(&path).unwrap();
        let (r, w) = crate::io::pipe("test").unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let fds = [w.as_raw_fd()];
        sendmsg::<UnixAddr>(
            client.as_raw_fd(),
            &[IoSlice::new(b"/dev/pts/0")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(w);
        let got = sock.receive_master(1000).unwrap();
        crate::io::write_all_fd(&got, b"through").unwrap();
        drop(got);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r), &mut out).unwrap();
        assert_eq!(out, "through");
        drop(sock);
        assert!(!path.exists(), "socket file left behind");
    }

    #[test]
    fn no_connection_is_a_timeout_error() {
        let dir = tempfile::tempdir().unwrap();
        let sock = ConsoleSocket::bind(&dir.path().join("c.sock")).unwrap();
        match sock.receive_master(10) {
            Err(IoError::NoMaster { reason, .. }) => assert!(reason.contains("did not connect")),
            other => panic!("expected NoMaster, got {:?}", other.map(|_| ())),
        }
    }
}
