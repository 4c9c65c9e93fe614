//! Where a container is in its life, from what is on disk and alive: the
//! exit record, the supervisor process, and the runtime's own state.

use std::fs;

use chrono::{DateTime, Utc};
use keel_runtime_client::{Runtime, Status as RuntimeStatus};

use super::{ContainerMeta, ExitRecord, Paths};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Made, not started (or its supervisor is still starting it).
    Created,
    /// `pid` is the container's init in the host's pid namespace; 0 in the
    /// instant after it exited and before the supervisor recorded that.
    Running { pid: i32 },
    /// `finished_at` as recorded (RFC 3339).
    Exited { code: i32, finished_at: String },
    /// The supervisor is gone without recording an exit: killed, or the
    /// host rebooted under it.
    Dead,
}

impl Status {
    /// docker's `State.Status` word.
    pub fn docker_name(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running { .. } => "running",
            Status::Exited { .. } => "exited",
            Status::Dead => "dead",
        }
    }
}

pub fn status(paths: &Paths, meta: &ContainerMeta) -> Status {
    let exited = || {
        ExitRecord::load(&paths.exit(&meta.id)).map(|r| Status::Exited {
            code: r.code,
            finished_at: r.finished_at,
        })
    };
    if let Some(s) = exited() {
        return s;
    }
    let pid_file = paths.supervisor_pid(&meta.id);
    let Ok(text) = fs::read_to_string(&pid_file) else {
        // Never started: nothing was ever spawned for it.
        return Status::Created;
    };
    let alive = text
        .trim()
        .parse::<i32>()
        .ok()
        .is_some_and(|pid| is_our_supervisor(pid, &meta.id));
    if !alive {
        // It may have recorded the exit just before going.
        return exited().unwrap_or(Status::Dead);
    }
    let runtime = Runtime::new(&meta.runtime).root(paths.runtime_root());
    match runtime.state(&meta.id) {
        Ok(st) => match st.status {
            RuntimeStatus::Running | RuntimeStatus::Paused => Status::Running { pid: st.pid },
            RuntimeStatus::Stopped => exited().unwrap_or(Status::Running { pid: 0 }),
            _ => Status::Created,
        },
        // The supervisor lives but the runtime has no container (yet).
        Err(e) => {
            tracing::debug!(id = meta.id, %e, "runtime state");
            exited().unwrap_or(Status::Created)
        }
    }
}

/// Whether `pid` is alive and is the supervisor of `id`, not some process
/// that got the pid after ours died: its command line has the hidden
/// `__supervise` verb and the id. A zombie has an empty command line.
pub fn is_our_supervisor(pid: i32, id: &str) -> bool {
    if pid <= 0 {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.iter().any(|a| *a == b"__supervise")
        && args
            .iter()
            .any(|a| a.windows(id.len()).any(|w| w == id.as_bytes()))
}

/// When process `pid` started, from its `/proc` stat (clock ticks after
/// boot) and the boot time: what `Up 3 minutes` counts from.
pub fn process_start_time(pid: i32) -> Option<DateTime<Utc>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields are
    // counted from the last ')'; starttime is field 22, the 20th after it.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: i64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        return None;
    }
    let hz = hz as u64;
    let nanos = (ticks % hz) * 1_000_000_000 / hz;
    DateTime::from_timestamp(btime + (ticks / hz) as i64, nanos as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::store::tests::meta;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    fn paths() -> (tempfile::TempDir, Paths) {
        let d = tempfile::tempdir().unwrap();
        let p = Paths::new(d.path().join("root"), d.path().join("run"));
        (d, p)
    }

    fn pid_file(p: &Paths, id: &str, pid: u32) {
        fs::create_dir_all(p.run_dir(id)).unwrap();
        fs::write(p.supervisor_pid(id), format!("{pid}\n")).unwrap();
    }

    /// A stand-in runtime that answers `state` with `status`.
    fn fake_runtime(dir: &std::path::Path, status: &str, pid: i32) -> std::path::PathBuf {
        let bin = dir.join(format!("rt-{status}"));
        fs::write(
            &bin,
            format!("#!/bin/sh\necho '{{\"id\":\"x\",\"pid\":{pid},\"status\":\"{status}\"}}'\n"),
        )
        .unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    /// A live process whose command line looks like our supervisor's.
    struct FakeSupervisor(std::process::Child);
    impl FakeSupervisor {
        fn spawn(id: &str) -> FakeSupervisor {
            let child = Command::new("sh")
                .args(["-c", "sleep 30; true", "__supervise", id])
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            // Until it has exec'd, /proc shows the forking test's cmdline.
            let cmdline = format!("/proc/{}/cmdline", child.id());
            for _ in 0..200 {
                if fs::read(&cmdline).is_ok_and(|c| c.windows(11).any(|w| w == b"__supervise")) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            FakeSupervisor(child)
        }
    }
    impl Drop for FakeSupervisor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn never_started_is_created_and_exit_record_wins() {
        let (_d, p) = paths();
        let m = meta("a");
        assert_eq!(status(&p, &m), Status::Created);
        fs::create_dir_all(p.container_dir(&m.id)).unwrap();
        let rec = ExitRecord {
            code: 137,
            signal: Some(9),
            started_at: None,
            finished_at: "2024-01-01T00:00:00Z".into(),
        };
        fs::write(p.exit(&m.id), serde_json::to_vec(&rec).unwrap()).unwrap();
        pid_file(&p, &m.id, std::process::id());
        assert_eq!(
            status(&p, &m),
            Status::Exited {
                code: 137,
                finished_at: "2024-01-01T00:00:00Z".into()
            }
        );
    }

    #[test]
    fn a_dead_supervisor_without_exit_record_is_dead() {
        let (_d, p) = paths();
        let m = meta("a");
        // A pid that existed and is gone: a reaped child's.
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid_file(&p, &m.id, pid);
        assert_eq!(status(&p, &m), Status::Dead);
        // A live process that is not our supervisor (this test) neither.
        pid_file(&p, &m.id, std::process::id());
        assert_eq!(status(&p, &m), Status::Dead);
        fs::write(p.supervisor_pid(&m.id), "garbage").unwrap();
        assert_eq!(status(&p, &m), Status::Dead);
    }

    #[test]
    fn a_live_supervisor_defers_to_the_runtime() {
        let (d, p) = paths();
        let mut m = meta("a");
        let sup = FakeSupervisor::spawn(&m.id);
        pid_file(&p, &m.id, sup.0.id());
        assert!(is_our_supervisor(sup.0.id() as i32, &m.id));
        assert!(!is_our_supervisor(sup.0.id() as i32, "someoneelse"));

        m.runtime = fake_runtime(d.path(), "running", 4242);
        assert_eq!(status(&p, &m), Status::Running { pid: 4242 });
        m.runtime = fake_runtime(d.path(), "created", 4242);
        assert_eq!(status(&p, &m), Status::Created);
        m.runtime = d.path().join("no-such-runtime");
        assert_eq!(status(&p, &m), Status::Created);
    }

    #[test]
    fn start_time_of_a_process() {
        let t = process_start_time(std::process::id() as i32).unwrap();
        let age = Utc::now() - t;
        // This test process started a moment ago (allow a slow machine,
        // and the whole-second boot time).
        assert!(age.num_seconds() >= -2 && age.num_seconds() < 600, "{age}");
        assert!(process_start_time(-1).is_none());
    }
}
