//! The supervisor's single-threaded `poll(2)` loop: container output to the
//! log and to attached clients, clients' stdin and requests to the
//! container, SIGCHLD to the exit status.
//!
//! The container must never wait on us: its output is read as soon as it
//! is there, the log write is the only thing done with it synchronously,
//! and each client gets a bounded queue on a non-blocking socket (a client
//! that lets it fill is disconnected, never waited for).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use keel_runtime_client::Runtime;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::attach::frame::{self, kind, Decoder, Frame, MAX_PAYLOAD};
use crate::container::ContainerMeta;
use crate::io::{self, IoError, ReadOutcome};
use crate::log::{LogWriter, Stream};

/// Output queued for one client before it is dropped as too slow.
const CLIENT_QUEUE_MAX: usize = 1 << 20;
/// Stdin from clients not yet taken by the container; past this, clients
/// are not read until it drains (backpressure to them, not to the
/// container's output).
const STDIN_QUEUE_MAX: usize = 64 * 1024;
/// Reads from one output descriptor per wakeup, so that one busy stream
/// does not starve the other and the clients.
const READS_PER_TURN: usize = 8;
/// Capacity asked for the container's stdout and stderr pipes.
const OUTPUT_PIPE_SIZE: i32 = 1 << 20;
/// After the init exited, how long output may keep coming (from processes
/// that still hold the pipes) before we stop reading it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The log is flushed once output has paused this long.
const LOG_FLUSH_IDLE_MS: i32 = 100;

/// The supervisor's ends of the container's stdio.
pub(super) struct ContainerIo {
    outputs: Vec<Output>,
    stdin: Option<OwnedFd>,
    /// With a tty: the master again, for TIOCSWINSZ.
    pty: Option<OwnedFd>,
}

struct Output {
    fd: OwnedFd,
    stream: Stream,
}

impl ContainerIo {
    pub fn pipes(
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> Result<ContainerIo, IoError> {
        io::set_nonblocking(stdout.as_fd(), "container stdout")?;
        io::set_nonblocking(stderr.as_fd(), "container stderr")?;
        for fd in [&stdout, &stderr] {
            io::grow_pipe(fd.as_fd(), OUTPUT_PIPE_SIZE);
        }
        if let Some(s) = &stdin {
            io::set_nonblocking(s.as_fd(), "container stdin")?;
        }
        Ok(ContainerIo {
            outputs: vec![
                Output {
                    fd: stdout,
                    stream: Stream::Stdout,
                },
                Output {
                    fd: stderr,
                    stream: Stream::Stderr,
                },
            ],
            stdin,
            pty: None,
        })
    }

    pub fn pty(master: OwnedFd, stdin: bool) -> Result<ContainerIo, IoError> {
        io::set_nonblocking(master.as_fd(), "pty master")?;
        let dup = |what| {
            master.try_clone().map_err(|e| IoError::Flags {
                what,
                source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EBADF)),
            })
        };
        let input = if stdin {
            Some(dup("pty master (stdin)")?)
        } else {
            None
        };
        let resize = dup("pty master (resize)")?;
        Ok(ContainerIo {
            outputs: vec![Output {
                fd: master,
                stream: Stream::Stdout,
            }],
            stdin: input,
            pty: Some(resize),
        })
    }
}

pub(super) struct Client {
    sock: UnixStream,
    decoder: Decoder,
    out: Vec<u8>,
    sent: usize,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    dead: bool,
}

impl Client {
    fn new(sock: UnixStream) -> Client {
        Client {
            sock,
            decoder: Decoder::new(),
            out: Vec::new(),
            sent: 0,
            stdin: false,
            stdout: false,
            stderr: false,
            dead: false,
        }
    }

    fn queued(&self) -> usize {
        self.out.len() - self.sent
    }

    fn push_data(&mut self, k: u8, data: &[u8]) {
        if self.dead {
            return;
        }
        if self.queued() + data.len() + frame::HEADER > CLIENT_QUEUE_MAX {
            tracing::warn!(
                "attach client too slow: {} bytes queued, disconnecting",
                self.queued()
            );
            self.dead = true;
            return;
        }
        frame::encode_data(k, data, &mut self.out);
        self.flush();
    }

    pub(super) fn push(&mut self, f: &Frame) {
        if !self.dead {
            f.encode(&mut self.out);
            self.flush();
        }
    }

    pub(super) fn flush(&mut self) {
        while self.queued() > 0 && !self.dead {
            match io::write_nonblocking(self.sock.as_fd(), &self.out[self.sent..]) {
                Ok(0) => break,
                Ok(n) => self.sent += n,
                Err(_) => self.dead = true,
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            if self.out.capacity() > 64 * 1024 {
                // A burst for a slow client should not stay resident.
                self.out = Vec::new();
            }
        } else if self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Whether output is still queued for a live client.
    pub(super) fn pending(&self) -> bool {
        !self.dead && self.queued() > 0
    }

    pub(super) fn sock(&self) -> &UnixStream {
        &self.sock
    }
}

pub(super) struct Loop {
    pub(super) id: String,
    pub(super) meta: ContainerMeta,
    pub(super) runtime: Runtime,
    pid: Pid,
    pub(super) started_at: Option<String>,
    outputs: Vec<Output>,
    stdin: Option<OwnedFd>,
    stdin_pending: Vec<u8>,
    close_stdin_when_drained: bool,
    pty: Option<OwnedFd>,
    pub(super) log: LogWriter,
    log_dirty: bool,
    log_failed: bool,
    pub(super) listener: Option<UnixListener>,
    sigfd: SignalFd,
    pub(super) clients: Vec<Client>,
    exit: Option<WaitStatus>,
    buf: Box<[u8]>,
    pfds: Vec<libc::pollfd>,
}

/// What a poll slot stands for.
#[derive(Clone, Copy)]
enum Slot {
    Signals,
    Listener,
    Output(usize),
    Stdin,
    Client(usize),
}

impl Loop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        meta: ContainerMeta,
        runtime: Runtime,
        pid: Pid,
        started_at: Option<String>,
        io: ContainerIo,
        log: LogWriter,
        listener: UnixListener,
        sigfd: SignalFd,
    ) -> Loop {
        Loop {
            id,
            meta,
            runtime,
            pid,
            started_at,
            outputs: io.outputs,
            stdin: io.stdin,
            stdin_pending: Vec::new(),
            close_stdin_when_drained: false,
            pty: io.pty,
            log,
            log_dirty: false,
            log_failed: false,
            listener: Some(listener),
            sigfd,
            clients: Vec::new(),
            exit: None,
            buf: vec![0u8; MAX_PAYLOAD].into_boxed_slice(),
            pfds: Vec::new(),
        }
    }

    /// Serves until the container's init has exited and its output is
    /// drained; returns the init's wait status.
    pub fn run(&mut self) -> WaitStatus {
        let mut slots: Vec<Slot> = Vec::new();
        let mut drain_deadline: Option<Instant> = None;
        // SIGCHLD may have come before the loop (a container that exits at
        // once): look before the first wait.
        self.reap();
        loop {
            if let Some(status) = self.exit {
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_TIMEOUT);
                if self.outputs.is_empty() || Instant::now() >= deadline {
                    return status;
                }
            }
            self.pfds.clear();
            slots.clear();
            let mut add =
                |pfds: &mut Vec<libc::pollfd>, fd: std::os::fd::BorrowedFd<'_>, ev, slot| {
                    pfds.push(io::pollfd(fd, ev));
                    slots.push(slot);
                };
            add(
                &mut self.pfds,
                self.sigfd.as_fd(),
                libc::POLLIN,
                Slot::Signals,
            );
            if let Some(l) = &self.listener {
                add(&mut self.pfds, l.as_fd(), libc::POLLIN, Slot::Listener);
            }
            for (i, o) in self.outputs.iter().enumerate() {
                add(&mut self.pfds, o.fd.as_fd(), libc::POLLIN, Slot::Output(i));
            }
            if let Some(s) = &self.stdin {
                if !self.stdin_pending.is_empty() {
                    add(&mut self.pfds, s.as_fd(), libc::POLLOUT, Slot::Stdin);
                }
            }
            let read_clients = self.stdin_pending.len() < STDIN_QUEUE_MAX;
            for (i, c) in self.clients.iter().enumerate() {
                let mut ev = 0;
                if read_clients {
                    ev |= libc::POLLIN;
                }
                if c.queued() > 0 {
                    ev |= libc::POLLOUT;
                }
                add(&mut self.pfds, c.sock.as_fd(), ev, Slot::Client(i));
            }

            let timeout = match (drain_deadline, self.log_dirty) {
                (Some(d), _) => d
                    .saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(LOG_FLUSH_IDLE_MS as u128) as i32,
                (None, true) => LOG_FLUSH_IDLE_MS,
                (None, false) => -1,
            };
            let ready = match io::poll(&mut self.pfds, timeout) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(container = %self.id, "poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if ready == 0 {
                self.flush_log();
                continue;
            }

            let mut ready_outputs = Vec::new();
            let mut accept = false;
            let mut stdin_ready = false;
            let mut client_events = Vec::new();
            let mut sig = false;
            for (p, slot) in self.pfds.iter().zip(slots.iter()) {
                if p.revents == 0 {
                    continue;
                }
                match *slot {
                    Slot::Signals => sig = true,
                    Slot::Listener => accept = true,
                    Slot::Output(i) => ready_outputs.push(i),
                    Slot::Stdin => stdin_ready = true,
                    Slot::Client(i) => client_events.push((i, io::readable(p), io::writable(p))),
                }
            }
            // Output first: it is what must never back up.
            let mut gone = Vec::new();
            for i in ready_outputs {
                if self.read_output(i) {
                    gone.push(i);
                }
            }
            for i in gone.into_iter().rev() {
                self.outputs.remove(i);
            }
            if sig {
                self.reap();
            }
            if stdin_ready {
                self.write_stdin();
            }
            let mut frames = Vec::new();
            for (i, readable, writable) in client_events {
                if writable {
                    self.clients[i].flush();
                }
                if readable {
                    self.read_client(i, &mut frames);
                }
            }
            for (i, f) in frames {
                self.handle(i, f);
            }
            if accept {
                self.accept();
            }
            self.clients.retain(|c| !c.dead);
        }
    }

    /// Reads what one output has; true when it is closed for good.
    fn read_output(&mut self, i: usize) -> bool {
        for _ in 0..READS_PER_TURN {
            let stream = self.outputs[i].stream;
            match io::read_nonblocking(self.outputs[i].fd.as_fd(), &mut self.buf) {
                Ok(ReadOutcome::Data(n)) => {
                    let data = &self.buf[..n];
                    if let Err(e) = self.log.write(stream, data) {
                        if !self.log_failed {
                            tracing::error!(container = %self.id, "writing {}: {e}", self.log.path().display());
                            self.log_failed = true;
                        }
                    }
                    self.log_dirty = true;
                    let k = match stream {
                        Stream::Stdout => kind::STDOUT,
                        Stream::Stderr => kind::STDERR,
                    };
                    for c in &mut self.clients {
                        let wanted = match stream {
                            Stream::Stdout => c.stdout,
                            Stream::Stderr => c.stderr,
                        };
                        if wanted {
                            c.push_data(k, data);
                        }
                    }
                    if n < self.buf.len() {
                        return false;
                    }
                }
                Ok(ReadOutcome::WouldBlock) => return false,
                Ok(ReadOutcome::Eof) => return true,
                Err(e) => {
                    tracing::warn!(container = %self.id, "reading {}: {e}", stream.name());
                    return true;
                }
            }
        }
        false
    }

    fn log_error(&mut self, e: std::io::Error) {
        // Once is enough: a full disk would otherwise log on every read.
        if !self.log_failed {
            tracing::error!(container = %self.id, "writing {}: {e}", self.log.path().display());
            self.log_failed = true;
        }
    }

    pub(super) fn flush_log(&mut self) {
        if self.log_dirty {
            if let Err(e) = self.log.flush() {
                self.log_error(e);
            }
            self.log_dirty = false;
        }
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.sigfd.read_signal() {}
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if status.pid() == Some(self.pid)
                        && matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..))
                    {
                        tracing::info!(container = %self.id, ?status, "container exited");
                        self.exit = Some(status);
                    }
                }
            }
        }
    }

    fn accept(&mut self) {
        let Some(l) = &self.listener else { return };
        loop {
            match l.accept() {
                Ok((sock, _)) => {
                    if sock.set_nonblocking(true).is_ok() {
                        self.clients.push(Client::new(sock));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!(container = %self.id, "accepting attach connection: {e}");
                    break;
                }
            }
        }
    }

    fn read_client(&mut self, i: usize, frames: &mut Vec<(usize, Frame)>) {
        let c = &mut self.clients[i];
        match io::read_nonblocking(c.sock.as_fd(), &mut self.buf) {
            Ok(ReadOutcome::Data(n)) => c.decoder.feed(&self.buf[..n]),
            Ok(ReadOutcome::WouldBlock) => return,
            Ok(ReadOutcome::Eof) | Err(_) => {
                c.dead = true;
                return;
            }
        }
        loop {
            match c.decoder.next_frame() {
                Ok(Some(f)) => frames.push((i, f)),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(container = %self.id, "attach client: {e}");
                    c.push(&Frame::Error(e.to_string()));
                    c.dead = true;
                    break;
                }
            }
        }
    }

    fn handle(&mut self, i: usize, f: Frame) {
        match f {
            Frame::Hello {
                stdin,
                stdout,
                stderr,
            } => {
                let c = &mut self.clients[i];
                c.stdin = stdin;
                c.stdout = stdout;
                // A tty has one stream, sent as stdout.
                c.stderr = stderr && self.pty.is_none();
                if self.pty.is_some() && stderr && !stdout {
                    c.stdout = true;
                }
            }
            Frame::Stdin(data) => {
                if self.clients[i].stdin && self.stdin.is_some() && !self.close_stdin_when_drained {
                    self.stdin_pending.extend_from_slice(&data);
                    self.write_stdin();
                }
            }
            Frame::StdinClose => {
                // A pty is shared by every attach and has no EOF of its own.
                if self.clients[i].stdin && self.pty.is_none() && self.stdin.is_some() {
                    self.close_stdin_when_drained = true;
                    self.write_stdin();
                }
            }
            Frame::Resize { rows, cols } => {
                if let Some(pty) = &self.pty {
                    if let Err(e) = io::set_winsize(pty.as_fd(), io::Winsize { rows, cols }) {
                        tracing::warn!(container = %self.id, "resize: {e}");
                    }
                }
            }
            Frame::Signal(n) => {
                if let Err(e) = self.runtime.kill(&self.id, &n.to_string(), false) {
                    self.clients[i].push(&Frame::Error(e.to_string()));
                }
            }
            Frame::Start => {
                let reply = if self.started_at.is_some() {
                    Frame::Error(format!("container {} is already started", self.id))
                } else {
                    match self.runtime.start(&self.id) {
                        Ok(()) => {
                            self.started_at = Some(super::launch::now());
                            Frame::Started
                        }
                        Err(keel_runtime_client::Error::Failed { message, .. }) => {
                            Frame::Error(message)
                        }
                        Err(e) => Frame::Error(e.to_string()),
                    }
                };
                self.clients[i].push(&reply);
            }
            other => {
                let c = &mut self.clients[i];
                c.push(&Frame::Error(format!(
                    "attach protocol: {other:?} is not a client message"
                )));
                c.dead = true;
            }
        }
    }

    fn write_stdin(&mut self) {
        let Some(fd) = &self.stdin else {
            self.stdin_pending.clear();
            return;
        };
        while !self.stdin_pending.is_empty() {
            match io::write_nonblocking(fd.as_fd(), &self.stdin_pending) {
                Ok(0) => return,
                Ok(n) => {
                    self.stdin_pending.drain(..n);
                }
                Err(e) => {
                    // The container closed its stdin; what it did not read
                    // is lost, as it would be on a terminal.
                    tracing::debug!(container = %self.id, "container stdin: {e}");
                    self.stdin = None;
                    self.stdin_pending = Vec::new();
                    return;
                }
            }
        }
        if self.stdin_pending.capacity() > STDIN_QUEUE_MAX {
            self.stdin_pending = Vec::new();
        }
        if self.close_stdin_when_drained {
            self.stdin = None;
        }
    }
}
