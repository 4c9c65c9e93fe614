//! Containers on disk. Per container under `--root` (default
//! `/var/lib/keel-shim/<id>/`, survives a reboot): `meta.json` (what it was
//! created with), `bundle/` (config.json, the overlay rootfs and its upper
//! dir: the container's writable layer), `ctr.log` (json-file lines) and,
//! once it has exited, `exit.json`. Live state under `--run-dir` (default
//! `/run/keel-shim/<id>/`): the supervisor's pid file and attach socket;
//! the runtime's own `--root` is `/run/keel-shim/runtime`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::LogOptions;

mod error;
pub mod format;
pub mod ids;
pub mod status;
pub mod store;

pub use error::ContainerError;
pub use format::{inspect_json, ps_table, Inspect, PsRow};
pub use ids::{new_id, random_name, short_id};
pub use status::{status, Status};
pub use store::ContainerStore;

pub const DEFAULT_ROOT: &str = "/var/lib/keel-shim";
pub const DEFAULT_RUN_DIR: &str = "/run/keel-shim";

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub run: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>, run: impl Into<PathBuf>) -> Paths {
        Paths {
            root: root.into(),
            run: run.into(),
        }
    }
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
    pub fn meta(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("meta.json")
    }
    pub fn bundle(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("bundle")
    }
    pub fn log(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("ctr.log")
    }
    pub fn exit(&self, id: &str) -> PathBuf {
        self.container_dir(id).join("exit.json")
    }
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.run.join(id)
    }
    pub fn attach_socket(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("attach.sock")
    }
    pub fn supervisor_pid(&self, id: &str) -> PathBuf {
        self.run_dir(id).join("supervisor.pid")
    }
    /// The runtime's `--root` for every container of this shim.
    pub fn runtime_root(&self) -> PathBuf {
        self.run.join("runtime")
    }
}

/// What a container was created with; written once at create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// 64 hex digits, as docker's.
    pub id: String,
    pub name: String,
    /// The image reference as given, and its id (config digest).
    pub image: String,
    pub image_id: String,
    /// RFC 3339.
    pub created: String,
    /// The process's argv after Entrypoint/Cmd/overrides.
    pub args: Vec<String>,
    /// The process's environment (`KEY=value`), image's and `-e` merged.
    #[serde(default)]
    pub env: Vec<String>,
    /// Entrypoint and Cmd as they were resolved (image's or overridden),
    /// for `inspect`; None where docker shows null.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// `-t`: a pty.
    pub tty: bool,
    /// `-i`: stdin kept open for attached clients.
    pub stdin: bool,
    /// `--rm`.
    pub auto_remove: bool,
    /// The image's StopSignal (default SIGTERM).
    pub stop_signal: String,
    /// `--log-opt max-size=N` (bytes) and `max-file=N` (docker's: files in
    /// all, the current one included; 0 when not given).
    pub log_max_size: Option<u64>,
    pub log_max_files: u32,
    /// The runc-compatible binary that runs it.
    pub runtime: PathBuf,
}

impl ContainerMeta {
    /// The writer's options: docker's max-file counts the current file,
    /// [`LogOptions::max_files`] only the rotated ones.
    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            max_size: self.log_max_size,
            max_files: self.log_max_files.saturating_sub(1),
        }
    }
}

/// Written by the supervisor when the container's process has exited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// docker's: the exit code, or 128+N when killed by signal N.
    pub code: i32,
    pub signal: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: String,
}

impl ExitRecord {
    pub fn load(path: &Path) -> Option<ExitRecord> {
        std::fs::read(path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
    }
}
