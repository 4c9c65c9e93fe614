//! `ps`: the processes in the container's cgroup; JSON is the list of pids
//! (what containerd reads), the table is the host's `ps` filtered to them.

use std::process::Command;

use libcgroups::common::CgroupManager;

use crate::container::{load, GlobalOpts};
use crate::error::{Result, RuntimeError};

pub fn pids(g: &GlobalOpts, id: &str) -> Result<Vec<i32>> {
    let c = load(g, id)?;
    let mgr = super::cgroup_manager(&c)?;
    let mut pids: Vec<i32> = mgr
        .get_all_pids()
        .map_err(|e| RuntimeError::Cgroup {
            what: format!("processes of container {id}"),
            message: crate::error::chain(&e),
        })?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

pub fn ps_json(g: &GlobalOpts, id: &str) -> Result<String> {
    let pids = pids(g, id)?;
    serde_json::to_string(&pids)
        .map(|s| s + "\n")
        .map_err(|source| RuntimeError::Json {
            what: format!("pids of container {id}"),
            source,
        })
}

/// Runs `ps` with the caller's options (default `-ef`) and keeps the header
/// and the lines whose PID column is one of the container's.
pub fn ps_table(g: &GlobalOpts, id: &str, ps_args: &[String]) -> Result<String> {
    let pids = pids(g, id)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| RuntimeError::io("running ps", e))?;
    if !out.status.success() {
        return Err(RuntimeError::Invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    filter_ps(&String::from_utf8_lossy(&out.stdout), &pids)
}

fn filter_ps(out: &str, pids: &[i32]) -> Result<String> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| RuntimeError::Invalid("ps output has no PID column".into()))?;
    let mut res = format!("{header}\n");
    for l in lines {
        if let Some(Ok(pid)) = l.split_whitespace().nth(col).map(str::parse::<i32>) {
            if pids.contains(&pid) {
                res.push_str(l);
                res.push('\n');
            }
        }
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_header_and_container_pids() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 00:00 ? 00:00:01 init\nroot 42 1 0 00:00 ? 00:00:00 sh\n";
        let f = filter_ps(out, &[42]).unwrap();
        assert_eq!(f.lines().count(), 2);
        assert!(f.contains(" 42 "));
    }

    #[test]
    fn refuses_output_without_pid_column() {
        assert!(filter_ps("A B\n1 2\n", &[1]).is_err());
    }
}
