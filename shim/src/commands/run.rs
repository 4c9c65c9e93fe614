//! `run`: create, then either start detached (print the id) or attach
//! first and start through the attach connection, so that no output is
//! missed, and end with the container's exit status.

use super::create::{create, CreateRequest};
use super::lifecycle::remove_quietly;
use super::{Result, Shim};
use crate::attach::{attach, parse_detach_keys, AttachEnd, AttachOptions, DEFAULT_DETACH_KEYS};
use crate::supervisor::spawn;

pub fn detach_keys(spec: Option<&str>) -> Result<Vec<u8>> {
    match spec {
        None => Ok(DEFAULT_DETACH_KEYS.to_vec()),
        Some(s) => parse_detach_keys(s).map_err(|e| super::ShimError::Flag {
            flag: "--detach-keys",
            value: s.to_string(),
            reason: e.to_string(),
        }),
    }
}

pub fn run(
    shim: &Shim,
    req: &CreateRequest,
    detach: bool,
    detach_keys_spec: Option<&str>,
    sig_proxy: bool,
) -> Result<i32> {
    let keys = detach_keys(detach_keys_spec)?;
    let meta = create(shim, req)?;
    if detach {
        if let Err(e) = spawn(&shim.paths, &meta, true) {
            remove_quietly(shim, &meta);
            return Err(e.into());
        }
        println!("{}", meta.id);
        return Ok(0);
    }
    if let Err(e) = spawn(&shim.paths, &meta, false) {
        remove_quietly(shim, &meta);
        return Err(e.into());
    }
    let opts = AttachOptions {
        stdin: req.interactive,
        tty: req.tty,
        detach_keys: keys,
        sig_proxy,
        start: true,
    };
    match attach(&shim.paths, &meta.id, &opts)? {
        AttachEnd::Exited(code) => Ok(code),
        AttachEnd::Detached => Ok(0),
    }
}

/// `attach`: reconnect to a running container.
pub fn attach_to(
    shim: &Shim,
    name: &str,
    stdin: bool,
    keys: Option<&str>,
    sig_proxy: bool,
) -> Result<i32> {
    let keys = detach_keys(keys)?;
    let meta = shim.containers().resolve(name)?;
    if !matches!(
        crate::container::status(&shim.paths, &meta),
        crate::container::Status::Running { .. }
    ) {
        return Err(super::ShimError::Refused(format!(
            "You cannot attach to a stopped container, start it first ({})",
            meta.name
        )));
    }
    let opts = AttachOptions {
        stdin: stdin && meta.stdin,
        tty: meta.tty,
        detach_keys: keys,
        sig_proxy,
        start: false,
    };
    match attach(&shim.paths, &meta.id, &opts)? {
        AttachEnd::Exited(code) => Ok(code),
        AttachEnd::Detached => Ok(0),
    }
}
