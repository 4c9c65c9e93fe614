//! A typed caller of any runc-compatible runtime binary (keel-runtime, runc,
//! crun): one method per command, global flags applied once, and failures
//! carrying the runtime's own message.
//!
//! Every call passes `--log F --log-format json` (a per-call temp file when
//! the caller set no log), because that file is the only place runc-like
//! runtimes reliably put a machine-readable error; stderr is the fallback.

mod error;
mod log;
mod state;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

pub use error::{Error, Result};
pub use state::{State, Status};

use log::CallLog;

/// A runtime binary and the global flags every call gets.
#[derive(Debug, Clone)]
pub struct Runtime {
    binary: PathBuf,
    root: Option<PathBuf>,
    log: Option<PathBuf>,
}

/// Flags of `create` (and of the foreground `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
}

/// Flags of `exec`. The process itself comes from a `process.json` file, as
/// the OCI process object, so nothing about it is lost in flag translation.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub detach: bool,
    pub tty: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
}

/// The stdio the runtime gets. With `terminal: false` runc-like runtimes
/// hand these very descriptors to the container process, so they stay open
/// as long as the container does: give files or pipes you read elsewhere.
#[derive(Debug)]
pub struct Io {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

impl Io {
    pub fn null() -> Io {
        Io {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
        }
    }

    pub fn inherit() -> Io {
        Io {
            stdin: Stdio::inherit(),
            stdout: Stdio::inherit(),
            stderr: Stdio::inherit(),
        }
    }
}

/// How a call's stdio is wired.
enum Wiring {
    /// Short commands: stdout and stderr captured, stdin closed.
    Capture,
    /// Commands whose stdio may end up in a container.
    Given(Io),
}

struct Finished {
    command: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    log_error: Option<String>,
}

impl Finished {
    fn failure(self) -> Error {
        let message = self
            .log_error
            .or_else(|| {
                let err = String::from_utf8_lossy(&self.stderr).trim().to_string();
                (!err.is_empty()).then_some(err)
            })
            .unwrap_or_else(|| format!("{} with no error message", describe(self.status)));
        Error::Failed {
            command: self.command,
            status: self.status,
            message,
        }
    }

    fn ok(self) -> Result<Finished> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(self.failure())
        }
    }

    /// For `run` and foreground `exec`, whose exit code is the container
    /// process's: a non-zero code is only the runtime's own failure when the
    /// runtime logged an error for it.
    fn exit_code(self) -> Result<i32> {
        match self.status.code() {
            Some(code) if code == 0 || self.log_error.is_none() => Ok(code),
            _ => Err(self.failure()),
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => status.to_string(),
    }
}

impl Runtime {
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        Runtime {
            binary: binary.into(),
            root: None,
            log: None,
        }
    }

    /// `--root DIR`: where the runtime keeps container state.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = Some(dir.into());
        self
    }

    /// `--log F --log-format json` on every call, F kept afterwards.
    pub fn log_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// A command with the global flags applied, for what this type does not
    /// cover. Errors are then the caller's to read.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.binary);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        if let Some(log) = &self.log {
            cmd.arg("--log").arg(log).arg("--log-format").arg("json");
        }
        cmd.args(args);
        cmd
    }

    pub fn create(&self, id: &str, bundle: &Path, opts: &CreateOpts) -> Result<()> {
        self.create_with_io(id, bundle, opts, Io::null())
    }

    /// `create` whose container process gets `io` (with `terminal: false`).
    pub fn create_with_io(&self, id: &str, bundle: &Path, opts: &CreateOpts, io: Io) -> Result<()> {
        let args = create_args("create", id, bundle, opts);
        self.call(args, Wiring::Given(io))?.ok().map(drop)
    }

    pub fn start(&self, id: &str) -> Result<()> {
        self.call(os_args(["start", id]), Wiring::Capture)?
            .ok()
            .map(drop)
    }

    pub fn state(&self, id: &str) -> Result<State> {
        let done = self.call(os_args(["state", id]), Wiring::Capture)?.ok()?;
        serde_json::from_slice(&done.stdout).map_err(|source| Error::Parse {
            command: done.command,
            source,
        })
    }

    /// `kill [--all] ID SIGNAL`; `signal` as the runtime takes it ("KILL",
    /// "SIGTERM", "9").
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let mut args = os_args(["kill"]);
        if all {
            args.push("--all".into());
        }
        args.extend(os_args([id, signal]));
        self.call(args, Wiring::Capture)?.ok().map(drop)
    }

    /// With `force`, a running container is killed first, and a container
    /// that does not exist is not an error (runc's semantics).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let mut args = os_args(["delete"]);
        if force {
            args.push("--force".into());
        }
        args.push(id.into());
        self.call(args, Wiring::Capture)?.ok().map(drop)
    }

    /// Foreground `run`: returns when the container's process has exited,
    /// with its exit code (128+N for a process killed by signal N). The
    /// runtime removes the container itself when it returns.
    pub fn run(&self, id: &str, bundle: &Path, opts: &CreateOpts, io: Io) -> Result<i32> {
        let args = create_args("run", id, bundle, opts);
        self.call(args, Wiring::Given(io))?.exit_code()
    }

    /// `exec --process FILE ID`: in the foreground, the exit code of the
    /// process; detached, 0 once it has started.
    pub fn exec(&self, id: &str, process: &Path, opts: &ExecOpts, io: Io) -> Result<i32> {
        let mut args = os_args(["exec"]);
        if opts.detach {
            args.push("--detach".into());
        }
        if opts.tty {
            args.push("--tty".into());
        }
        if let Some(p) = &opts.pid_file {
            args.extend(["--pid-file".into(), p.into()]);
        }
        if let Some(s) = &opts.console_socket {
            args.extend(["--console-socket".into(), s.into()]);
        }
        args.extend(["--process".into(), process.into(), id.into()]);
        let done = self.call(args, Wiring::Given(io))?;
        if opts.detach {
            done.ok().map(|_| 0)
        } else {
            done.exit_code()
        }
    }

    pub fn list(&self) -> Result<Vec<State>> {
        let done = self
            .call(os_args(["list", "--format", "json"]), Wiring::Capture)?
            .ok()?;
        state::parse_list(&done.stdout).map_err(|source| Error::Parse {
            command: done.command,
            source,
        })
    }

    fn call(&self, args: Vec<OsString>, wiring: Wiring) -> Result<Finished> {
        let log = match &self.log {
            Some(path) => CallLog::shared(path),
            None => CallLog::temporary(),
        }
        .map_err(|source| Error::Log {
            path: self.log.clone().unwrap_or_else(std::env::temp_dir),
            source,
        })?;
        let command = self.display(&args);

        let mut cmd = Command::new(&self.binary);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        cmd.arg("--log")
            .arg(&log.path)
            .arg("--log-format")
            .arg("json");
        cmd.args(&args);

        let spawn_err = |source| Error::Spawn {
            binary: self.binary.clone(),
            source,
        };
        let (status, stdout, stderr) = match wiring {
            Wiring::Capture => {
                let out = cmd.stdin(Stdio::null()).output().map_err(spawn_err)?;
                (out.status, out.stdout, out.stderr)
            }
            Wiring::Given(io) => {
                cmd.stdin(io.stdin).stdout(io.stdout).stderr(io.stderr);
                let mut child = cmd.spawn().map_err(spawn_err)?;
                // The command holds the parent's copies of the given
                // descriptors; close them now so a reader of a given pipe
                // sees EOF when the container, not this value, is done.
                drop(cmd);
                let status = child.wait().map_err(spawn_err)?;
                (status, Vec::new(), Vec::new())
            }
        };
        let log_error = log.last_error().map_err(|source| Error::Log {
            path: log.path.clone(),
            source,
        })?;
        Ok(Finished {
            command,
            status,
            stdout,
            stderr,
            log_error,
        })
    }

    /// The command line as a user would retype it (the temp log left out).
    fn display(&self, args: &[OsString]) -> String {
        let mut s = self.binary.display().to_string();
        if let Some(root) = &self.root {
            s.push_str(&format!(" --root {}", root.display()));
        }
        for a in args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }
}

fn os_args<const N: usize>(a: [&str; N]) -> Vec<OsString> {
    a.iter().map(OsString::from).collect()
}

fn create_args(verb: &str, id: &str, bundle: &Path, opts: &CreateOpts) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![verb.into(), "--bundle".into(), bundle.into()];
    if let Some(p) = &opts.pid_file {
        args.extend(["--pid-file".into(), p.into()]);
    }
    if let Some(s) = &opts.console_socket {
        args.extend(["--console-socket".into(), s.into()]);
    }
    if opts.no_pivot {
        args.push("--no-pivot".into());
    }
    args.push(id.into());
    args
}

/// Where a runtime binary named on a command line is: a path as given; a
/// bare name on `PATH`, else beside the calling binary (a cargo target dir,
/// or an install of all of keel in one directory). None if nowhere.
pub fn locate(given: &Path) -> Option<PathBuf> {
    if given.components().count() > 1 {
        return given.is_file().then(|| given.to_path_buf());
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(given))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|me| me.parent().map(|d| d.join(given)))
            .filter(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn locate_takes_paths_as_given_and_bare_names_from_path() {
        use std::path::Path;
        assert_eq!(
            super::locate(Path::new("/bin/sh")),
            Some(Path::new("/bin/sh").into())
        );
        assert_eq!(super::locate(Path::new("/nonexistent/keel-runtime")), None);
        assert!(super::locate(Path::new("sh")).is_some_and(|p| p.ends_with("sh") && p.is_file()));
        assert_eq!(super::locate(Path::new("keel-no-such-binary")), None);
    }

    use super::*;

    #[test]
    fn command_applies_global_flags() {
        let rt = Runtime::new("/bin/rt").root("/r").log_file("/l.json");
        let cmd = rt.command(["state", "x"]);
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(cmd.get_program(), "/bin/rt");
        assert_eq!(
            args,
            [
                "--root",
                "/r",
                "--log",
                "/l.json",
                "--log-format",
                "json",
                "state",
                "x"
            ]
        );
    }

    #[test]
    fn create_args_put_the_id_last() {
        let opts = CreateOpts {
            pid_file: Some("/p".into()),
            console_socket: None,
            no_pivot: true,
        };
        let a = create_args("create", "id1", Path::new("/b"), &opts);
        assert_eq!(
            a,
            [
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "--no-pivot",
                "id1"
            ]
            .map(OsString::from)
        );
    }

    #[test]
    fn missing_binary_is_a_spawn_error() {
        let rt = Runtime::new("/nonexistent/keel-test-runtime");
        match rt.start("x") {
            Err(Error::Spawn { binary, .. }) => {
                assert_eq!(binary, PathBuf::from("/nonexistent/keel-test-runtime"))
            }
            other => panic!("expected Spawn, got {other:?}"),
        }
    }

    #[test]
    fn stderr_is_the_fallback_message() {
        // `sh -c` stands in for a runtime that logs nothing to --log.
        let dir = std::env::temp_dir().join(format!("keel-client-fallback-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fake = dir.join("fake-runtime");
        std::fs::write(&fake, "#!/bin/sh\necho 'no such thing' >&2\nexit 2\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = Runtime::new(&fake).start("x").unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        match err {
            Error::Failed {
                message, status, ..
            } => {
                assert_eq!(message, "no such thing");
                assert_eq!(status.code(), Some(2));
            }
            other => panic!("expected Failed, got {other:?}"),
        }
    }
}
