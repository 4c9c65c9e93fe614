//! Finding containers under the state root and describing them the way runc
//! does (`state`, `list`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;
use serde::Serialize;

use crate::error::{Result, RuntimeError};
use crate::state_lock::{Access, StateLock};

/// Options every command shares (runc's global flags).
#[derive(Debug, Clone)]
pub struct GlobalOpts {
    pub root: PathBuf,
    pub systemd_cgroup: bool,
}

impl GlobalOpts {
    /// The state root, created on first use with runc's 0700 mode.
    pub fn ensure_root(&self) -> Result<PathBuf> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| {
                RuntimeError::io(format!("creating state root {}", self.root.display()), e)
            })?;
        std::fs::canonicalize(&self.root)
            .map_err(|e| RuntimeError::io(format!("state root {}", self.root.display()), e))
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
}

/// runc's rule for ids: `^[\w+\-.]+$`, and not `.` or `..`, so an id is
/// always a single path component under the root.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_string()))
    }
}

/// Loads a container's state and refreshes its status from the kernel, for
/// reading: the directory is locked shared only while it is read.
pub fn load(opts: &GlobalOpts, id: &str) -> Result<Container> {
    validate_id(id)?;
    let dir = opts.container_dir(id);
    let _lock = StateLock::acquire(&dir, id, Access::Read)?;
    read_state(dir, id)
}

/// Loads a container that the caller is about to change (signal, start,
/// pause, delete): the state directory stays locked exclusively for as long
/// as the returned lock lives, so nothing else rewrites or removes it
/// meanwhile.
pub fn load_for_change(opts: &GlobalOpts, id: &str) -> Result<(Container, StateLock)> {
    validate_id(id)?;
    let dir = opts.container_dir(id);
    let lock = StateLock::acquire(&dir, id, Access::Write)?;
    Ok((read_state(dir, id)?, lock))
}

fn read_state(dir: PathBuf, id: &str) -> Result<Container> {
    if !dir.join("state.json").exists() {
        return Err(RuntimeError::NotExist(id.to_string()));
    }
    // Every later rewrite of state.json happens under the exclusive lock, but
    // libcontainer's own two during create (status creating, then created)
    // cannot: they truncate, then write, so a reader racing a create can see
    // the file empty. Read again.
    let mut attempt = 0;
    let mut c = loop {
        match Container::load(dir.clone()) {
            Ok(c) => break c,
            Err(_) if attempt < 50 && dir.join("state.json").exists() => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) if !dir.join("state.json").exists() => {
                tracing::debug!("{id}: {e}");
                return Err(RuntimeError::NotExist(id.to_string()));
            }
            Err(e) => {
                return Err(RuntimeError::container(
                    format!("loading state of container {id}"),
                    e,
                ))
            }
        }
    };
    // `Container::load` has refreshed the status already (and a refresh
    // that raced the init's exit failed it, so it was read again above).
    // libcontainer's refresh calls a container without a pid stopped, and a
    // container has no pid until its create is nearly done: a `state` run
    // meanwhile said "stopped" for a container that was about to run (which
    // keel-shim, polling for "running", took as started). runc says
    // "creating"; so do we. Nothing else has no pid: every later state
    // keeps the init's.
    if c.pid().is_none() && c.status() == ContainerStatus::Stopped {
        if let Ok(saved) = libcontainer::container::State::load(&dir) {
            if saved.status == ContainerStatus::Creating {
                c.set_status(ContainerStatus::Creating);
            }
        }
    }
    Ok(c)
}

/// Runs `op`, a libcontainer operation whose first step is a status
/// refresh, once more if that refresh raced the init's exit. The refresh
/// opens `/proc/PID` and then reads its `stat`, and an init reaped between
/// the two makes it fail ("File not found: /proc/PID/stat") before `op`
/// has changed anything; tried again, it finds no `/proc/PID` and takes the
/// container for stopped, which is the truth.
pub fn retry_raced_refresh<T>(
    c: &mut Container,
    mut op: impl FnMut(&mut Container) -> std::result::Result<T, LibcontainerError>,
) -> std::result::Result<T, LibcontainerError> {
    match op(c) {
        Err(LibcontainerError::Procfs(e)) => {
            tracing::debug!("{}: status refresh raced the init's exit? {e}", c.id());
            op(c)
        }
        r => r,
    }
}

/// The OCI state as `runc state` prints it.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: ContainerStatus,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
    pub owner: String,
}

impl StateView {
    pub fn of(c: &Container) -> Self {
        let s = &c.state;
        let running = matches!(
            s.status,
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        );
        let rootfs = rootfs_of(&s.bundle).unwrap_or_else(|| s.bundle.join("rootfs"));
        StateView {
            oci_version: libcontainer::oci_spec::runtime::VERSION.to_string(),
            id: s.id.clone(),
            pid: if running { s.pid.unwrap_or(0) } else { 0 },
            status: s.status,
            bundle: s.bundle.clone(),
            rootfs,
            created: s
                .created
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                .unwrap_or_default(),
            annotations: s.annotations.clone().filter(|a| !a.is_empty()),
            owner: owner_name(s.creator.unwrap_or(0)),
        }
    }
}

fn rootfs_of(bundle: &Path) -> Option<PathBuf> {
    let data = std::fs::read(bundle.join(crate::spec::CONFIG_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&data).ok()?;
    let root = v.get("root")?.get("path")?.as_str()?;
    Some(crate::spec::rootfs_path(bundle, Path::new(root)))
}

fn owner_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Every container id under the root, sorted; entries that are not
/// containers (temporary files, sockets) are skipped.
pub fn list_ids(opts: &GlobalOpts) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(&opts.root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => {
            return Err(RuntimeError::io(
                format!("reading {}", opts.root.display()),
                e,
            ))
        }
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("state.json").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refreshes, over and over, the status of a child that exits and is
    /// reaped meanwhile; returns how many refreshes failed.
    fn refreshes_failing_across_exits(refresh: fn(&mut Container) -> bool) -> usize {
        use std::sync::atomic::{AtomicBool, Ordering};
        let mut failed = 0;
        for _ in 0..300 {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id() as i32;
            let reaped = AtomicBool::new(false);
            std::thread::scope(|s| {
                let poller = s.spawn(|| {
                    let mut c = Container::default();
                    c.set_status(ContainerStatus::Running);
                    c.state.pid = Some(pid);
                    let mut failed = 0;
                    while !reaped.load(Ordering::Acquire) {
                        failed += usize::from(!refresh(&mut c));
                    }
                    failed += usize::from(!refresh(&mut c));
                    assert_eq!(c.status(), ContainerStatus::Stopped);
                    failed
                });
                child.wait().unwrap();
                reaped.store(true, Ordering::Release);
                failed += poller.join().unwrap();
            });
        }
        failed
    }

    #[test]
    fn only_a_raced_refresh_is_tried_again() {
        let raced = || LibcontainerError::Procfs(procfs::ProcError::NotFound(None));
        let mut c = Container::default();
        let mut calls = 0;
        let r = retry_raced_refresh(&mut c, |_| {
            calls += 1;
            if calls == 1 {
                Err(raced())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 2);
        calls = 0;
        let r: std::result::Result<(), _> = retry_raced_refresh(&mut c, |_| {
            calls += 1;
            Err(raced())
        });
        assert!(matches!(r, Err(LibcontainerError::Procfs(_))));
        assert_eq!(calls, 2, "tried again once, not more");
        calls = 0;
        let r: std::result::Result<(), _> = retry_raced_refresh(&mut c, |_| {
            calls += 1;
            Err(LibcontainerError::Exist)
        });
        assert!(matches!(r, Err(LibcontainerError::Exist)));
        assert_eq!(calls, 1, "other errors are not tried again");
    }

    #[test]
    fn status_refresh_survives_the_init_being_reaped() {
        assert_eq!(
            refreshes_failing_across_exits(|c| {
                retry_raced_refresh(c, Container::refresh_status).is_ok()
            }),
            0
        );
    }

    #[test]
    fn ids_follow_runcs_rule() {
        for ok in ["a", "keel-test-1", "A_b+c.d", "..x"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "x\n", "é"] {
            let err = validate_id(bad).unwrap_err().to_string();
            assert!(err.contains("invalid container id"), "{err}");
        }
    }

    #[test]
    fn missing_container_says_does_not_exist() {
        let d = tempfile::tempdir().unwrap();
        let g = GlobalOpts {
            root: d.path().to_path_buf(),
            systemd_cgroup: false,
        };
        let err = load(&g, "nope").unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
