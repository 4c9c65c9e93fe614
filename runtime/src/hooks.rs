//! poststart and poststop hooks, run by us instead of libcontainer. The
//! runtime spec says a failing poststart or poststop hook is only a
//! warning and the remaining hooks still run; libcontainer 0.7 stops at the
//! first failure and fails the command. So at create we move these hooks
//! out of libcontainer's saved config into our own file beside it.

use std::path::{Path, PathBuf};

use libcontainer::config::YoukiConfig;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

const LATE_HOOKS_FILE: &str = "keel-late-hooks.json";

#[derive(Serialize, Deserialize, Default, Debug, Clone)]
pub struct LateHooks {
    pub poststart: Vec<Hook>,
    pub poststop: Vec<Hook>,
}

fn file(root: &Path) -> PathBuf {
    root.join(LATE_HOOKS_FILE)
}

/// Whether the config has hooks for us to take (poststart or poststop).
pub fn has_late_hooks(spec: &libcontainer::oci_spec::runtime::Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        h.poststart().as_ref().is_some_and(|v| !v.is_empty())
            || h.poststop().as_ref().is_some_and(|v| !v.is_empty())
    })
}

/// Called right after libcontainer has created the container.
pub fn take_late_hooks(c: &Container) -> Result<()> {
    let mut cfg = YoukiConfig::load(&c.root).map_err(|e| {
        RuntimeError::Invalid(format!("loading config of container {}: {e}", c.id()))
    })?;
    let Some(hooks) = cfg.hooks.as_mut() else {
        return Ok(());
    };
    let late = LateHooks {
        poststart: hooks.poststart().clone().unwrap_or_default(),
        poststop: hooks.poststop().clone().unwrap_or_default(),
    };
    if late.poststart.is_empty() && late.poststop.is_empty() {
        return Ok(());
    }
    hooks.set_poststart(None);
    hooks.set_poststop(None);
    let path = file(&c.root);
    let text = serde_json::to_vec(&late).map_err(|source| RuntimeError::Json {
        what: path.display().to_string(),
        source,
    })?;
    std::fs::write(&path, text)
        .map_err(|e| RuntimeError::io(format!("writing {}", path.display()), e))?;
    cfg.save(&c.root)
        .map_err(|e| RuntimeError::Invalid(format!("saving config of container {}: {e}", c.id())))
}

pub fn load(c: &Container) -> LateHooks {
    std::fs::read(file(&c.root))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// Runs each hook with the container's state on stdin; a failure is logged
/// as a warning and the next hook still runs.
pub fn run_each(kind: &str, hooks: &[Hook], c: &Container, cwd: Option<&Path>) {
    for hook in hooks {
        let one = vec![hook.clone()];
        if let Err(e) = libcontainer::hooks::run_hooks(Some(&one), Some(&c.state), cwd, None, None)
        {
            tracing::warn!(
                "container {}: {kind} hook {} failed: {}",
                c.id(),
                hook.path().display(),
                crate::error::chain(&e)
            );
        }
    }
}
