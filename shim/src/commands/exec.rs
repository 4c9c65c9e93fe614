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
    // The runtime's stderr passes through us, so that its own error about
    // a command it could not run can become docker's 126/127 (runtimes
    // exit 1 or 255 for it, which a command may exit with too).
    cmd.stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(ShimError::io("running", meta.runtime.clone()))?;
    let last_line = child
        .stderr
        .take()
        .map(|err| std::thread::spawn(move || forward_stderr(err)));
    let status = child
        .wait()
        .map_err(ShimError::io("waiting for", meta.runtime.clone()))?;
    let last_line = last_line.and_then(|t| t.join().ok()).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(super::EXIT_OWN_ERROR);
    Ok(match runtime_exec_failure(&last_line) {
        Some(mapped) if code != 0 => mapped,
        _ => code,
    })
}

/// Copies the runtime's stderr to ours as it comes; returns its last line.
fn forward_stderr(mut from: std::process::ChildStderr) -> String {
    use std::io::{Read, Write};
    let mut buf = [0u8; 8192];
    let mut tail: Vec<u8> = Vec::new();
    let mut out = std::io::stderr();
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 16384 {
                    tail.drain(..tail.len() - 8192);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string()
}

/// docker's code for a runtime's own "could not exec" error line (logrus
/// `level=error` from runc and keel-runtime), None for anything else.
fn runtime_exec_failure(line: &str) -> Option<i32> {
    if !line.contains("level=error") {
        return None;
    }
    match crate::supervisor::exit_code_for_runtime_error(line) {
        c @ (crate::supervisor::EXIT_NOT_EXECUTABLE | crate::supervisor::EXIT_NOT_FOUND) => Some(c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::runtime_exec_failure;

    #[test]
    fn runtime_exec_errors_become_dockers_codes() {
        let keel = r#"time="2026-12-01T20:32:51Z" level=error msg="exec in container c0: failed to create container: exec process failed with error error in executing process : executable 'nosuch' not found in $PATH""#;
        let runc = r#"time="2026-12-01T20:33:42Z" level=error msg="exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied""#;
        assert_eq!(runtime_exec_failure(keel), Some(127));
        assert_eq!(runtime_exec_failure(runc), Some(126));
        // The command's own words are not the runtime's.
        assert_eq!(runtime_exec_failure("sh: exec: nosuch: not found"), None);
        assert_eq!(
            runtime_exec_failure(r#"level=error msg="cgroup gone""#),
            None
        );
    }
}
