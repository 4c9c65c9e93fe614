//! `run`: create and start in one step; in the foreground, wait for the
//! container, proxy its terminal, delete it and return its exit status.

use crate::console::ConsoleListener;
use crate::container::GlobalOpts;
use crate::error::{Result, RuntimeError};
use crate::foreground;
use crate::spec::load_bundle_config;

use super::create::{build, CreateOpts};
use super::delete::delete_loaded;
use super::start::start_created;

#[derive(Debug, Clone, Default)]
pub struct RunOpts {
    pub create: CreateOpts,
    pub detach: bool,
    pub no_subreaper: bool,
    pub keep: bool,
}

pub fn run(g: &GlobalOpts, o: &RunOpts) -> Result<i32> {
    if o.detach {
        let mut c = build(g, &o.create, true)?;
        return match start_created(&mut c) {
            Ok(()) => Ok(0),
            Err(e) => {
                let _ = delete_loaded(&mut c, true);
                Err(e)
            }
        };
    }
    if !o.no_subreaper {
        foreground::become_subreaper()?;
    }
    // With a terminal and no console socket, the pty is ours to proxy.
    let bundle = std::fs::canonicalize(&o.create.bundle)
        .map_err(|e| RuntimeError::io(format!("bundle {}", o.create.bundle.display()), e))?;
    let terminal = load_bundle_config(&bundle)?
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let own_console = if terminal && o.create.console_socket.is_none() {
        Some(ConsoleListener::bind(&g.ensure_root()?, &o.create.id)?)
    } else {
        None
    };
    let mut create = o.create.clone();
    if let Some(l) = &own_console {
        create.console_socket = Some(l.path().to_path_buf());
    }
    let mut c = build(g, &create, own_console.is_some())?;
    let pty = match &own_console {
        Some(l) => match l.receive_master() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete_loaded(&mut c, true);
                return Err(e);
            }
        },
        None => None,
    };
    drop(own_console);
    if let Err(e) = start_created(&mut c) {
        let _ = delete_loaded(&mut c, true);
        return Err(e);
    }
    let mut sfd = foreground::block_signals()?;
    let pid = c
        .pid()
        .ok_or_else(|| RuntimeError::Invalid(format!("container {} has no pid", o.create.id)))?;
    let code = foreground::wait(pid, &mut sfd, pty)?;
    if !o.keep {
        delete_loaded(&mut c, true)?;
    }
    Ok(code)
}
