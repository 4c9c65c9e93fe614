//! The local terminal of an attached client (raw mode, restored on every
//! exit path) and window sizes on either side of a pty.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use nix::sys::termios::{self, SetArg, Termios};

use super::IoError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Winsize {
    pub rows: u16,
    pub cols: u16,
}

/// The size of the terminal on `fd`, or None when it is not a terminal.
pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(Winsize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sets the size on a pty master; the kernel sends SIGWINCH to the
/// foreground process group of the slave side.
pub fn set_winsize(fd: BorrowedFd<'_>, size: Winsize) -> Result<(), IoError> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ only reads the struct we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r == 0 {
        Ok(())
    } else {
        Err(IoError::Terminal {
            fd: fd.as_raw_fd(),
            source: nix::Error::last(),
        })
    }
}

/// Puts a terminal in raw mode for as long as the guard lives, so keys
/// (ctrl-c, the detach keys) reach the container instead of the local line
/// discipline.
pub struct RawModeGuard {
    fd: RawFd,
    saved: Termios,
}

impl RawModeGuard {
    pub fn new(fd: BorrowedFd<'_>) -> Result<RawModeGuard, IoError> {
        let err = |source| IoError::Terminal {
            fd: fd.as_raw_fd(),
            source,
        };
        let saved = termios::tcgetattr(fd).map_err(err)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).map_err(err)?;
        Ok(RawModeGuard {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        // SAFETY: the descriptor was borrowed from the caller's terminal,
        // which outlives the attach session holding this guard.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd.as_fd(), SetArg::TCSAFLUSH, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::pty::openpty;
    use nix::sys::termios::LocalFlags;

    #[test]
    fn winsize_set_on_master_is_seen_on_slave() {
        let pty = openpty(None, None).unwrap();
        let size = Winsize {
            rows: 33,
            cols: 101,
        };
        set_winsize(pty.master.as_fd(), size).unwrap();
        assert_eq!(get_winsize(pty.slave.as_fd()), Some(size));
    }

    #[test]
    fn winsize_of_a_pipe_is_none() {
        let (r, _w) = crate::io::pipe("test").unwrap();
        assert_eq!(get_winsize(r.as_fd()), None);
        assert!(set_winsize(r.as_fd(), Winsize { rows: 1, cols: 1 }).is_err());
    }

    #[test]
    fn raw_mode_is_restored_on_drop() {
        let pty = openpty(None, None).unwrap();
        let before = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert!(before.local_flags.contains(LocalFlags::ICANON));
        {
            let _g = RawModeGuard::new(pty.slave.as_fd()).unwrap();
            let raw = termios::tcgetattr(pty.slave.as_fd()).unwrap();
            assert!(!raw.local_flags.contains(LocalFlags::ICANON));
            assert!(!raw.local_flags.contains(LocalFlags::ECHO));
        }
        let after = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
        assert_eq!(after.input_flags, before.input_flags);
    }

    #[test]
    fn raw_mode_on_a_pipe_is_an_error() {
        let (r, _w) = crate::io::pipe("test").unwrap();
        assert!(matches!(
            RawModeGuard::new(r.as_fd()),
            Err(IoError::Terminal { .. })
        ));
    }
}
