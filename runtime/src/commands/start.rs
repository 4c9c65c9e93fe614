//! `start`: let a created container's process run its program.

use libcontainer::container::{Container, ContainerStatus};

use crate::container::{load, GlobalOpts};
use crate::error::{Result, RuntimeError};

pub fn start(g: &GlobalOpts, id: &str) -> Result<()> {
    let mut c = load(g, id)?;
    match c.status() {
        ContainerStatus::Created => start_created(&mut c),
        ContainerStatus::Running | ContainerStatus::Paused => {
            Err(RuntimeError::AlreadyRunning(id.to_string()))
        }
        status => Err(RuntimeError::CannotStart {
            id: id.to_string(),
            status,
        }),
    }
}

/// Starts a created container, then runs its poststart hooks (ours to run:
/// see `crate::hooks`).
pub(crate) fn start_created(c: &mut Container) -> Result<()> {
    c.start()
        .map_err(|e| RuntimeError::container(format!("starting container {}", c.id()), e))?;
    let late = crate::hooks::load(c);
    let root = c.root.clone();
    crate::hooks::run_each("poststart", &late.poststart, c, Some(&root));
    Ok(())
}
