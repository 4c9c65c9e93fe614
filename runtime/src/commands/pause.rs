//! `pause` and `resume`: freeze and thaw every process of the container.

use crate::container::{load_for_change, GlobalOpts};
use crate::error::{Result, RuntimeError};

pub fn pause(g: &GlobalOpts, id: &str) -> Result<()> {
    let (mut c, _lock) = load_for_change(g, id)?;
    if !c.can_pause() {
        return Err(RuntimeError::WrongStatus {
            id: id.to_string(),
            status: c.status(),
            action: "pause",
        });
    }
    c.pause()
        .map_err(|e| RuntimeError::container(format!("pausing container {id}"), e))
}

pub fn resume(g: &GlobalOpts, id: &str) -> Result<()> {
    let (mut c, _lock) = load_for_change(g, id)?;
    if !c.can_resume() {
        return Err(RuntimeError::WrongStatus {
            id: id.to_string(),
            status: c.status(),
            action: "resume (it is not paused)",
        });
    }
    c.resume()
        .map_err(|e| RuntimeError::container(format!("resuming container {id}"), e))
}
