//! The supervisor's start: detach, become subreaper, create (and start)
//! the container through the runtime, report to the spawning CLI.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use keel_runtime_client::{CreateOpts, Io, Runtime};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, Pid};

use super::event_loop::{ContainerIo, Loop};
use super::spawn::Report;
use super::{runtime_error, Result, SupervisorError, EXIT_OWN_ERROR, REPORT_FD_ENV, START_ENV};
use crate::container::{ContainerMeta, Paths};
use crate::io::ConsoleSocket;
use crate::log::{LogOptions, LogWriter};

/// How long the pty master may take to arrive after `create` returned.
const CONSOLE_TIMEOUT_MS: i32 = 10_000;

/// The `__supervise ID` subcommand; returns the process's exit code. Run
/// it only from a fresh single-threaded process: it forks and carries on
/// in the child.
pub fn main(paths: &Paths, id: &str) -> i32 {
    let report = take_report_pipe();
    let start = std::env::var_os(START_ENV).is_some_and(|v| v == "1");
    std::env::remove_var(REPORT_FD_ENV);
    std::env::remove_var(START_ENV);
    let mut reporter = Reporter { pipe: report };

    // The second fork of the double fork: the session leader exits, so the
    // supervisor can never reacquire a controlling terminal, and it is
    // reparented away from the CLI.
    // SAFETY: called before any thread is started (see above).
    match unsafe { nix::unistd::fork() } {
        // SAFETY: _exit skips the atexit work that belongs to the child.
        Ok(ForkResult::Parent { .. }) => unsafe { libc::_exit(0) },
        Ok(ForkResult::Child) => {}
        Err(source) => {
            reporter.failed(&SupervisorError::Sys {
                id: id.to_string(),
                what: "forking the supervisor",
                source,
            });
            return EXIT_OWN_ERROR;
        }
    }
    match run(paths, id, start, &mut reporter) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(container = id, "supervisor: {e}");
            reporter.failed(&e);
            EXIT_OWN_ERROR
        }
    }
}

fn take_report_pipe() -> Option<File> {
    let fd: i32 = std::env::var(REPORT_FD_ENV).ok()?.parse().ok()?;
    // Only a descriptor that is open is taken; a stale variable must not
    // make us close or write to something else.
    // SAFETY: F_GETFD only inspects the descriptor table.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: spawn() made this descriptor for us and nothing else in this
    // process knows it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // Not to be inherited by the runtime (and so by the container), or the
    // CLI's read of the report would wait on the container.
    let _ = crate::io::set_cloexec(owned.as_fd(), true, "report pipe");
    Some(File::from(owned))
}

/// The pipe back to the spawning CLI; used once, then closed.
struct Reporter {
    pipe: Option<File>,
}

impl Reporter {
    fn send(&mut self, report: &Report) {
        if let Some(mut pipe) = self.pipe.take() {
            let mut line = serde_json::to_vec(report).unwrap_or_default();
            line.push(b'\n');
            if let Err(e) = pipe.write_all(&line) {
                tracing::warn!("supervisor: cannot report to the CLI: {e}");
            }
        }
    }

    fn failed(&mut self, err: &SupervisorError) {
        let (message, runtime) = match err {
            SupervisorError::Runtime { message, .. } => (message.clone(), true),
            other => (other.to_string(), false),
        };
        self.send(&Report::Failed {
            code: err.exit_code(),
            message,
            runtime,
        });
    }
}

/// Removes the run dir's files (pid files, sockets) and the dir itself on
/// every way out of the supervisor.
pub(super) struct RunDirGuard {
    dir: PathBuf,
}

impl Drop for RunDirGuard {
    fn drop(&mut self) {
        for name in [
            "attach.sock",
            "supervisor.pid",
            "container.pid",
            "console.sock",
        ] {
            let _ = super::remove_if_exists(&self.dir.join(name));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn fs_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SupervisorError {
    let path = path.to_path_buf();
    move |source| SupervisorError::Fs { what, path, source }
}

fn load_meta(paths: &Paths, id: &str) -> Result<ContainerMeta> {
    let path = paths.meta(id);
    let data = std::fs::read(&path).map_err(|source| SupervisorError::Meta {
        id: id.to_string(),
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| SupervisorError::MetaParse {
        id: id.to_string(),
        path,
        source,
    })
}

fn run(paths: &Paths, id: &str, start: bool, reporter: &mut Reporter) -> Result<()> {
    let sys = |what: &'static str| {
        move |source| SupervisorError::Sys {
            id: id.to_string(),
            what,
            source,
        }
    };
    let ioe = |source| SupervisorError::Io {
        id: id.to_string(),
        source,
    };
    // First, so that every failure below leaves no run dir behind.
    let run_dir = paths.run_dir(id);
    std::fs::create_dir_all(&run_dir).map_err(fs_err("creating run dir", &run_dir))?;
    let guard = RunDirGuard {
        dir: run_dir.clone(),
    };
    // Orphans of the container (and its init, once the runtime's create
    // has exited) become our children, so we see the init's exit status.
    // SAFETY: a plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(sys("becoming child subreaper")(nix::Error::last()));
    }
    let meta = load_meta(paths, id)?;

    // SIGCHLD is only ever read from the signalfd; children get a clean
    // mask because std's Command resets it before exec.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys("blocking SIGCHLD"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("creating a signalfd"))?;

    let pid_path = paths.supervisor_pid(id);
    std::fs::write(&pid_path, format!("{}\n", std::process::id()))
        .map_err(fs_err("writing pid file", &pid_path))?;
    let sock_path = paths.attach_socket(id);
    super::remove_if_exists(&sock_path).map_err(fs_err("removing stale socket", &sock_path))?;
    let listener =
        UnixListener::bind(&sock_path).map_err(fs_err("binding attach socket", &sock_path))?;
    listener
        .set_nonblocking(true)
        .map_err(fs_err("configuring attach socket", &sock_path))?;

    let runtime = Runtime::new(&meta.runtime).root(paths.runtime_root());
    let container_pid_path = run_dir.join("container.pid");
    let mut opts = CreateOpts {
        pid_file: Some(container_pid_path.clone()),
        ..CreateOpts::default()
    };
    let bundle = paths.bundle(id);

    let abort = |runtime: &Runtime| {
        if let Err(e) = runtime.delete(id, true) {
            tracing::warn!(container = id, "cleanup after a failed start: {e}");
        }
    };

    let io = if meta.tty {
        let console = ConsoleSocket::bind(&run_dir.join("console.sock")).map_err(ioe)?;
        opts.console_socket = Some(console.path().to_path_buf());
        if let Err(e) = runtime.create_with_io(id, &bundle, &opts, Io::null()) {
            abort(&runtime);
            return Err(runtime_error(id, e));
        }
        match console.receive_master(CONSOLE_TIMEOUT_MS) {
            Ok(master) => ContainerIo::pty(master, meta.stdin).map_err(ioe)?,
            Err(e) => {
                abort(&runtime);
                return Err(ioe(e));
            }
        }
    } else {
        let (stdin_ours, stdin_theirs) = if meta.stdin {
            let (r, w) = crate::io::pipe("container stdin").map_err(ioe)?;
            (Some(w), Stdio::from(r))
        } else {
            (None, Stdio::null())
        };
        let (out_r, out_w) = crate::io::pipe("container stdout").map_err(ioe)?;
        let (err_r, err_w) = crate::io::pipe("container stderr").map_err(ioe)?;
        let given = Io {
            stdin: stdin_theirs,
            stdout: Stdio::from(out_w),
            stderr: Stdio::from(err_w),
        };
        if let Err(e) = runtime.create_with_io(id, &bundle, &opts, given) {
            abort(&runtime);
            return Err(runtime_error(id, e));
        }
        ContainerIo::pipes(stdin_ours, out_r, err_r).map_err(ioe)?
    };

    let container_pid = match read_pid(&container_pid_path) {
        Ok(pid) => pid,
        Err(e) => {
            abort(&runtime);
            return Err(e);
        }
    };
    let log_path = paths.log(id);
    let log = match LogWriter::open(
        &log_path,
        LogOptions {
            max_size: meta.log_max_size,
            max_files: meta.log_max_files.saturating_sub(1),
        },
    ) {
        Ok(log) => log,
        Err(e) => {
            abort(&runtime);
            return Err(fs_err("opening log", &log_path)(e));
        }
    };
    let mut started_at = None;
    if start {
        if let Err(e) = runtime.start(id) {
            abort(&runtime);
            return Err(runtime_error(id, e));
        }
        started_at = Some(now());
    }
    reporter.send(&Report::Ready {
        supervisor_pid: std::process::id() as i32,
        container_pid: container_pid.as_raw(),
    });
    tracing::info!(container = id, pid = container_pid.as_raw(), "supervising");

    let mut lp = Loop::new(
        id.to_string(),
        meta,
        runtime,
        container_pid,
        started_at,
        io,
        log,
        listener,
        sigfd,
    );
    // The setup's heap (config parsing, the runtime calls) is not needed
    // again: give it back, since one of these idles per container.
    // SAFETY: malloc_trim only releases free memory.
    unsafe { libc::malloc_trim(0) };
    let status = lp.run();
    lp.finish(paths, status);
    drop(guard);
    Ok(())
}

fn read_pid(path: &Path) -> Result<Pid> {
    let text = std::fs::read_to_string(path).map_err(fs_err("reading container pid file", path))?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 0)
        .map(Pid::from_raw)
        .ok_or_else(|| SupervisorError::Fs {
            what: "no pid in",
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, text.trim().to_string()),
        })
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
