//! Container stdio: pipes, the pty master received over a console socket,
//! raw terminal mode and window sizes, and the few descriptor operations the
//! supervisor's event loop is built from (non-blocking reads and writes,
//! `poll(2)`).

mod console;
mod term;

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};

pub use console::ConsoleSocket;
pub use term::{get_winsize, set_winsize, RawModeGuard, Winsize};

#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("creating a pipe for {what}: {source}")]
    Pipe {
        what: &'static str,
        source: nix::Error,
    },
    #[error("setting flags on {what}: {source}")]
    Flags {
        what: &'static str,
        source: nix::Error,
    },
    #[error("console socket {path}: {source}")]
    ConsoleSocket { path: PathBuf, source: io::Error },
    #[error("console socket {path}: {reason}")]
    NoMaster { path: PathBuf, reason: String },
    #[error("terminal on fd {fd}: {source}")]
    Terminal { fd: RawFd, source: nix::Error },
}

/// A pipe whose ends are both close-on-exec: the end a child should get is
/// handed over as its stdio (dup2 clears the flag), nothing else leaks.
pub fn pipe(what: &'static str) -> Result<(OwnedFd, OwnedFd), IoError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|source| IoError::Pipe { what, source })
}

pub fn set_nonblocking(fd: BorrowedFd<'_>, what: &'static str) -> Result<(), IoError> {
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)
        .map_err(|source| IoError::Flags { what, source })?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags))
        .map_err(|source| IoError::Flags { what, source })?;
    Ok(())
}

pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool, what: &'static str) -> Result<(), IoError> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(flags))
        .map_err(|source| IoError::Flags { what, source })?;
    Ok(())
}

/// Grows a pipe's buffer (F_SETPIPE_SZ), returning the size it got. A
/// container writing fast then blocks and wakes us far less often; the
/// kernel allocates the pages only as data is queued, so an idle pipe
/// costs nothing more. Refusal (a lower `pipe-max-size`) is not an error:
/// the pipe keeps the size it had.
pub fn grow_pipe(fd: BorrowedFd<'_>, bytes: i32) -> Option<i32> {
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    let got = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
    (got > 0).then_some(got)
}

/// What a non-blocking read gave.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Data(usize),
    /// Nothing there now; poll again.
    WouldBlock,
    /// The other side is gone. A pty master reports this as EIO once the
    /// last slave descriptor is closed.
    Eof,
}

pub fn read_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<ReadOutcome> {
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(0) => return Ok(ReadOutcome::Eof),
            Ok(n) => return Ok(ReadOutcome::Data(n)),
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(ReadOutcome::WouldBlock),
            Err(nix::Error::EIO) => return Ok(ReadOutcome::Eof),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes what it can without blocking; `Ok(n)` may be short, and 0 when
/// the descriptor is full.
pub fn write_nonblocking(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::write(fd, data) {
            Ok(n) => return Ok(n),
            Err(nix::Error::EINTR) => continue,
            Err(nix::Error::EAGAIN) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// `poll(2)` over a caller-kept array (the event loop rebuilds it each
/// turn, without allocating once it has grown), retried on EINTR.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: the pointer and length come from a live, exclusive slice.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub fn pollfd(fd: BorrowedFd<'_>, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// Whether poll said a descriptor can be read, or is closed or broken
/// (a read then tells which).
pub fn readable(p: &libc::pollfd) -> bool {
    p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

pub fn writable(p: &libc::pollfd) -> bool {
    p.revents & (libc::POLLOUT | libc::POLLERR | libc::POLLHUP) != 0
}

/// Blocks until all of `data` is written, for descriptors that are ours to
/// wait on (the local terminal, a socket in blocking mode).
pub fn write_all_fd(fd: impl AsFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd.as_fd(), data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut p = [pollfd(fd.as_fd(), libc::POLLOUT)];
                poll(&mut p, -1)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipe_reads_data_then_would_block_then_eof() {
        let (r, w) = pipe("test").unwrap();
        set_nonblocking(r.as_fd(), "test read end").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            read_nonblocking(r.as_fd(), &mut buf).unwrap(),
            ReadOutcome::WouldBlock
        );
        assert_eq!(write_nonblocking(w.as_fd(), b"abc").unwrap(), 3);
        assert_eq!(
            read_nonblocking(r.as_fd(), &mut buf).unwrap(),
            ReadOutcome::Data(3)
        );
        assert_eq!(&buf[..3], b"abc");
        drop(w);
        assert_eq!(
            read_nonblocking(r.as_fd(), &mut buf).unwrap(),
            ReadOutcome::Eof
        );
    }

    #[test]
    fn full_pipe_write_returns_zero_instead_of_blocking() {
        let (_r, w) = pipe("test").unwrap();
        set_nonblocking(w.as_fd(), "test write end").unwrap();
        let chunk = [0u8; 65536];
        let mut total = 0;
        loop {
            let n = write_nonblocking(w.as_fd(), &chunk).unwrap();
            if n == 0 {
                break;
            }
            total += n;
            assert!(total < 64 << 20, "pipe never filled");
        }
        assert!(total >= 4096);
    }

    #[test]
    fn pipe_ends_are_cloexec_until_cleared() {
        let (r, _w) = pipe("test").unwrap();
        let get = |fd: &OwnedFd| {
            FdFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFD).unwrap())
        };
        assert!(get(&r).contains(FdFlag::FD_CLOEXEC));
        set_cloexec(r.as_fd(), false, "test").unwrap();
        assert!(!get(&r).contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn grown_pipe_holds_more_than_the_default() {
        let (_r, w) = pipe("test").unwrap();
        let got = grow_pipe(w.as_fd(), 1 << 20).unwrap();
        assert!(got >= 1 << 20);
        set_nonblocking(w.as_fd(), "test write end").unwrap();
        let chunk = vec![0u8; 1 << 20];
        assert_eq!(write_nonblocking(w.as_fd(), &chunk).unwrap(), 1 << 20);
    }

    #[test]
    fn poll_sees_readable_pipe() {
        let (r, w) = pipe("test").unwrap();
        let mut p = [pollfd(r.as_fd(), libc::POLLIN)];
        assert_eq!(poll(&mut p, 0).unwrap(), 0);
        write_all_fd(&w, b"x").unwrap();
        assert_eq!(poll(&mut p, 1000).unwrap(), 1);
        assert!(readable(&p[0]));
    }
}
