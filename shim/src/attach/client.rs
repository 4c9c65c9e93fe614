//! The attaching side: connects to a container's supervisor, forwards the
//! local stdin (watching for the detach keys), terminal size and signals,
//! and prints the container's output until it exits or we detach.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::frame::{Decoder, Frame};
use super::keys::{DetachMatcher, DEFAULT_DETACH_KEYS};
use super::AttachError;
use crate::container::{ExitRecord, Paths};
use crate::io::{self, RawModeGuard};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachOptions {
    /// Forward our stdin (`-i`); at its EOF the container's stdin is
    /// closed, as `docker run -i` does.
    pub stdin: bool,
    /// The container has a tty: raw local terminal, SIGWINCH forwarded.
    pub tty: bool,
    /// The bytes that detach (see [`super::parse_detach_keys`]); empty
    /// turns detaching off.
    pub detach_keys: Vec<u8>,
    /// Forward SIGINT and SIGTERM to the container (without a tty; with
    /// one, ctrl-c travels as a byte).
    pub sig_proxy: bool,
    /// Ask the supervisor to start its created container once attached, so
    /// that not a byte of output is missed (`run` without `-d`, `start -a`).
    pub start: bool,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            stdin: false,
            tty: false,
            detach_keys: DEFAULT_DETACH_KEYS.to_vec(),
            sig_proxy: true,
            start: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this (docker's) code.
    Exited(i32),
    /// The detach keys were typed; the container keeps running.
    Detached,
}

/// The local descriptors an attach session uses: the process's stdio in
/// [`attach`], pipes or a pty in tests.
pub(crate) struct LocalIo<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
}

/// Attaches to a running container. Call it from the main thread before
/// other threads exist: the forwarded signals are blocked and read from a
/// signalfd, which only works if no thread leaves them unblocked.
pub fn attach(paths: &Paths, id: &str, opts: &AttachOptions) -> Result<AttachEnd, AttachError> {
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let local = LocalIo {
        stdin: stdin.as_fd(),
        stdout: stdout.as_fd(),
        stderr: stderr.as_fd(),
    };
    attach_with(paths, id, opts, &local)
}

pub(crate) fn connect(paths: &Paths, id: &str) -> Result<UnixStream, AttachError> {
    let path = paths.attach_socket(id);
    UnixStream::connect(&path).map_err(|source| match source.kind() {
        // No socket, or one whose supervisor is dead (killed, or gone
        // since we looked).
        ErrorKind::NotFound | ErrorKind::ConnectionRefused => AttachError::NotRunning {
            id: id.to_string(),
            path: path.clone(),
        },
        _ => AttachError::Connect {
            id: id.to_string(),
            path: path.clone(),
            source,
        },
    })
}

/// Restores the signal mask on every way out of an attach session.
struct MaskGuard {
    old: SigSet,
}

impl Drop for MaskGuard {
    fn drop(&mut self) {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.old), None);
    }
}

struct Session<'a> {
    id: &'a str,
    paths: &'a Paths,
    sock: UnixStream,
}

impl Session<'_> {
    fn send(&mut self, f: &Frame) -> Result<(), AttachError> {
        self.sock
            .write_all(&f.to_bytes())
            .map_err(|source| AttachError::Io {
                id: self.id.to_string(),
                what: "sending to the supervisor",
                source,
            })
    }

    /// Reads what the supervisor sent into `decoder`; false once it has
    /// hung up (end of stream, or reset).
    fn receive(&mut self, decoder: &mut Decoder, buf: &mut [u8]) -> Result<bool, AttachError> {
        match self.sock.read(buf) {
            Ok(0) => Ok(false),
            Ok(n) => {
                decoder.feed(&buf[..n]);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(true),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(false),
            Err(source) => Err(AttachError::Io {
                id: self.id.to_string(),
                what: "reading from the supervisor",
                source,
            }),
        }
    }

    /// The next whole frame `decoder` holds.
    fn next_frame(&self, decoder: &mut Decoder) -> Result<Option<Frame>, AttachError> {
        decoder
            .next_frame()
            .map_err(|source| AttachError::Protocol {
                id: self.id.to_string(),
                source,
            })
    }

    /// The end when the socket closed without an exit frame: the
    /// supervisor may have recorded the exit before it went.
    fn hangup(&self) -> Result<AttachEnd, AttachError> {
        match ExitRecord::load(&self.paths.exit(self.id)) {
            Some(rec) => Ok(AttachEnd::Exited(rec.code)),
            None => Err(AttachError::Hangup {
                id: self.id.to_string(),
            }),
        }
    }
}

pub(crate) fn attach_with(
    paths: &Paths,
    id: &str,
    opts: &AttachOptions,
    local: &LocalIo<'_>,
) -> Result<AttachEnd, AttachError> {
    let sys = |what: &'static str| {
        move |source| AttachError::Sys {
            id: id.to_string(),
            what,
            source,
        }
    };
    let sock = connect(paths, id)?;
    let mut s = Session { id, paths, sock };

    let local_tty = nix::unistd::isatty(local.stdin.as_raw_fd()).unwrap_or(false);
    let _raw = if opts.tty && opts.stdin && local_tty {
        Some(
            RawModeGuard::new(local.stdin).map_err(|source| AttachError::Terminal {
                id: id.to_string(),
                source,
            })?,
        )
    } else {
        None
    };

    let mut mask = SigSet::empty();
    if opts.tty {
        mask.add(Signal::SIGWINCH);
    } else if opts.sig_proxy {
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
    }
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old))
        .map_err(sys("blocking signals"))?;
    let _mask_guard = MaskGuard { old };
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("creating a signalfd"))?;

    s.send(&Frame::Hello {
        stdin: opts.stdin,
        stdout: true,
        stderr: true,
    })?;
    if opts.tty {
        if let Some(size) = io::get_winsize(local.stdout).or_else(|| io::get_winsize(local.stdin)) {
            s.send(&Frame::Resize {
                rows: size.rows,
                cols: size.cols,
            })?;
        }
    }

    if opts.start {
        s.send(&Frame::Start)?;
    }

    let mut matcher = DetachMatcher::new(if opts.stdin {
        opts.detach_keys.clone()
    } else {
        Vec::new()
    });
    let mut stdin_open = opts.stdin;
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut typed = Vec::with_capacity(4096);
    loop {
        let mut pfds = vec![
            io::pollfd(s.sock.as_fd(), libc::POLLIN),
            io::pollfd(sigfd.as_fd(), libc::POLLIN),
        ];
        if stdin_open {
            pfds.push(io::pollfd(local.stdin, libc::POLLIN));
        }
        io::poll(&mut pfds, -1).map_err(|source| AttachError::Io {
            id: id.to_string(),
            what: "waiting for input",
            source,
        })?;

        if io::readable(&pfds[0]) {
            if !s.receive(&mut decoder, &mut buf)? {
                return s.hangup();
            }
            while let Some(f) = s.next_frame(&mut decoder)? {
                let out = |fd, data: &[u8]| {
                    io::write_all_fd(fd, data).map_err(|source| AttachError::Io {
                        id: id.to_string(),
                        what: "writing output",
                        source,
                    })
                };
                match f {
                    Frame::Stdout(d) => out(local.stdout, &d)?,
                    Frame::Stderr(d) => out(local.stderr, &d)?,
                    Frame::Exit(code) => return Ok(AttachEnd::Exited(code)),
                    Frame::Error(message) => {
                        return Err(AttachError::Remote {
                            id: id.to_string(),
                            message,
                        })
                    }
                    _ => {}
                }
            }
        }

        if io::readable(&pfds[1]) {
            while let Ok(Some(info)) = sigfd.read_signal() {
                let signo = info.ssi_signo as i32;
                if signo == libc::SIGWINCH {
                    if let Some(size) =
                        io::get_winsize(local.stdout).or_else(|| io::get_winsize(local.stdin))
                    {
                        s.send(&Frame::Resize {
                            rows: size.rows,
                            cols: size.cols,
                        })?;
                    }
                } else {
                    s.send(&Frame::Signal(signo))?;
                }
            }
        }

        if stdin_open && io::readable(&pfds[2]) {
            match nix::unistd::read(local.stdin.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    stdin_open = false;
                    s.send(&Frame::StdinClose)?;
                }
                Ok(n) => {
                    typed.clear();
                    let detach = matcher.feed(&buf[..n], &mut typed);
                    if !typed.is_empty() {
                        s.send(&Frame::Stdin(typed.clone()))?;
                    }
                    if detach {
                        return Ok(AttachEnd::Detached);
                    }
                }
                Err(nix::Error::EINTR) | Err(nix::Error::EAGAIN) => {}
                Err(e) => {
                    // A broken stdin ends our input, not the session.
                    tracing::warn!(container = id, "reading stdin: {e}");
                    stdin_open = false;
                    s.send(&Frame::StdinClose)?;
                }
            }
        }
    }
}

/// Asks the supervisor to `runtime start` its created container: Ok(Err)
/// carries the runtime's refusal.
pub(crate) fn request_start(paths: &Paths, id: &str) -> Result<Result<(), String>, AttachError> {
    let sock = connect(paths, id)?;
    let mut s = Session { id, paths, sock };
    s.send(&Frame::Start)?;
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 4096];
    loop {
        if !s.receive(&mut decoder, &mut buf)? {
            return Err(AttachError::Hangup { id: id.to_string() });
        }
        while let Some(f) = s.next_frame(&mut decoder)? {
            match f {
                Frame::Started => return Ok(Ok(())),
                Frame::Error(message) => return Ok(Err(message)),
                // The container may exit as soon as it starts.
                Frame::Exit(_) => return Ok(Ok(())),
                _ => {}
            }
        }
    }
}
