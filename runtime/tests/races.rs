//! Root integration tests hammering the races between a foreground `run`
//! and other processes driving the same container: `kill` from a client,
//! `state` and `list` from a monitor. Each runs a few seconds of parallel
//! loops; nothing is timing-asserted, only that every command's result is
//! one it may give (the exit status of the container, no error from `run`,
//! a whole state from every read).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{assert_nothing_left, Bundle, Runtime};

const LOOPS: usize = 4;
const HAMMER_FOR: Duration = Duration::from_secs(4);

/// A foreground `run` started in the background, its output in files.
struct ForegroundRun {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl ForegroundRun {
    fn start(rt: &Runtime, bundle: &Bundle, id: &str, logs: &Path) -> ForegroundRun {
        let out = logs.join(format!("{id}.out"));
        let err = logs.join(format!("{id}.err"));
        let child = rt
            .cmd()
            .args(["run", "--bundle", bundle.path().to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn keel-runtime run");
        ForegroundRun { child, out, err }
    }

    fn printed(&self, what: &str) -> bool {
        std::fs::read_to_string(&self.out).is_ok_and(|s| s.contains(what))
    }

    /// Waits (bounded) for the container to print `what`; false if `run`
    /// ended first.
    fn wait_printed(&mut self, what: &str) -> bool {
        let limit = Instant::now() + Duration::from_secs(30);
        while Instant::now() < limit {
            if self.printed(what) {
                return true;
            }
            if self.child.try_wait().unwrap().is_some() {
                return self.printed(what);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    /// Its exit status and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let st = self.child.wait().unwrap();
        (st.code(), std::fs::read_to_string(&self.err).unwrap())
    }
}

/// Reads every container's state in a loop until `stop`, recording each
/// read that failed for another reason than the container not existing
/// (yet, or any more), and each output that is not a whole state.
fn monitor(rt: &Runtime, ids: &Mutex<Vec<String>>, stop: &AtomicBool) -> Vec<String> {
    let mut bad = vec![];
    while !stop.load(Ordering::Relaxed) {
        let current: Vec<String> = ids.lock().unwrap().clone();
        for id in &current {
            let out = rt.run(&["state", id]);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                match serde_json::from_str::<serde_json::Value>(&stdout) {
                    Ok(v) if v["id"] == id.as_str() && v["status"].is_string() => {}
                    _ => bad.push(format!("state {id}: not a whole state: {stdout:?}")),
                }
            } else if !stderr.contains("does not exist") {
                bad.push(format!("state {id}: {stderr}"));
            }
        }
        let out = rt.run(&["list", "--format", "json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success()
            || serde_json::from_str::<serde_json::Value>(&stdout).is_err()
            || !out.stderr.is_empty()
        {
            bad.push(format!(
                "list: {stdout:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    bad
}

/// Runs `one(loop, iteration)` in LOOPS threads for HAMMER_FOR each, with a
/// monitor reading the states of the ids in `live` alongside; returns the
/// monitor's complaints.
fn hammer(
    rt: &Runtime,
    live: &Mutex<Vec<String>>,
    one: impl Fn(usize, usize) + Sync,
) -> Vec<String> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mon = s.spawn(|| monitor(rt, live, &stop));
        let loops: Vec<_> = (0..LOOPS)
            .map(|l| {
                let one = &one;
                s.spawn(move || {
                    let until = Instant::now() + HAMMER_FOR;
                    let mut i = 0;
                    while Instant::now() < until {
                        one(l, i);
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let mut panicked = None;
        let mut total = 0;
        for t in loops {
            match t.join() {
                Ok(n) => total += n,
                Err(p) => panicked = Some(p),
            }
        }
        stop.store(true, Ordering::Relaxed);
        let bad = mon.join().unwrap();
        if let Some(p) = panicked {
            std::panic::resume_unwind(p);
        }
        assert!(total >= LOOPS, "every loop ran at least once");
        bad
    })
}

fn logs_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("keel-test-logs-")
        .tempdir()
        .unwrap()
}

/// A foreground `run` whose container is killed by another process's
/// `kill ID KILL` exits 137 and deletes its container, and that `kill`
/// succeeds: the kill's rewrite of state.json and the run's removal of the
/// state directory used to interleave.
#[test]
fn foreground_run_killed_from_outside_exits_137() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh", "-c", "echo ready; exec sleep 100"]);
    let logs = logs_dir();
    let live = Mutex::new(vec![]);
    let done = Mutex::new(vec![]);
    let bad = hammer(&rt, &live, |l, i| {
        let id = common::id(&format!("kill137-{l}-{i}"));
        live.lock().unwrap().push(id.clone());
        let mut run = ForegroundRun::start(&rt, &b, &id, logs.path());
        // Right after the container's first output, as a client that waits
        // for it does (the container may not be marked running yet).
        assert!(run.wait_printed("ready"), "container {id} never printed");
        let out = rt.run(&["kill", &id, "KILL"]);
        let kill_err = String::from_utf8_lossy(&out.stderr).into_owned();
        let (code, run_err) = run.finish();
        live.lock().unwrap().retain(|x| x != &id);
        assert!(out.status.success(), "kill {id} failed: {kill_err}");
        assert_eq!(code, Some(137), "run {id}: {run_err}");
        assert_eq!(run_err, "", "run {id} reported an error");
        done.lock().unwrap().push(id);
    });
    assert!(bad.is_empty(), "readers saw: {bad:#?}");
    for id in done.lock().unwrap().iter() {
        assert_nothing_left(&rt, id, &b);
    }
}

/// A `kill` racing the container's own exit (and `run`'s delete of it)
/// either signals it or says it is not running or does not exist; `run`
/// always reports the exit status, 0 or 137, never an error.
#[test]
fn kill_racing_exit_and_delete() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh", "-c", "echo ready"]);
    let logs = logs_dir();
    let live = Mutex::new(vec![]);
    let done = Mutex::new(vec![]);
    let bad = hammer(&rt, &live, |l, i| {
        let id = common::id(&format!("exitkill-{l}-{i}"));
        live.lock().unwrap().push(id.clone());
        let mut run = ForegroundRun::start(&rt, &b, &id, logs.path());
        run.wait_printed("ready");
        let out = rt.run(&["kill", &id, "KILL"]);
        let kill_err = String::from_utf8_lossy(&out.stderr).into_owned();
        let (code, run_err) = run.finish();
        live.lock().unwrap().retain(|x| x != &id);
        assert!(
            out.status.success()
                || kill_err.contains("does not exist")
                || kill_err.contains("not running"),
            "kill {id}: {kill_err}"
        );
        assert!(
            matches!(code, Some(0) | Some(137)),
            "run {id}: {code:?}: {run_err}"
        );
        assert_eq!(run_err, "", "run {id} reported an error");
        done.lock().unwrap().push(id);
    });
    assert!(bad.is_empty(), "readers saw: {bad:#?}");
    for id in done.lock().unwrap().iter() {
        assert_nothing_left(&rt, id, &b);
    }
}

/// Detached containers created, started, signalled and deleted by separate
/// processes while others read their state: every read sees a whole state
/// and every step succeeds.
#[test]
fn lifecycle_commands_interleave_with_readers() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let live = Mutex::new(vec![]);
    let done = Mutex::new(vec![]);
    let bad = hammer(&rt, &live, |l, i| {
        let id = common::id(&format!("cycle-{l}-{i}"));
        live.lock().unwrap().push(id.clone());
        rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        // Signal while `start` rewrites the state.
        std::thread::scope(|s| {
            let st = s.spawn(|| rt.run(&["start", &id]));
            std::thread::sleep(Duration::from_millis(1));
            let k = rt.run(&["kill", &id, "KILL"]);
            let st = st.join().unwrap();
            // A kill before the start leaves nothing to start: start then
            // refuses by status, "stopped", or "already running" while the
            // killed process has not quite died (libcontainer records a
            // signalled container as stopped, and a stopped one whose
            // process still exists as running).
            let start_err = String::from_utf8_lossy(&st.stderr);
            assert!(
                st.status.success()
                    || start_err.contains("in status stopped")
                    || start_err.contains("already running"),
                "start {id}: {start_err}"
            );
            assert!(
                k.status.success(),
                "kill {id}: {}",
                String::from_utf8_lossy(&k.stderr)
            );
        });
        rt.ok(&["delete", "--force", &id]);
        live.lock().unwrap().retain(|x| x != &id);
        done.lock().unwrap().push(id);
    });
    assert!(bad.is_empty(), "readers saw: {bad:#?}");
    for id in done.lock().unwrap().iter() {
        assert_nothing_left(&rt, id, &b);
    }
}
