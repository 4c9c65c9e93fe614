//! `create`: set up the container and leave its process waiting for `start`.

use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;
use libcontainer::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder, Spec};
use libcontainer::syscall::syscall::SyscallType;
use serde_json::Value;

use crate::container::{validate_id, GlobalOpts};
use crate::error::{Result, RuntimeError};
use crate::executor::KeelExecutor;
use crate::seccomp::privilege::{self, CapsAfterSeccomp};
use crate::spec::{load_bundle_config, CONFIG_FILE};
use crate::state_lock::{Access, StateLock};

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

/// Removes a half-created container's state directory and private bundle
/// (its cgroup and processes go through libcontainer's own cleanup) unless
/// disarmed.
struct StateDirGuard {
    dirs: Vec<PathBuf>,
    armed: bool,
}

impl Drop for StateDirGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for dir in &self.dirs {
            if dir.exists() {
                // A reader or `kill` that does not wait for the lock may
                // still be writing into it (see `delete::remove_state_dir`).
                if let Err(e) = super::delete::remove_state_dir(dir) {
                    tracing::warn!("removing {}: {e}", dir.display());
                }
            }
        }
    }
}

/// Where libcontainer reads the config from when it must differ from the
/// user's (see `seccomp::privilege`): beside the state directories, never
/// in the user's bundle.
pub(crate) fn private_bundle_dir(root: &Path, id: &str) -> PathBuf {
    root.join(format!(".keel-bundle-{id}"))
}

/// The user's config with an absolute rootfs and CAP_SYS_ADMIN kept for the
/// seccomp window; returns it with the capabilities to restore.
fn widened_config(bundle: &Path, config_path: &Path) -> Result<(Value, CapsAfterSeccomp)> {
    let data = std::fs::read(config_path).map_err(|source| RuntimeError::ReadConfig {
        path: config_path.to_path_buf(),
        source,
    })?;
    let mut v: Value = serde_json::from_slice(&data).map_err(|e| RuntimeError::InvalidConfig {
        path: config_path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(root) = v["root"]["path"].as_str() {
        let abs = crate::spec::rootfs_path(bundle, Path::new(root));
        v["root"]["path"] = Value::String(abs.to_string_lossy().into_owned());
    }
    let keep = privilege::widen(&mut v["process"]);
    Ok((v, keep))
}

fn write_private_bundle(dir: &Path, config: &Value) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|e| RuntimeError::io(format!("creating {}", dir.display()), e))?;
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, config.to_string())
        .map_err(|e| RuntimeError::io(format!("writing {}", path.display()), e))
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
    // First, so the grace period runs alongside all that follows.
    let _primer = crate::cgroup_prime::start();
    let bundle = canonical_bundle(&o.bundle)?;
    let spec = load_bundle_config(&bundle)?;
    build_from(g, o, detached, bundle, spec)
}

pub(crate) fn canonical_bundle(bundle: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(bundle)
        .map_err(|e| RuntimeError::io(format!("bundle {}", bundle.display()), e))
}

/// `build` for a caller that has already read the bundle's config.
pub(crate) fn build_from(
    g: &GlobalOpts,
    o: &CreateOpts,
    detached: bool,
    bundle: PathBuf,
    spec: Spec,
) -> Result<Container> {
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
    let filters = seccomp.as_ref().map_or(0, |s| s.filter_count());
    let caps_window = spec
        .process()
        .as_ref()
        .is_some_and(|p| privilege::needs_window(p, filters));
    let root = g.ensure_root()?;
    let dir = root.join(&o.id);
    if dir.exists() {
        return Err(RuntimeError::Exists(o.id.clone()));
    }
    let pid_file = o.pid_file.as_deref().map(absolute).transpose()?;
    let console = o.console_socket.as_deref().map(absolute).transpose()?;
    // As runc: the runtime works in the bundle, so relative paths in the
    // config (bind mount sources) are relative to it.
    std::env::set_current_dir(&bundle)
        .map_err(|e| RuntimeError::io(format!("bundle {}", bundle.display()), e))?;
    let private = private_bundle_dir(&root, &o.id);
    let mut guard = StateDirGuard {
        dirs: vec![dir, private.clone()],
        armed: true,
    };
    let (load_from, caps_after_seccomp) = if caps_window {
        let (config, keep) = widened_config(&bundle, &config_path)?;
        write_private_bundle(&private, &config)?;
        (private, Some(keep))
    } else {
        (bundle.clone(), None)
    };
    let executor = KeelExecutor {
        seccomp,
        keyring: (!o.no_new_keyring).then(|| format!("_ses.{}", o.id)),
        caps_after_seccomp,
    };
    let result = ContainerBuilder::new(o.id.clone(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&root)
        .and_then(|b| b.with_pid_file(pid_file.as_ref()))
        .map(|b| b.with_console_socket(console.as_ref()))
        .map(|b| b.with_preserved_fds(o.preserve_fds))
        .and_then(|b| {
            b.as_init(&load_from)
                .with_systemd(g.systemd_cgroup)
                .with_detach(detached)
                .with_no_pivot(o.no_pivot)
                .build()
        });
    match result {
        Ok(mut c) => {
            guard.armed = false;
            if caps_window {
                // The state names the user's bundle, not the private copy.
                c.state.bundle = bundle.clone();
            }
            // The container is visible to other processes from here on:
            // rewrite its state and config under the lock.
            let lock = match StateLock::acquire(&c.root, &o.id, Access::Write) {
                Ok(lock) => lock,
                Err(e) => {
                    let _ = super::delete::delete_own(&mut c, true);
                    return Err(e);
                }
            };
            // Only what differs from what libcontainer saved is rewritten:
            // each rewrite of a file on ext4 starts its writeback at close.
            let save = || {
                if caps_window {
                    c.save().map_err(|e| {
                        RuntimeError::container(format!("saving state of {}", o.id), e)
                    })
                } else {
                    Ok(())
                }
            };
            let finish = save()
                .and_then(|_| {
                    if crate::hooks::has_late_hooks(&spec) {
                        crate::hooks::take_late_hooks(&c)
                    } else {
                        Ok(())
                    }
                })
                .and_then(|_| disable_oom_killer(&c, &spec));
            if let Err(e) = finish {
                let _ = super::delete::delete_loaded(&mut c, true, lock);
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
