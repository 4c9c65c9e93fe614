//! `exec`: run another process in a running container. As runc does, the
//! new process starts from the container's own `process` (user, env,
//! capabilities, rlimits, no_new_privs) with the command line's overrides,
//! and gets the container's seccomp filter.

use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use serde_json::Value;

use crate::console::ConsoleListener;
use crate::container::{load, GlobalOpts};
use crate::error::{Result, RuntimeError};
use crate::executor::KeelExecutor;
use crate::foreground;
use crate::spec::{load_bundle_config, CONFIG_FILE};

use super::create::absolute;

#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub id: String,
    pub args: Vec<String>,
    pub process: Option<PathBuf>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `uid[:gid]`
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub preserve_fds: i32,
    pub ignore_paused: bool,
    pub cgroup: Option<String>,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

fn invalid(msg: impl Into<String>) -> RuntimeError {
    RuntimeError::Invalid(msg.into())
}

fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let bad = || invalid(format!("--user \"{s}\": want uid[:gid] as numbers"));
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u.parse().map_err(|_| bad())?;
    let gid = g.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

/// The process JSON for the new process, as runc builds it.
fn process_json(o: &ExecOpts, base: &Value) -> Result<Value> {
    if let Some(path) = &o.process {
        let data = std::fs::read(path)
            .map_err(|e| RuntimeError::io(format!("--process {}", path.display()), e))?;
        let mut p: Value =
            serde_json::from_slice(&data).map_err(|e| RuntimeError::InvalidConfig {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if o.tty {
            p["terminal"] = Value::Bool(true);
        }
        return Ok(p);
    }
    if o.args.is_empty() {
        return Err(invalid(
            "exec: no command given (want ID COMMAND [ARGS...])",
        ));
    }
    let mut p = base.clone();
    if !p.is_object() {
        p = serde_json::json!({"user": {"uid": 0, "gid": 0}, "cwd": "/"});
    }
    p["args"] = serde_json::json!(o.args);
    p["terminal"] = Value::Bool(o.tty);
    if !o.env.is_empty() {
        let mut env: Vec<Value> = p["env"].as_array().cloned().unwrap_or_default();
        env.extend(o.env.iter().map(|e| Value::String(e.clone())));
        p["env"] = Value::Array(env);
    }
    if let Some(cwd) = &o.cwd {
        if !cwd.starts_with('/') {
            return Err(invalid(format!(
                "--cwd \"{cwd}\": must be an absolute path"
            )));
        }
        p["cwd"] = Value::String(cwd.clone());
    }
    if let Some(user) = &o.user {
        let (uid, gid) = parse_user(user)?;
        p["user"]["uid"] = uid.into();
        if let Some(gid) = gid {
            p["user"]["gid"] = gid.into();
        }
    }
    if !o.additional_gids.is_empty() {
        p["user"]["additionalGids"] = serde_json::json!(o.additional_gids);
    }
    if !o.caps.is_empty() {
        for set in [
            "bounding",
            "effective",
            "permitted",
            "ambient",
            "inheritable",
        ] {
            let mut caps: Vec<Value> = p["capabilities"][set]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in &o.caps {
                let c = if c.starts_with("CAP_") {
                    c.clone()
                } else {
                    format!("CAP_{c}")
                };
                if !caps.iter().any(|v| v == &Value::String(c.clone())) {
                    caps.push(Value::String(c));
                }
            }
            p["capabilities"][set] = Value::Array(caps);
        }
    }
    if o.no_new_privs {
        p["noNewPrivileges"] = Value::Bool(true);
    }
    if let Some(a) = &o.apparmor {
        p["apparmorProfile"] = Value::String(a.clone());
    }
    if let Some(l) = &o.process_label {
        p["selinuxLabel"] = Value::String(l.clone());
    }
    // `consoleSize` of the container's init says nothing about this one.
    if let Some(obj) = p.as_object_mut() {
        obj.remove("consoleSize");
    }
    Ok(p)
}

/// Removes the temporary process file whatever happens.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn exec(g: &GlobalOpts, o: &ExecOpts) -> Result<i32> {
    let c = load(g, &o.id)?;
    // The process joins the container's cgroups (see `cgroup_prime`).
    let primer = crate::cgroup_prime::start();
    let bundle = c.bundle().clone();
    let spec = load_bundle_config(&bundle)?;
    let config_path = bundle.join(CONFIG_FILE);
    let base: Value =
        serde_json::to_value(spec.process()).map_err(|source| RuntimeError::Json {
            what: "container process".into(),
            source,
        })?;
    let mut process = process_json(o, &base)?;
    let terminal = process["terminal"].as_bool().unwrap_or(false);
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
    // The same seccomp window as at create (see `seccomp::privilege`).
    let filters = seccomp.as_ref().map_or(0, |s| s.filter_count());
    let parsed: libcontainer::oci_spec::runtime::Process = serde_json::from_value(process.clone())
        .map_err(|e| RuntimeError::Invalid(format!("exec process: {e}")))?;
    let caps_after_seccomp = crate::seccomp::privilege::needs_window(&parsed, filters)
        .then(|| crate::seccomp::privilege::widen(&mut process));
    let root = g.ensure_root()?;
    let tmp = TempFile(root.join(format!(".exec-{}-{}.json", std::process::id(), o.id)));
    std::fs::write(&tmp.0, process.to_string())
        .map_err(|e| RuntimeError::io(format!("writing {}", tmp.0.display()), e))?;

    let own_console = if terminal && !o.detach && o.console_socket.is_none() {
        Some(ConsoleListener::bind(&root, &o.id)?)
    } else {
        None
    };
    let console = match &own_console {
        Some(l) => Some(l.path().to_path_buf()),
        None => o.console_socket.as_deref().map(absolute).transpose()?,
    };
    let pid_file = o.pid_file.as_deref().map(absolute).transpose()?;
    let executor = KeelExecutor {
        seccomp,
        keyring: None,
        caps_after_seccomp,
    };
    if !o.detach {
        foreground::become_subreaper()?;
    }
    let pid = ContainerBuilder::new(o.id.clone(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&root)
        .and_then(|b| b.with_pid_file(pid_file.as_ref()))
        .map(|b| b.with_console_socket(console.as_ref()))
        .map(|b| b.with_preserved_fds(o.preserve_fds))
        .and_then(|b| {
            b.as_tenant()
                .with_detach(o.detach || own_console.is_some())
                .with_process(Some(&tmp.0))
                .with_ignore_paused(o.ignore_paused)
                .with_sub_cgroup(o.cgroup.clone())
                .build()
        })
        .map_err(|e| RuntimeError::container(format!("exec in container {}", o.id), e))?;
    drop(tmp);
    drop(primer);
    if o.detach {
        return Ok(0);
    }
    let pty = own_console
        .as_ref()
        .map(|l| l.receive_master())
        .transpose()?;
    drop(own_console);
    let mut sfd = foreground::block_signals()?;
    foreground::wait(pid, &mut sfd, pty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        serde_json::json!({
            "user": {"uid": 1000, "gid": 1000},
            "args": ["sh"],
            "env": ["PATH=/bin", "A=1"],
            "cwd": "/srv",
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
            "noNewPrivileges": false,
            "consoleSize": {"height": 10, "width": 10}
        })
    }

    #[test]
    fn exec_starts_from_the_containers_process() {
        let o = ExecOpts {
            args: vec!["ls".into(), "-l".into()],
            ..Default::default()
        };
        let p = process_json(&o, &base()).unwrap();
        assert_eq!(p["args"], serde_json::json!(["ls", "-l"]));
        assert_eq!(p["user"]["uid"], 1000);
        assert_eq!(p["cwd"], "/srv");
        assert_eq!(p["terminal"], false);
        assert!(p.get("consoleSize").is_none());
    }

    #[test]
    fn overrides_apply() {
        let o = ExecOpts {
            args: vec!["id".into()],
            tty: true,
            env: vec!["B=2".into()],
            cwd: Some("/tmp".into()),
            user: Some("0:5".into()),
            additional_gids: vec![7],
            caps: vec!["NET_ADMIN".into()],
            no_new_privs: true,
            ..Default::default()
        };
        let p = process_json(&o, &base()).unwrap();
        assert_eq!(p["env"], serde_json::json!(["PATH=/bin", "A=1", "B=2"]));
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["user"]["uid"], 0);
        assert_eq!(p["user"]["gid"], 5);
        assert_eq!(p["user"]["additionalGids"], serde_json::json!([7]));
        assert_eq!(p["terminal"], true);
        assert_eq!(p["noNewPrivileges"], true);
        assert!(p["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .contains(&Value::String("CAP_NET_ADMIN".into())));
    }

    #[test]
    fn bad_overrides_are_refused_by_name() {
        let o = ExecOpts {
            args: vec!["id".into()],
            user: Some("root".into()),
            ..Default::default()
        };
        assert!(process_json(&o, &base())
            .unwrap_err()
            .to_string()
            .contains("--user"));
        let o = ExecOpts {
            args: vec!["id".into()],
            cwd: Some("rel".into()),
            ..Default::default()
        };
        assert!(process_json(&o, &base())
            .unwrap_err()
            .to_string()
            .contains("--cwd"));
        let o = ExecOpts::default();
        assert!(process_json(&o, &base())
            .unwrap_err()
            .to_string()
            .contains("no command"));
    }
}
