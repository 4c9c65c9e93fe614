//! The guardian: cleanup after a build killed with SIGKILL.
//!
//! A killed keel-build undoes nothing. Its overlays go with its private
//! mount namespace, but only once no process is left in it, and a RUN
//! step's `keel-runtime run` and the container's processes are not taken
//! along: they keep running, keep that namespace (and the overlays) alive,
//! and the build's `tmp/<pid>-*` dir stays until they end and someone opens
//! the store. So `keel-build build` forks this small process first, while
//! it is still in the host's mount namespace (a guardian inside the private
//! one would itself keep the overlays mounted). It waits on a pipe whose
//! write end only the builder holds: end of file means the builder is gone,
//! however it went. It then force-deletes the containers in the builder's
//! runtime roots, kills runtime processes still working in the builder's
//! tmp dirs, and removes those dirs and the runtime client's logs. After a
//! normal exit there is nothing left to find, and it only looks.

use std::fs;
use std::io::{self, Read};
use std::os::fd::{IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keel_runtime_client::Runtime;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill, signal, SigHandler, Signal};
use nix::unistd::{fork, ForkResult, Pid};

/// After this the guardian leaves what is left to the next `Store::open`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(20);
const RETRY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("the build guardian must be forked while keel-build has one thread; it has {threads}")]
    Threads { threads: usize },
    #[error("creating the build guardian's pipe: {0}")]
    Pipe(#[source] nix::Error),
    #[error("forking the build guardian: {0}")]
    Fork(#[source] nix::Error),
}

/// What [`clean_up_after`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Containers found in the builder's runtime roots and force-deleted.
    pub containers: Vec<String>,
    /// Runtime processes that still named the builder's tmp dirs, killed.
    pub killed: Vec<i32>,
    /// Removed tmp dirs and client logs.
    pub removed: Vec<PathBuf>,
    /// Tmp dirs that could not be removed (the next `Store::open` retries).
    pub left: Vec<PathBuf>,
}

/// Forks the guardian of this process's build in the store at `store_root`,
/// whose RUN steps use `runtime`. Call it once, while the process has one
/// thread and before it enters a private mount namespace. Returns the
/// guardian's pid.
pub fn spawn_guardian(store_root: &Path, runtime: &Path) -> Result<Pid, GuardError> {
    let threads = thread_count();
    if threads != 1 {
        return Err(GuardError::Threads { threads });
    }
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(GuardError::Pipe)?;
    let builder = std::process::id();
    // SAFETY: with a single thread, no lock in the child's copy of memory is
    // held by a thread that does not exist there.
    match unsafe { fork() }.map_err(GuardError::Fork)? {
        ForkResult::Parent { child } => {
            drop(read_end);
            // Never closed by hand: the kernel closes it as this process
            // ends, the moment the guardian is waiting for. O_CLOEXEC keeps
            // it out of runtimes and containers, which could outlive us.
            let _ = write_end.into_raw_fd();
            tracing::debug!(guardian = child.as_raw(), "build guardian started");
            Ok(child)
        }
        ForkResult::Child => {
            drop(write_end);
            guard(read_end, builder, store_root, runtime);
            // _exit: the builder's exit handlers and buffers are not ours.
            unsafe { libc::_exit(0) }
        }
    }
}

fn thread_count() -> usize {
    fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}

fn guard(wait_on: OwnedFd, builder: u32, store_root: &Path, runtime: &Path) {
    detach();
    let mut pipe = fs::File::from(wait_on);
    let mut buf = [0u8; 16];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "build guardian: waiting on the builder failed; cleaning up now");
                break;
            }
        }
    }
    let done = clean_up_after(builder, store_root, runtime);
    if !done.containers.is_empty() || !done.killed.is_empty() {
        tracing::info!(
            containers = ?done.containers,
            killed = ?done.killed,
            "build guardian: keel-build {builder} died with RUN steps in flight; removed them"
        );
    }
    for left in &done.left {
        tracing::warn!(path = %left.display(), "build guardian: could not remove; the next keel-build will retry");
    }
}

/// Out of the builder's session and off its stdio: a terminal's Ctrl-C or a
/// kill of the builder's process group must not stop the cleanup, and an
/// open stdout would keep `$(keel-build build -q ...)` waiting on us.
/// stderr stays, for warnings.
fn detach() {
    for s in [Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code.
        let _ = unsafe { signal(s, SigHandler::SigIgn) };
    }
    let _ = nix::unistd::setsid();
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        use std::os::fd::AsRawFd;
        for fd in [0, 1] {
            // SAFETY: dup2 onto the standard descriptors, which we own.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Removes what the dead process `builder` left for its build in the store
/// at `store_root`: containers in its runtime roots (deleted with `runtime
/// delete --force`), runtime processes still working in its tmp dirs, the
/// tmp dirs, and the runtime client's logs of its calls. Only call it once
/// `builder` is dead: everything of a live one would go.
pub fn clean_up_after(builder: u32, store_root: &Path, runtime: &Path) -> Cleanup {
    let mut out = Cleanup::default();
    let dirs: Vec<PathBuf> = crate::store::process_tmp_dirs(store_root, builder)
        .into_iter()
        .map(|d| fs::canonicalize(&d).unwrap_or(d))
        .collect();
    if !dirs.is_empty() {
        let deadline = Instant::now() + GIVE_UP_AFTER;
        let mut round = 0;
        loop {
            let listed = delete_containers(&dirs, runtime, &mut out);
            let stragglers = processes_naming(&dirs);
            if listed == 0 && stragglers.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    containers = listed,
                    processes = ?stragglers,
                    "build guardian: giving up on what is still running"
                );
                break;
            }
            // A `run` whose container is gone exits by itself; what still
            // names our dirs a round later is a runtime stuck or midway
            // through creating a container, which the next round deletes.
            if round > 0 {
                for pid in stragglers {
                    if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                        out.killed.push(pid);
                    }
                }
            }
            round += 1;
            std::thread::sleep(RETRY);
        }
        for d in dirs {
            if crate::store::remove_tree(&d) {
                out.removed.push(d);
            } else {
                out.left.push(d);
            }
        }
    }
    remove_client_logs(builder, &mut out);
    out
}

/// Force-deletes every container in the `runtime-*` roots under `dirs`;
/// returns how many were listed.
fn delete_containers(dirs: &[PathBuf], runtime: &Path, out: &mut Cleanup) -> usize {
    let mut listed = 0;
    for root in dirs.iter().flat_map(|d| runtime_roots(d)) {
        let rt = Runtime::new(runtime).root(&root);
        let states = match rt.list() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(root = %root.display(), error = %e, "build guardian: list");
                continue;
            }
        };
        for s in states {
            listed += 1;
            match rt.delete(&s.id, true) {
                Ok(()) => {
                    if !out.containers.contains(&s.id) {
                        out.containers.push(s.id);
                    }
                }
                Err(e) => {
                    tracing::debug!(id = %s.id, error = %e, "build guardian: delete --force")
                }
            }
        }
    }
    listed
}

/// The runtime `--root` dirs a build makes in its tmp dir (`runtime-N`).
fn runtime_roots(tmp: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(tmp) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().as_bytes().starts_with(b"runtime-"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// Pids, other than ours, of processes with an argument naming a path in
/// `dirs` (a runtime's `--root` or `--bundle`), relative ones resolved
/// against that process's working directory.
fn processes_naming(dirs: &[PathBuf]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let names: Vec<&[u8]> = dirs
        .iter()
        .filter_map(|d| d.file_name().map(|n| n.as_bytes()))
        .collect();
    let mut found = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let names_ours = cmdline.split(|&b| b == 0).any(|arg| {
            if !names.iter().any(|n| contains(arg, n)) {
                return false;
            }
            let arg = Path::new(std::ffi::OsStr::from_bytes(arg));
            let abs = if arg.is_absolute() {
                arg.to_path_buf()
            } else {
                match fs::read_link(p.path().join("cwd")) {
                    Ok(cwd) => cwd.join(arg),
                    Err(_) => return false,
                }
            };
            let abs = fs::canonicalize(&abs).unwrap_or(abs);
            dirs.iter().any(|d| abs.starts_with(d))
        });
        if names_ours {
            found.push(pid);
        }
    }
    found
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// keel-runtime-client names the logs of its calls
/// `keel-runtime-client-<pid>-<n>-<nanos>.log` in the temp dir; a killed
/// caller leaves the one of the call in flight.
fn remove_client_logs(builder: u32, out: &mut Cleanup) {
    let dir = std::env::temp_dir();
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    let prefix = format!("keel-runtime-client-{builder}-");
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.as_bytes();
        if name.starts_with(prefix.as_bytes())
            && name.ends_with(b".log")
            && fs::remove_file(e.path()).is_ok()
        {
            out.removed.push(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    /// A stand-in runtime: `list` prints one container until `delete` ran,
    /// and every call is appended to `calls`.
    fn fake_runtime(dir: &Path) -> PathBuf {
        let path = dir.join("fake-runtime");
        let script = r#"#!/bin/sh
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --log|--log-format) shift 2 ;;
    *) break ;;
  esac
done
echo "$root $*" >> "$(dirname "$0")/calls"
case "$1" in
  list) if [ -e "$root/ctr" ]; then echo '[{"id":"ctr","pid":0,"status":"stopped"}]'; else echo null; fi ;;
  delete) rm -rf "$root/ctr" ;;
esac
"#;
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn deletes_containers_and_removes_only_the_dead_builders_dirs() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        let dead = 999_999_999u32;
        let mine = store.join(format!("tmp/{dead}-00aa"));
        let rt_root = mine.join("runtime-0");
        fs::create_dir_all(rt_root.join("ctr")).unwrap();
        fs::create_dir_all(mine.join("step-1/upper")).unwrap();
        let other = store.join(format!("tmp/{}-00bb", dead - 1));
        let longer = store.join(format!("tmp/{dead}0-00cc"));
        fs::create_dir_all(&other).unwrap();
        fs::create_dir_all(&longer).unwrap();
        let log = std::env::temp_dir().join(format!("keel-runtime-client-{dead}-0-1.log"));
        fs::write(&log, b"").unwrap();
        let runtime = fake_runtime(t.path());
        let rt_root = fs::canonicalize(&rt_root).unwrap();

        let done = clean_up_after(dead, &store, &runtime);

        assert_eq!(done.containers, vec!["ctr".to_string()]);
        assert!(done.killed.is_empty());
        assert!(done.left.is_empty());
        assert!(!mine.exists());
        assert!(!log.exists());
        assert!(other.exists(), "another process's dir was removed");
        assert!(longer.exists(), "pid {dead}0 is not pid {dead}");
        let calls = fs::read_to_string(t.path().join("calls")).unwrap();
        assert!(
            calls.contains(&format!("{} delete --force ctr", rt_root.display())),
            "{calls}"
        );
    }

    #[test]
    fn kills_a_process_still_working_in_the_dirs() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        let dead = 999_999_998u32;
        let mine = store.join(format!("tmp/{dead}-00aa"));
        fs::create_dir_all(&mine).unwrap();
        // Stands in for a runtime midway through `run --bundle <our dir>`.
        // `read` is a builtin: killing the shell leaves no child behind.
        let mut child = Command::new("/bin/sh")
            .args(["-c", "read x", "sh"])
            .arg(mine.join("step-1/bundle"))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let runtime = fake_runtime(t.path());
        // Found by its command line, which is the test's own until the
        // shell has exec'd.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let path = mine.join("step-1/bundle");
        while !fs::read(&cmdline)
            .unwrap()
            .split(|b| *b == 0)
            .any(|arg| arg == path.as_os_str().as_encoded_bytes())
        {
            std::thread::sleep(Duration::from_millis(1));
        }

        let done = clean_up_after(dead, &store, &runtime);
        let status = child.wait().unwrap();

        assert_eq!(done.killed, vec![child.id() as i32]);
        assert!(!status.success());
        assert!(!mine.exists());
    }

    #[test]
    fn after_a_clean_exit_there_is_nothing_to_do() {
        let t = tempfile::tempdir().unwrap();
        let store = t.path().join("store");
        fs::create_dir_all(store.join("tmp")).unwrap();
        let runtime = fake_runtime(t.path());
        let done = clean_up_after(999_999_997, &store, &runtime);
        assert_eq!(done, Cleanup::default());
        assert!(!t.path().join("calls").exists(), "the runtime was called");
    }
}
