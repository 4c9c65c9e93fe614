//! `exec [-i] [-t] [-d] [-e] [-w] [-u] CONTAINER CMD...`: the runtime's own
//! `exec`, in the foreground with our stdio (with `-t` the runtime proxies
//! a pty of its own, as runc does), its exit code ours.

use std::process::Stdio;

use keel_builder::bundle::resolve_user;

use super::{Result, Shim, ShimError};
use crate::container::{status, Status};

#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub interactive: bool,
    pub tty: bool,
    pub detach: bool,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub command: Vec<String>,
}

pub fn exec(shim: &Shim, name: &str, req: &ExecRequest) -> Result<i32> {
    let meta = shim.containers().resolve(name)?;
    if !matches!(status(&shim.paths, &meta), Status::Running { .. }) {
        return Err(ShimError::Refused(format!(
            "container {} is not running",
            meta.name
        )));
    }
    let rt = shim.runtime_client(&meta.runtime);
    let mut args: Vec<String> = vec!["exec".into()];
    if req.tty {
        args.push("--tty".into());
    }
    if req.detach {
        args.push("--detach".into());
    }
    for e in &req.env {
        args.push("--env".into());
        args.push(e.clone());
    }
    if let Some(w) = &req.workdir {
        args.push("--cwd".into());
        args.push(w.clone());
    }
    if let Some(u) = &req.user {
        // The runtime takes numbers: names go through the image's passwd.
        let rootfs = shim.paths.bundle(&meta.id).join("rootfs");
        let r = resolve_user(&rootfs, u)?;
        args.push("--user".into());
        args.push(format!("{}:{}", r.uid, r.gid));
        for g in r.additional_gids {
            args.push("--additional-gids".into());
            args.push(g.to_string());
        }
    }
    args.push(meta.id.clone());
    args.extend(req.command.iter().cloned());
    let mut cmd = rt.command(&args);
    if !req.interactive && !req.tty {
        cmd.stdin(Stdio::null());
    }
    let status = cmd
        .status()
        .map_err(ShimError::io("running", meta.runtime.clone()))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(super::EXIT_OWN_ERROR))
}
