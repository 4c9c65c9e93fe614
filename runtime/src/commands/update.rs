//! `update`: change a running container's cgroup limits, from a
//! LinuxResources JSON (`--resources FILE`, `-` for stdin) and/or runc's
//! individual flags; only what is given is written.

use std::io::Read;
use std::path::PathBuf;

use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use crate::container::{load, GlobalOpts};
use crate::error::{Result, RuntimeError};

#[derive(Debug, Clone, Default)]
pub struct UpdateOpts {
    pub resources: Option<PathBuf>,
    pub blkio_weight: Option<u16>,
    pub cpu_period: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_share: Option<u64>,
    pub cpu_rt_period: Option<u64>,
    pub cpu_rt_runtime: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub memory: Option<String>,
    pub memory_reservation: Option<String>,
    pub memory_swap: Option<String>,
    pub pids_limit: Option<i64>,
}

/// Go's units.RAMInBytes as runc uses it: `512`, `64k`, `100M`, `1g`, `-1`.
pub fn parse_bytes(flag: &str, s: &str) -> Result<i64> {
    let bad = || {
        RuntimeError::Invalid(format!(
            "--{flag} \"{s}\": want bytes such as 512, 64k, 100m or -1"
        ))
    };
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if n < 0.0 {
        return Err(bad());
    }
    Ok((n * mult as f64) as i64)
}

fn resources_value(o: &UpdateOpts) -> Result<Value> {
    let mut r = match &o.resources {
        Some(p) => {
            let data = if p.as_os_str() == "-" {
                let mut s = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut s)
                    .map_err(|e| RuntimeError::io("reading resources from stdin", e))?;
                s
            } else {
                std::fs::read(p)
                    .map_err(|e| RuntimeError::io(format!("--resources {}", p.display()), e))?
            };
            serde_json::from_slice(&data).map_err(|e| RuntimeError::InvalidConfig {
                path: p.clone(),
                message: e.to_string(),
            })?
        }
        None => json!({}),
    };
    if !r.is_object() {
        return Err(RuntimeError::Invalid(
            "--resources: want a JSON object".into(),
        ));
    }
    let mut set = |section: &str, key: &str, v: Value| {
        if !r[section].is_object() {
            r[section] = json!({});
        }
        r[section][key] = v;
    };
    if let Some(v) = o.blkio_weight {
        set("blockIO", "weight", v.into());
    }
    if let Some(v) = o.cpu_period {
        set("cpu", "period", v.into());
    }
    if let Some(v) = o.cpu_quota {
        set("cpu", "quota", v.into());
    }
    if let Some(v) = o.cpu_share {
        set("cpu", "shares", v.into());
    }
    if let Some(v) = o.cpu_rt_period {
        set("cpu", "realtimePeriod", v.into());
    }
    if let Some(v) = o.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", v.into());
    }
    if let Some(v) = &o.cpuset_cpus {
        set("cpu", "cpus", v.clone().into());
    }
    if let Some(v) = &o.cpuset_mems {
        set("cpu", "mems", v.clone().into());
    }
    if let Some(v) = &o.memory {
        set("memory", "limit", parse_bytes("memory", v)?.into());
    }
    if let Some(v) = &o.memory_reservation {
        set(
            "memory",
            "reservation",
            parse_bytes("memory-reservation", v)?.into(),
        );
    }
    if let Some(v) = &o.memory_swap {
        set("memory", "swap", parse_bytes("memory-swap", v)?.into());
    }
    if let Some(v) = o.pids_limit {
        set("pids", "limit", v.into());
    }
    Ok(r)
}

pub fn update(g: &GlobalOpts, id: &str, o: &UpdateOpts) -> Result<()> {
    let value = resources_value(o)?;
    let resources: LinuxResources = serde_json::from_value(value)
        .map_err(|e| RuntimeError::Invalid(format!("resources: {e}")))?;
    let c = load(g, id)?;
    if !c.can_kill() {
        return Err(RuntimeError::NotRunning(id.to_string()));
    }
    let mgr = super::cgroup_manager(&c)?;
    mgr.apply(&ControllerOpt {
        resources: &resources,
        disable_oom_killer: false,
        oom_score_adj: None,
        freezer_state: None,
    })
    .map_err(|e| RuntimeError::Cgroup {
        what: format!("updating cgroup of container {id}"),
        message: crate::error::chain(&e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("memory", "512").unwrap(), 512);
        assert_eq!(parse_bytes("memory", "64k").unwrap(), 65536);
        assert_eq!(parse_bytes("memory", "100M").unwrap(), 100 << 20);
        assert_eq!(parse_bytes("memory", "1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("memory", "-1").unwrap(), -1);
        let e = parse_bytes("memory", "lots").unwrap_err().to_string();
        assert!(e.contains("--memory"), "{e}");
    }

    #[test]
    fn flags_become_resources() {
        let o = UpdateOpts {
            memory: Some("64m".into()),
            pids_limit: Some(10),
            cpu_quota: Some(5000),
            ..Default::default()
        };
        let v = resources_value(&o).unwrap();
        let r: LinuxResources = serde_json::from_value(v).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(5000));
    }
}
