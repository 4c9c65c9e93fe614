//! The foreground half of `run` and `exec`: forward signals to the
//! container's process, proxy its pty to our stdio when there is one, reap,
//! and turn its end into runc's exit status (the code, or 128+signal).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Result, RuntimeError};

/// Blocks every signal for this (single-threaded) process and returns a
/// signalfd for them. Called right after the container starts: blocking
/// earlier would hand the blocked mask down to the container's process.
pub fn block_signals() -> Result<SignalFd> {
    let all = SigSet::all();
    all.thread_block()
        .map_err(|e| RuntimeError::sys("blocking signals", e))?;
    SignalFd::with_flags(&all, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| RuntimeError::sys("signalfd", e))
}

/// runc's exit status for a wait status.
fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reaps every child that has ended; returns the status of `pid` if it was
/// among them. Other children are the container's orphans (we are a
/// subreaper) or libcontainer's intermediate process.
fn reap(pid: Pid) -> Option<i32> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return found,
            Ok(st) => {
                if st.pid() == Some(pid) {
                    if let Some(code) = exit_code(st) {
                        found = Some(code);
                    }
                }
            }
        }
    }
}

/// Restores the caller's terminal mode when the proxy ends, however it ends.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter(fd: BorrowedFd<'_>) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

fn copy_winsize(from: i32, to: i32) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write one winsize struct.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn write_all(fd: i32, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        // SAFETY: writing from a valid buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR || Errno::last() == Errno::EAGAIN {
                continue;
            }
            return false;
        }
        data = &data[n as usize..];
    }
    true
}

fn read_some(fd: i32, buf: &mut [u8]) -> isize {
    // SAFETY: reading into a valid buffer.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }
}

/// Waits for `pid` to end, forwarding signals and proxying `pty` (if any)
/// to stdin/stdout. Returns runc's exit status.
pub fn wait(pid: Pid, sfd: &mut SignalFd, pty: Option<OwnedFd>) -> Result<i32> {
    let stdin = std::io::stdin();
    let _raw = match &pty {
        Some(_) if nix::unistd::isatty(0).unwrap_or(false) => RawMode::enter(stdin.as_fd()),
        _ => None,
    };
    if let Some(m) = &pty {
        copy_winsize(0, m.as_raw_fd());
    }
    let mut stdin_open = pty.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let mut status = reap(pid);
    loop {
        if let Some(code) = status {
            if let Some(m) = &pty {
                drain(m.as_raw_fd(), &mut buf);
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &pty {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(RuntimeError::sys("poll", e)),
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if !revents[0].is_empty() {
            while let Ok(Some(info)) = sfd.read_signal() {
                let signo = info.ssi_signo as i32;
                match Signal::try_from(signo) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGWINCH) => {
                        if let Some(m) = &pty {
                            copy_winsize(0, m.as_raw_fd());
                        }
                    }
                    Ok(sig) => {
                        let _ = kill(pid, sig);
                    }
                    Err(_) => {
                        // Real-time signals: nix has no enum for them.
                        // SAFETY: plain kill(2).
                        unsafe { libc::kill(pid.as_raw(), signo) };
                    }
                }
            }
            status = reap(pid);
        }
        if let Some(m) = &pty {
            let mfd = m.as_raw_fd();
            if revents.len() > 1 && !revents[1].is_empty() {
                let n = read_some(mfd, &mut buf);
                if n > 0 {
                    write_all(1, &buf[..n as usize]);
                } else {
                    // EIO: every slave end closed; wait for the exit itself.
                    status = status.or_else(|| wait_blocking(pid, sfd));
                }
            }
            if stdin_open && revents.len() > 2 && !revents[2].is_empty() {
                let n = read_some(0, &mut buf);
                if n > 0 {
                    write_all(mfd, &buf[..n as usize]);
                } else {
                    stdin_open = false;
                }
            }
        }
    }
}

fn wait_blocking(pid: Pid, _sfd: &mut SignalFd) -> Option<i32> {
    loop {
        match waitpid(None, None) {
            Ok(st) if st.pid() == Some(pid) => {
                if let Some(code) = exit_code(st) {
                    return Some(code);
                }
            }
            Ok(_) => {}
            Err(Errno::EINTR) => {}
            Err(_) => return Some(255),
        }
    }
}

/// Whatever the process printed just before it ended is still in the pty.
fn drain(fd: i32, buf: &mut [u8]) {
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    loop {
        let n = read_some(fd, buf);
        if n <= 0 {
            return;
        }
        write_all(1, &buf[..n as usize]);
    }
}

/// Makes this process a child subreaper, as runc does for `run` unless
/// `--no-subreaper`: orphans of a container without a pid namespace are
/// then reaped here rather than by the host's init.
pub fn become_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r != 0 {
        return Err(RuntimeError::io(
            "PR_SET_CHILD_SUBREAPER",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
