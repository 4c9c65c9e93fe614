//! `create`: set up the container and leave its process waiting for `start`.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;
use libcontainer::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Spec};
use libcontainer::syscall::syscall::SyscallType;

use crate::container::{validate_id, GlobalOpts};
use crate::error::{Result, RuntimeError};
use crate::executor::KeelExecutor;
use crate::spec::{load_bundle_config, CONFIG_FILE};

#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    pub id: String,
    pub bundle: PathBuf,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: i32,
}

/// Removes a half-created container's state directory (and, through
/// libcontainer's own cleanup, its cgroup and processes) unless disarmed.
struct StateDirGuard {
    dir: PathBuf,
    armed: bool,
}

impl Drop for StateDirGuard {
    fn drop(&mut self) {
        if self.armed && self.dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                tracing::warn!("removing {}: {e}", self.dir.display());
            }
        }
    }
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        let cwd = std::env::current_dir().map_err(|e| RuntimeError::io("current directory", e))?;
        Ok(cwd.join(p))
    }
}

/// The shared part of `create` and `run`. `detached` is libcontainer's
/// notion: whether the pty goes to a console socket.
pub(crate) fn build(g: &GlobalOpts, o: &CreateOpts, detached: bool) -> Result<Container> {
    validate_id(&o.id)?;
    let bundle = std::fs::canonicalize(&o.bundle)
        .map_err(|e| RuntimeError::io(format!("bundle {}", o.bundle.display()), e))?;
    let spec = load_bundle_config(&bundle)?;
    let config_path = bundle.join(CONFIG_FILE);
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => {
            Some(
                crate::seccomp::compile(profile).map_err(|source| RuntimeError::Seccomp {
                    path: config_path.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let root = g.ensure_root()?;
    let dir = root.join(&o.id);
    if dir.exists() {
        return Err(RuntimeError::Exists(o.id.clone()));
    }
    let executor = KeelExecutor {
        seccomp,
        keyring: (!o.no_new_keyring).then(|| format!("_ses.{}", o.id)),
    };
    let pid_file = o.pid_file.as_deref().map(absolute).transpose()?;
    let console = o.console_socket.as_deref().map(absolute).transpose()?;
    let mut guard = StateDirGuard { dir, armed: true };
    let result = ContainerBuilder::new(o.id.clone(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&root)
        .and_then(|b| b.with_pid_file(pid_file.as_ref()))
        .map(|b| b.with_console_socket(console.as_ref()))
        .map(|b| b.with_preserved_fds(o.preserve_fds))
        .and_then(|b| {
            b.as_init(&bundle)
                .with_systemd(g.systemd_cgroup)
                .with_detach(detached)
                .with_no_pivot(o.no_pivot)
                .build()
        });
    match result {
        Ok(mut c) => {
            guard.armed = false;
            if let Err(e) =
                crate::hooks::take_late_hooks(&c).and_then(|_| disable_oom_killer(&c, &spec))
            {
                let _ = super::delete::delete_loaded(&mut c, true);
                return Err(e);
            }
            Ok(c)
        }
        Err(LibcontainerError::Exist) => {
            // Another create won the race for this id: its directory is not ours.
            guard.armed = false;
            Err(RuntimeError::Exists(o.id.clone()))
        }
        Err(e) => Err(RuntimeError::container(
            format!("creating container {}", o.id),
            e,
        )),
    }
}

/// `linux.resources.memory.disableOOMKiller`: libcontainer 0.7 applies the
/// container's resources with the OOM killer always enabled, so it is
/// switched off here, before the container's program can run.
fn disable_oom_killer(c: &Container, spec: &Spec) -> Result<()> {
    let wanted = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.disable_oom_killer())
        .unwrap_or(false);
    if !wanted {
        return Ok(());
    }
    // cgroup v2 has no switch for the OOM killer (runc ignores it there too).
    if matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(libcgroups::common::CgroupSetup::Unified)
    ) {
        tracing::warn!("linux.resources.memory.disableOOMKiller is ignored on cgroup v2");
        return Ok(());
    }
    let memory = LinuxMemoryBuilder::default()
        .disable_oom_killer(true)
        .build()
        .map_err(|e| RuntimeError::Invalid(format!("linux.resources.memory: {e}")))?;
    let resources = LinuxResourcesBuilder::default()
        .memory(memory)
        .build()
        .map_err(|e| RuntimeError::Invalid(format!("linux.resources: {e}")))?;
    super::cgroup_manager(c)?
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: true,
            oom_score_adj: None,
            freezer_state: None,
        })
        .map_err(|e| RuntimeError::Cgroup {
            what: format!("disabling the OOM killer of container {}", c.id()),
            message: crate::error::chain(&e),
        })
}

pub fn create(g: &GlobalOpts, o: &CreateOpts) -> Result<()> {
    build(g, o, true).map(|_| ())
}
