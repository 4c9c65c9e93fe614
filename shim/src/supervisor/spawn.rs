//! The CLI's side: starting a detached supervisor and reading its report,
//! and asking a live one to start its created container.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    exit_code_for_runtime_error, Result, SpawnOutcome, SupervisorError, REPORT_FD_ENV, START_ENV,
    SUPERVISE_COMMAND, SUPERVISOR_BINARY,
};
use crate::attach::client::request_start;
use crate::container::{ContainerMeta, Paths};

/// How long `run` waits for the runtime's create and start before giving
/// up on the supervisor (it keeps running and cleans up by itself).
const REPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// One JSON line from the supervisor to the spawning CLI.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    Ready {
        supervisor_pid: i32,
        container_pid: i32,
    },
    Failed {
        code: i32,
        message: String,
        /// The runtime's refusal, as opposed to a failure of our own.
        runtime: bool,
    },
}

/// The small `keel-shim-supervisor` beside this binary (the same code
/// without the CLI, the image store and the bundle writer: a third of the
/// resident memory of each idle supervisor), else this binary itself
/// through /proc/self/exe, which still works when it was replaced on disk
/// since the CLI started.
fn supervisor_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|me| me.parent().map(|d| d.join(SUPERVISOR_BINARY)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// What to execute as the supervisor: the current binary in production,
/// the test harness in tests.
pub(crate) struct Launcher {
    pub exe: PathBuf,
    pub argv0: OsString,
    pub args: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

impl Launcher {
    fn current(paths: &Paths, id: &str) -> Launcher {
        Launcher {
            exe: supervisor_binary(),
            argv0: "keel-shim".into(),
            args: vec![
                "--root".into(),
                paths.root.clone().into(),
                "--run-dir".into(),
                paths.run.clone().into(),
                SUPERVISE_COMMAND.into(),
                id.into(),
            ],
            env: Vec::new(),
        }
    }
}

/// Starts the supervisor of a container whose `bundle/` and `meta.json`
/// exist, and returns once the runtime has created (and, with `start`,
/// started) it. On the runtime's refusal the error carries its message and
/// docker's exit code, and the supervisor has already undone everything.
pub fn spawn(paths: &Paths, meta: &ContainerMeta, start: bool) -> Result<SpawnOutcome> {
    let paths = absolute(paths)?;
    spawn_with(&Launcher::current(&paths, &meta.id), &paths, meta, start)
}

/// The supervisor runs from `/`, so it must be given absolute paths.
fn absolute(paths: &Paths) -> Result<Paths> {
    let abs = |p: &Path| {
        std::path::absolute(p).map_err(|source| SupervisorError::Fs {
            what: "resolving",
            path: p.to_path_buf(),
            source,
        })
    };
    Ok(Paths::new(abs(&paths.root)?, abs(&paths.run)?))
}

pub(crate) fn spawn_with(
    launcher: &Launcher,
    paths: &Paths,
    meta: &ContainerMeta,
    start: bool,
) -> Result<SpawnOutcome> {
    let id = meta.id.as_str();
    // A second supervisor would take over the socket and then remove the
    // first one's run dir.
    let sock = paths.attach_socket(id);
    if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
        return Err(SupervisorError::AlreadySupervised {
            id: id.to_string(),
            path: sock,
        });
    }
    let run_dir = paths.run_dir(id);
    std::fs::create_dir_all(&run_dir).map_err(|source| SupervisorError::Fs {
        what: "creating run dir",
        path: run_dir.clone(),
        source,
    })?;
    let (report_r, report_w) =
        crate::io::pipe("supervisor report").map_err(|source| SupervisorError::Io {
            id: id.to_string(),
            source,
        })?;
    let report_fd = report_w.as_raw_fd();

    let mut cmd = Command::new(&launcher.exe);
    cmd.arg0(&launcher.argv0)
        .args(&launcher.args)
        .envs(launcher.env.iter().map(|(k, v)| (k, v)))
        .env(REPORT_FD_ENV, report_fd.to_string())
        .env(START_ENV, if start { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir("/");
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // A session of its own: no controlling terminal, so the
            // caller's ctrl-c or hangup never reaches the supervisor.
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The report pipe is the one descriptor meant to cross exec.
            if libc::fcntl(report_fd, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| SupervisorError::Exec {
        exe: launcher.exe.clone(),
        source,
    })?;
    drop(cmd);
    // Our copy must go, or EOF never comes if the supervisor dies.
    drop(report_w);
    // The first process forks the supervisor and exits at once.
    let status = child.wait().map_err(|source| SupervisorError::Exec {
        exe: launcher.exe.clone(),
        source,
    })?;
    let report = read_report(report_r, id)?;
    match report {
        Some(Report::Ready {
            supervisor_pid,
            container_pid,
        }) => Ok(SpawnOutcome {
            supervisor_pid,
            container_pid,
        }),
        Some(Report::Failed {
            code,
            message,
            runtime: true,
        }) => Err(SupervisorError::Runtime {
            id: id.to_string(),
            message,
            code,
        }),
        Some(Report::Failed { message, .. }) => Err(SupervisorError::Failed {
            id: id.to_string(),
            message,
        }),
        None => {
            // Nothing will clean up after a supervisor that died early; the
            // run dir is ours to remove when it holds no live socket.
            let _ = std::fs::remove_dir(&run_dir);
            Err(SupervisorError::NoReport {
                id: id.to_string(),
                reason: format!("exited without reporting (first process: {status})"),
            })
        }
    }
}

fn read_report(pipe: std::os::fd::OwnedFd, id: &str) -> Result<Option<Report>> {
    let deadline = Instant::now() + REPORT_TIMEOUT;
    let mut file = std::fs::File::from(pipe);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let report =
                serde_json::from_slice(&buf[..nl]).map_err(|e| SupervisorError::NoReport {
                    id: id.to_string(),
                    reason: format!("sent an unreadable report: {e}"),
                })?;
            return Ok(Some(report));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = [crate::io::pollfd(file.as_fd(), libc::POLLIN)];
        let ready = crate::io::poll(&mut p, left.as_millis() as i32).map_err(|source| {
            SupervisorError::Fs {
                what: "waiting for the supervisor's report on",
                path: PathBuf::from(format!("fd {}", file.as_raw_fd())),
                source,
            }
        })?;
        if ready == 0 {
            return Err(SupervisorError::NoReport {
                id: id.to_string(),
                reason: format!("did not report within {}s", REPORT_TIMEOUT.as_secs()),
            });
        }
        match file.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(SupervisorError::Fs {
                    what: "reading the supervisor's report from",
                    path: PathBuf::from("pipe"),
                    source,
                })
            }
        }
    }
}

/// `start` of a container made with `spawn(.., start: false)`: the live
/// supervisor runs `runtime start`, so the container's stdio stays its own.
pub fn start_created(paths: &Paths, id: &str) -> Result<()> {
    request_start(paths, id)?.map_err(|message| SupervisorError::Runtime {
        id: id.to_string(),
        code: exit_code_for_runtime_error(&message),
        message,
    })
}
