//! `delete`: remove a stopped (or, with `--force`, any) container and
//! everything it holds: processes, cgroup, state directory; poststop hooks run.

use libcontainer::container::{Container, ContainerStatus};

use crate::container::{load, validate_id, GlobalOpts};
use crate::error::{Result, RuntimeError};

pub fn delete(g: &GlobalOpts, id: &str, force: bool) -> Result<()> {
    validate_id(id)?;
    let mut c = match load(g, id) {
        Ok(c) => c,
        Err(RuntimeError::NotExist(_)) if force => {
            // runc: a forced delete of what is already gone succeeds, but
            // a directory left by a crashed create is still removed.
            for dir in [
                g.container_dir(id),
                super::create::private_bundle_dir(&g.root, id),
            ] {
                if dir.is_dir() {
                    std::fs::remove_dir_all(&dir)
                        .map_err(|e| RuntimeError::io(format!("removing {}", dir.display()), e))?;
                }
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if !force
        && matches!(
            c.status(),
            ContainerStatus::Running | ContainerStatus::Paused
        )
    {
        return Err(RuntimeError::NotStopped {
            id: id.to_string(),
            status: c.status(),
        });
    }
    delete_loaded(&mut c, force)
}

/// Deletes a loaded container, then runs its poststop hooks (ours to run:
/// see `crate::hooks`; they are read before the state directory goes).
pub(crate) fn delete_loaded(c: &mut Container, force: bool) -> Result<()> {
    let late = crate::hooks::load(c);
    c.delete(force)
        .map_err(|e| RuntimeError::container(format!("deleting container {}", c.id()), e))?;
    if let Some(root) = c.root.parent() {
        let private = super::create::private_bundle_dir(root, c.id());
        if private.is_dir() {
            std::fs::remove_dir_all(&private)
                .map_err(|e| RuntimeError::io(format!("removing {}", private.display()), e))?;
        }
    }
    crate::hooks::run_each("poststop", &late.poststop, c, None);
    Ok(())
}
