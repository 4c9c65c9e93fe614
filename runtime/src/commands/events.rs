//! `events`: resource statistics of a running container as runc's event
//! lines (`{"type":"stats","id":...,"data":...}`), once with `--stats`,
//! otherwise every interval until the container stops.

use std::io::Write;
use std::time::Duration;

use libcgroups::common::CgroupManager;
use libcontainer::container::ContainerStatus;

use crate::container::{load, GlobalOpts};
use crate::error::{Result, RuntimeError};

pub fn events(g: &GlobalOpts, id: &str, interval: Duration, stats_once: bool) -> Result<()> {
    let c = load(g, id)?;
    if c.status() != ContainerStatus::Running && c.status() != ContainerStatus::Paused {
        return Err(RuntimeError::NotRunning(id.to_string()));
    }
    let mgr = super::cgroup_manager(&c)?;
    let stdout = std::io::stdout();
    loop {
        let stats = mgr.stats().map_err(|e| RuntimeError::Cgroup {
            what: format!("statistics of container {id}"),
            message: crate::error::chain(&e),
        })?;
        let line = serde_json::json!({"type": "stats", "id": id, "data": stats});
        let mut out = stdout.lock();
        if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
            return Ok(()); // reader went away
        }
        drop(out);
        if stats_once {
            return Ok(());
        }
        std::thread::sleep(interval);
        match load(g, id) {
            Ok(c) if c.status() != ContainerStatus::Stopped => {}
            _ => return Ok(()),
        }
    }
}

/// Parses runc's `--interval` (Go durations: `5s`, `500ms`, `1m`).
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || {
        RuntimeError::Invalid(format!(
            "--interval \"{s}\": want a duration such as 5s or 500ms"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_interval("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("fast").is_err());
    }
}
