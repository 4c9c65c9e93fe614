//! `run`: create and start in one step; in the foreground, wait for the
//! container, proxy its terminal, delete it and return its exit status.

use crate::console::ConsoleListener;
use crate::container::GlobalOpts;
use crate::error::{Result, RuntimeError};
use crate::foreground;
use crate::spec::load_bundle_config;

use super::create::{build, build_from, canonical_bundle, CreateOpts};
use super::delete::delete_own;
use super::start::start_created;
use crate::container::validate_id;
use crate::state_lock::{Access, StateLock};

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
        return match start_own(&mut c) {
            Ok(()) => Ok(0),
            Err(e) => {
                let _ = delete_own(&mut c, true);
                Err(e)
            }
        };
    }
    if !o.no_subreaper {
        foreground::become_subreaper()?;
    }
    validate_id(&o.create.id)?;
    let primer = crate::cgroup_prime::start();
    // With a terminal and no console socket, the pty is ours to proxy.
    let bundle = canonical_bundle(&o.create.bundle)?;
    let spec = load_bundle_config(&bundle)?;
    let terminal = spec
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
    let mut c = build_from(g, &create, own_console.is_some(), bundle, spec)?;
    drop(primer);
    let pty = match &own_console {
        Some(l) => match l.receive_master() {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = delete_own(&mut c, true);
                return Err(e);
            }
        },
        None => None,
    };
    drop(own_console);
    if let Err(e) = start_own(&mut c) {
        let _ = delete_own(&mut c, true);
        return Err(e);
    }
    let mut sfd = foreground::block_signals()?;
    let pid = c
        .pid()
        .ok_or_else(|| RuntimeError::Invalid(format!("container {} has no pid", o.create.id)))?;
    let code = foreground::wait(pid, &mut sfd, pty)?;
    if !o.keep {
        // Under the lock: a concurrent `kill` (the one that ended the
        // container, typically) rewrites state.json until it returns.
        delete_own(&mut c, true)?;
    }
    Ok(code)
}

/// Starts the container this `run` has just created (another process may
/// have deleted it since, or be signalling it).
fn start_own(c: &mut libcontainer::container::Container) -> Result<()> {
    let lock = StateLock::acquire(&c.root, c.id(), Access::Write)?;
    start_created(c, lock)
}
