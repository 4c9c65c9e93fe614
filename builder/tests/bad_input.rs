//! keel-build given bad input, interrupted and killed, and run twice at once.
//! Each test builds in a private store (a tempdir with `local/busybox:latest`
//! imported) and ends by checking that nothing is left: no mount that names
//! the tempdir in any process's mount namespace, no container in a runtime
//! root under `STORE/tmp/`, nothing in `STORE/tmp/`, no process of the build
//! (by pid, and none naming the tempdir), no runtime client log of it, and
//! `keel-build check` passes.
//!
//! Root only: builds mount overlays and run containers. keel-runtime is
//! taken from `KEEL_RUNTIME`, else beside cargo's keel-build (`cargo build -p
//! keel-runtime`).

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use keel_builder::build::guard::clean_up_after;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `KEEL_BUILD` overrides cargo's binary: in a target dir shared between
/// worktrees, `target/debug/keel-build` is whichever worktree built last.
fn keel_build() -> PathBuf {
    std::env::var_os("KEEL_BUILD")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_keel-build")))
}
const BASE: &str = "local/busybox:latest";

/// One test at a time: the machine is small and shared, and the signal
/// tests time how fast keel-build reacts.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn runtime() -> PathBuf {
    if let Some(p) = std::env::var_os("KEEL_RUNTIME") {
        return PathBuf::from(p);
    }
    let beside = Path::new(env!("CARGO_BIN_EXE_keel-build"))
        .parent()
        .expect("keel-build has a directory")
        .join("keel-runtime");
    assert!(
        beside.is_file(),
        "{} is missing: run `cargo build -p keel-runtime` or set KEEL_RUNTIME",
        beside.display()
    );
    beside
}

/// The busybox root filesystem, made once by scripts/base-rootfs.sh (which
/// does nothing when its stamp matches) in the target dir.
fn busybox_rootfs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_BIN_EXE_keel-build"))
            .parent()
            .expect("keel-build has a directory")
            .join("keel-test-bases/bad-input-busybox");
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/base-rootfs.sh");
        let out_ = Command::new("bash")
            .arg(&script)
            .arg("busybox")
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out_.status.success(),
            "{} busybox {}: {}",
            script.display(),
            out.display(),
            String::from_utf8_lossy(&out_.stderr)
        );
        out
    })
}

/// A private store with the base image, and room for contexts.
struct Env {
    dir: tempfile::TempDir,
    store: PathBuf,
    runtime: PathBuf,
    /// Pids of keel-build processes run for the test: their logs and
    /// processes must be gone at the end.
    builders: Vec<u32>,
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

impl Env {
    fn new() -> Env {
        let rootfs = busybox_rootfs();
        let dir = tempfile::Builder::new()
            .prefix("keel-test-bad-input-")
            .tempdir()
            .unwrap();
        let store = dir.path().join("store");
        let env = Env {
            store,
            runtime: runtime(),
            builders: Vec::new(),
            dir,
        };
        let o = env
            .keel()
            .arg("import")
            .arg(rootfs)
            .arg(BASE)
            .output()
            .unwrap();
        assert!(o.status.success(), "import: {}", text(&o));
        env
    }

    fn keel(&self) -> Command {
        let mut c = Command::new(keel_build());
        c.arg("--root").arg(&self.store).stdin(Stdio::null());
        c
    }

    /// `build -t TAG --progress plain --runtime RT EXTRA... CONTEXT`
    fn build_cmd(&self, context: &Path, tag: &str, extra: &[&str]) -> Command {
        let mut c = self.keel();
        c.args(["build", "-t", tag, "--progress", "plain", "--runtime"])
            .arg(&self.runtime)
            .args(extra)
            .arg(context);
        c
    }

    fn build(&mut self, context: &Path, tag: &str, extra: &[&str]) -> Output {
        let child = self
            .build_cmd(context, tag, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.builders.push(child.id());
        child.wait_with_output().unwrap()
    }

    /// A context directory `name` with this Dockerfile.
    fn context(&self, name: &str, dockerfile: &str) -> PathBuf {
        let ctx = self.dir.path().join(name);
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        ctx
    }

    /// Every image in the store, by its names (`<none>` for untagged ones).
    fn images(&self) -> Vec<String> {
        let o = self
            .keel()
            .args(["images", "--format", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "images: {}", text(&o));
        let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut names: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let tags: Vec<&str> = i["RepoTags"]
                    .as_array()
                    .map(|t| t.iter().filter_map(|s| s.as_str()).collect())
                    .unwrap_or_default();
                if tags.is_empty() {
                    "<none>".to_string()
                } else {
                    tags.join(",")
                }
            })
            .collect();
        names.sort();
        names
    }

    fn assert_only_base(&self) {
        assert_eq!(
            self.images(),
            vec![BASE.to_string()],
            "something was committed"
        );
    }

    /// What is left of the test's builds; empty when nothing is.
    fn leftovers(&self, pids: &[i32]) -> Vec<String> {
        let mut left = Vec::new();
        let root = self.dir.path().to_string_lossy().into_owned();
        left.extend(
            mounts_naming(&root)
                .into_iter()
                .map(|m| format!("mount: {m}")),
        );
        let tmp = self.store.join("tmp");
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            left.push(format!("tmp entry: {}", entry.path().display()));
            for rt_root in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                if !rt_root
                    .file_name()
                    .to_string_lossy()
                    .starts_with("runtime-")
                {
                    continue;
                }
                let o = Command::new(&self.runtime)
                    .arg("--root")
                    .arg(rt_root.path())
                    .args(["list", "--format", "json"])
                    .output()
                    .unwrap();
                let out = String::from_utf8_lossy(&o.stdout);
                if !matches!(out.trim(), "" | "null" | "[]") {
                    left.push(format!("containers in {}: {out}", rt_root.path().display()));
                }
            }
        }
        for &pid in pids {
            if alive(pid) {
                left.push(format!("process {pid}: {}", cmdline(pid)));
            }
        }
        for pid in processes_naming(&root) {
            left.push(format!(
                "process {pid} naming the test dir: {}",
                cmdline(pid)
            ));
        }
        // RUN containers are `keel-build-<builder pid>-<n>`; keel-runtime
        // names their cgroups `:youki:<id>` in every hierarchy.
        for h in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for c in fs::read_dir(h.path()).into_iter().flatten().flatten() {
                let name = c.file_name().to_string_lossy().into_owned();
                if self
                    .builders
                    .iter()
                    .any(|b| name.starts_with(&format!(":youki:keel-build-{b}-")))
                {
                    left.push(format!("cgroup {}", c.path().display()));
                }
            }
        }
        let logs = std::env::temp_dir();
        for e in fs::read_dir(&logs).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if self
                .builders
                .iter()
                .any(|b| name.starts_with(&format!("keel-runtime-client-{b}-")))
            {
                left.push(format!("runtime client log {}", e.path().display()));
            }
        }
        left
    }

    /// Waits up to `within` for nothing to be left (a killed build's
    /// guardian needs a moment), then asserts it, and that the store checks.
    fn assert_clean(&self, pids: &[i32], within: Duration) {
        let start = Instant::now();
        let mut left = self.leftovers(pids);
        while !left.is_empty() && start.elapsed() < within {
            std::thread::sleep(Duration::from_millis(100));
            left = self.leftovers(pids);
        }
        assert!(
            left.is_empty(),
            "left after {:?}:\n{}",
            start.elapsed(),
            left.join("\n")
        );
        let o = self.keel().arg("check").output().unwrap();
        assert!(o.status.success(), "check: {}", text(&o));
    }
}

impl Drop for Env {
    /// A test that failed half way may have left a container running: what
    /// the guardian would do, done again (it finds nothing after a pass).
    fn drop(&mut self) {
        for &b in &self.builders {
            if !alive(b as i32) {
                clean_up_after(b, &self.store, &self.runtime);
            }
        }
    }
}

/// Kills and reaps a child still running when a test fails half way.
struct Reap(Option<Child>);

impl Reap {
    fn pid(&self) -> i32 {
        self.0.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// The exit status if the child ends within `within`.
    fn wait_for(&mut self, within: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        let child = self.0.as_mut()?;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.0 = None;
                return Some(s);
            }
            if start.elapsed() >= within {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn alive(pid: i32) -> bool {
    // A zombie that is not ours is reaped by its new parent soon; it holds
    // nothing but its pid.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).is_some_and(|(state, _)| state != "Z"),
        Err(_) => false,
    }
}

/// (state, ppid) from /proc/PID/stat, whose comm field may hold spaces.
fn stat_fields(stat: &str) -> Option<(String, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.to_string();
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// `root` and every process below it.
fn descendants(root: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = all_pids()
        .into_iter()
        .filter_map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            Some((p, stat_fields(&stat)?.1))
        })
        .collect();
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    out
}

fn processes_naming(s: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    all_pids()
        .into_iter()
        .filter(|&p| p != me && alive(p) && cmdline(p).contains(s))
        .collect()
}

/// Mount points or sources naming `s`, in every mount namespace on the
/// machine: a leaked private namespace of a build keeps its overlays.
fn mounts_naming(s: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in all_pids() {
        let Ok(ns) = fs::read_link(format!("/proc/{p}/ns/mnt")) else {
            continue;
        };
        if !seen.insert(ns) {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!("/proc/{p}/mountinfo")) else {
            continue;
        };
        out.extend(
            info.lines()
                .filter(|l| l.contains(s))
                .map(|l| format!("(pid {p}) {l}")),
        );
    }
    out
}

// 1. Dockerfile syntax errors and unknown instructions.
#[test]
fn dockerfile_errors_name_the_line_and_tag_nothing() {
    let _serial = serial();
    let mut env = Env::new();
    let cases: &[(&str, &str, &str)] = &[
        (
            "FROM local/busybox:latest\nFOO bar\n",
            "Dockerfile:2",
            "unknown instruction: FOO",
        ),
        (
            "FROM local/busybox:latest\nRUN true\nCOPY onlyone\n",
            "Dockerfile:3",
            "COPY requires at least two arguments",
        ),
        (
            "FROM local/busybox:latest\nENV\n",
            "Dockerfile:2",
            "ENV requires",
        ),
        (
            "RUN echo before from\n",
            "Dockerfile:1",
            "RUN before the first FROM",
        ),
        ("FROM local/busybox:latest AS\n", "Dockerfile:1", "FROM"),
        (
            "FROM local/busybox:latest\n\nRUN <<EOF\necho never ends\n",
            "Dockerfile:3",
            "unterminated heredoc",
        ),
        (
            "FROM local/busybox:latest\nHEALTHCHECK --interval=soon CMD true\n",
            "Dockerfile:2",
            "--interval",
        ),
        (
            "# comment\nFROM local/busybox:latest\nRUN true \\\n  && true\nWORKDIR\n",
            "Dockerfile:5",
            "WORKDIR",
        ),
    ];
    for (i, (dockerfile, at, what)) in cases.iter().enumerate() {
        let ctx = env.context(&format!("ctx{i}"), dockerfile);
        let o = env.build(&ctx, "bad:latest", &[]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{dockerfile:?}: {out}");
        assert!(out.contains(at), "{dockerfile:?}: no {at} in: {out}");
        assert!(out.contains(what), "{dockerfile:?}: no {what:?} in: {out}");
    }
    env.assert_only_base();
    env.assert_clean(&[], Duration::from_secs(5));
}

// 2. COPY of what is missing or outside the context.
#[test]
fn copy_of_missing_or_outside_paths_is_refused_with_the_path() {
    let _serial = serial();
    let mut env = Env::new();
    let ctx = env.context("ctx", "");
    fs::write(env.dir.path().join("outside"), "secret\n").unwrap();
    fs::create_dir(ctx.join("sub")).unwrap();
    fs::write(ctx.join("sub/inside"), "fine\n").unwrap();
    std::os::unix::fs::symlink("../outside", ctx.join("up-link")).unwrap();
    std::os::unix::fs::symlink(env.dir.path().join("outside"), ctx.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../outside", ctx.join("sub/deep-link")).unwrap();
    let cases = [
        ("COPY missing.txt /x", "missing.txt"),
        ("COPY sub/inside missing-too /dir/", "missing-too"),
        ("COPY ../outside /x", "../outside"),
        ("COPY sub/../../outside /x", "sub/../../outside"),
        ("COPY up-link /x", "up-link"),
        ("COPY abs-link /x", "abs-link"),
        ("COPY sub/deep-link /x", "sub/deep-link"),
        ("ADD ../outside /x", "../outside"),
    ];
    for (line, path) in cases {
        fs::write(ctx.join("Dockerfile"), format!("FROM {BASE}\n{line}\n")).unwrap();
        let o = env.build(&ctx, "bad:latest", &[]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{line}: {out}");
        assert!(out.contains("Dockerfile:2"), "{line}: {out}");
        assert!(
            out.contains(&format!("\"{path}\"")) || out.contains(&format!(" {path}:")),
            "{line}: path not named in: {out}"
        );
        assert!(!out.contains("secret"), "{line}: {out}");
    }
    env.assert_only_base();
    env.assert_clean(&[], Duration::from_secs(5));
}

fn plain_step_status(out: &str, title_part: &str) -> Option<String> {
    // Plain progress: `#N [stage i/n] TITLE`, output lines, then `#N DONE`,
    // `#N CACHED` or `#N ERROR: ...`.
    let lines: Vec<&str> = out.lines().collect();
    let (i, start) = lines
        .iter()
        .enumerate()
        .find(|(_, l)| l.starts_with('#') && l.contains(title_part))?;
    let id = start.split_whitespace().next()?;
    lines[i + 1..]
        .iter()
        .filter_map(|l| l.strip_prefix(id).and_then(|r| r.strip_prefix(' ')))
        .find(|r| r.starts_with("DONE") || r.starts_with("CACHED") || r.starts_with("ERROR"))
        .map(|r| {
            r.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_end_matches(':')
                .to_string()
        })
}

// 3. A failing RUN, then the fix.
#[test]
fn failing_run_reports_its_step_and_poisons_no_cache() {
    let _serial = serial();
    let mut env = Env::new();
    let failing =
        format!("FROM {BASE}\nRUN echo before > /before\nRUN echo visible-output; exit 3\n");
    let ctx = env.context("ctx", &failing);
    let _ = env.build(&ctx, "warm:latest", &[]);
    for round in 0..2 {
        let o = env.build(&ctx, "app:latest", &[]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "round {round}: {out}");
        assert!(
            out.contains("[stage-0 3/3] RUN echo visible-output; exit 3"),
            "round {round}: step not named: {out}"
        );
        assert!(out.contains("exit code: 3"), "round {round}: {out}");
        assert!(out.contains("Dockerfile:3"), "round {round}: {out}");
        let shown = out
            .lines()
            .filter(|l| l.ends_with(" visible-output"))
            .count();
        assert_eq!(shown, 1, "round {round}: output not shown once: {out}");
        // Run again, not taken from a cache entry the failure left.
        assert_eq!(
            plain_step_status(&out, "RUN echo visible-output").as_deref(),
            Some("ERROR"),
            "{out}"
        );
        assert_eq!(
            plain_step_status(&out, "RUN echo before").as_deref(),
            Some("CACHED"),
            "{out}"
        );
    }
    env.assert_only_base();

    fs::write(
        ctx.join("Dockerfile"),
        failing.replace("exit 3", "echo fixed > /fixed"),
    )
    .unwrap();
    let o = env.build(&ctx, "app:latest", &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        plain_step_status(&out, "RUN echo before").as_deref(),
        Some("CACHED"),
        "{out}"
    );
    assert_eq!(
        plain_step_status(&out, "RUN echo visible-output").as_deref(),
        Some("DONE"),
        "{out}"
    );
    assert!(out.contains(" visible-output"), "{out}");
    assert_eq!(
        env.images(),
        vec!["app:latest".to_string(), BASE.to_string()]
    );
    env.assert_clean(&[], Duration::from_secs(5));
}

/// Starts `RUN sleep 30` in its own process group; returns once the sleep
/// runs, with every process of the build by then.
fn start_sleeping_build(env: &mut Env) -> (Reap, Vec<i32>, PathBuf) {
    let ctx = env.context(
        "ctx",
        &format!("FROM {BASE}\nRUN echo before > /before\nRUN sleep 30\n"),
    );
    let log = env.dir.path().join("build.log");
    let f = fs::File::create(&log).unwrap();
    let child = env
        .build_cmd(&ctx, "app:latest", &[])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .process_group(0)
        .spawn()
        .unwrap();
    env.builders.push(child.id());
    let mut reap = Reap(Some(child));
    let pid = reap.pid();
    let start = Instant::now();
    loop {
        let procs = descendants(pid);
        if procs.iter().any(|&p| cmdline(p).starts_with("sleep 30")) {
            return (reap, procs, log);
        }
        if let Some(s) = reap.wait_for(Duration::ZERO) {
            panic!(
                "keel-build ended ({s}) before RUN sleep 30 ran: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "RUN sleep 30 did not start: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// 4. Ctrl-C.
#[test]
fn ctrl_c_during_run_stops_the_build_and_leaves_nothing() {
    let _serial = serial();
    let mut env = Env::new();
    let (mut child, procs, log) = start_sleeping_build(&mut env);
    // The guardian, the runtime and the container's sleep at least.
    assert!(procs.len() >= 4, "{procs:?}");
    let pgid = child.pid();
    let sent = Instant::now();
    kill(Pid::from_raw(-pgid), Signal::SIGINT).unwrap();
    let status = child
        .wait_for(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("keel-build still running 10s after SIGINT"));
    let took = sent.elapsed();
    let out = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(out.contains("cancelled"), "{out}");
    env.assert_only_base();
    env.assert_clean(&procs, Duration::from_secs(5));
}

/// The guardian among a build's processes: a fork of keel-build, so it has
/// the same command line.
fn guardian_of(builder: i32, procs: &[i32]) -> i32 {
    let guardians: Vec<i32> = procs
        .iter()
        .copied()
        .filter(|&p| p != builder && cmdline(p) == cmdline(builder))
        .collect();
    assert_eq!(guardians.len(), 1, "no single guardian among {procs:?}");
    guardians[0]
}

/// kill -9 of keel-build alone, or of its whole process group (as a CI
/// timeout does), during `RUN sleep 30`.
fn kill_9_during_run(group: bool) {
    let _serial = serial();
    let mut env = Env::new();
    let (mut child, procs, log) = start_sleeping_build(&mut env);
    let builder = child.pid();
    guardian_of(builder, &procs);
    let target = if group { -builder } else { builder };
    kill(Pid::from_raw(target), Signal::SIGKILL).unwrap();
    let status = child
        .wait_for(Duration::from_secs(5))
        .expect("killed keel-build not reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    env.assert_clean(&procs, Duration::from_secs(5));
    env.assert_only_base();

    // The store works on: the step before is cached, the killed one runs.
    let ctx = env.dir.path().join("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {BASE}\nRUN echo before > /before\nRUN sleep 0\n"),
    )
    .unwrap();
    let o = env.build(&ctx, "app:latest", &[]);
    let out = text(&o);
    assert!(
        o.status.success(),
        "{out}\n{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        plain_step_status(&out, "RUN echo before").as_deref(),
        Some("CACHED"),
        "{out}"
    );
    env.assert_clean(&[], Duration::from_secs(5));
}

// 5. kill -9.
#[test]
fn kill_9_during_run_leaves_nothing_once_the_guardian_is_done() {
    kill_9_during_run(false);
}

#[test]
fn kill_9_of_the_process_group_leaves_nothing_either() {
    kill_9_during_run(true);
}

// The checks see what a killed build leaves when nothing cleans up after
// it, and clean_up_after, the guardian's work, removes all of it.
#[test]
fn without_its_guardian_a_killed_build_leaves_a_container() {
    let _serial = serial();
    let mut env = Env::new();
    let (mut child, procs, _log) = start_sleeping_build(&mut env);
    let builder = child.pid();
    let guardian = guardian_of(builder, &procs);
    kill(Pid::from_raw(guardian), Signal::SIGKILL).unwrap();
    let start = Instant::now();
    while alive(guardian) {
        assert!(start.elapsed() < Duration::from_secs(5), "guardian alive");
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(Pid::from_raw(builder), Signal::SIGKILL).unwrap();
    child
        .wait_for(Duration::from_secs(5))
        .expect("killed keel-build not reaped");
    std::thread::sleep(Duration::from_millis(500));

    let left = env.leftovers(&procs).join("\n");
    for what in [
        "mount: ",
        "tmp entry: ",
        "containers in ",
        "naming the test dir",
        "runtime client log",
    ] {
        assert!(left.contains(what), "no {what:?} in:\n{left}");
    }

    let done = clean_up_after(builder as u32, &env.store, &env.runtime);
    // `RUN echo before` was container 1, the sleep is the one in flight.
    assert_eq!(done.containers, vec![format!("keel-build-{builder}-2")]);
    assert!(done.left.is_empty(), "{done:?}");
    env.assert_clean(&procs, Duration::from_secs(5));
}

// 6. Two builds into one store at once.
#[test]
fn two_builds_at_once_share_a_store() {
    let _serial = serial();
    let mut env = Env::new();
    let common = "RUN echo common > /common && sleep 1";
    let a = env.context("a", &format!("FROM {BASE}\n{common}\nRUN echo a > /a\n"));
    let b = env.context(
        "b",
        &format!("FROM {BASE}\n{common}\nRUN echo b > /b\nCMD [\"cat\", \"/b\"]\n"),
    );
    let spawn = |env: &Env, ctx: &Path, tag: &str| {
        env.build_cmd(ctx, tag, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ca = spawn(&env, &a, "a:1");
    let cb = spawn(&env, &b, "b:1");
    env.builders.extend([ca.id(), cb.id()]);
    let oa = ca.wait_with_output().unwrap();
    let ob = cb.wait_with_output().unwrap();
    assert!(oa.status.success(), "a: {}", text(&oa));
    assert!(ob.status.success(), "b: {}", text(&ob));
    for (tag, file) in [("a:1", "/a"), ("b:1", "/b")] {
        let o = env.keel().args(["inspect", tag]).output().unwrap();
        assert!(o.status.success(), "inspect {tag}: {}", text(&o));
        let history = String::from_utf8_lossy(&o.stdout);
        assert!(history.contains(&format!("> {file}")), "{tag}: {history}");
    }
    let mut want = vec!["a:1".to_string(), "b:1".to_string(), BASE.to_string()];
    want.sort();
    assert_eq!(env.images(), want);
    env.assert_clean(&[], Duration::from_secs(5));

    // Both steps are in the cache now, whichever build recorded them.
    let o = env.build(&a, "a:2", &[]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert_eq!(
        plain_step_status(&out, "RUN echo common").as_deref(),
        Some("CACHED"),
        "{out}"
    );
    assert_eq!(
        plain_step_status(&out, "RUN echo a").as_deref(),
        Some("CACHED"),
        "{out}"
    );
    env.assert_clean(&[], Duration::from_secs(5));
}

// 7. Bad arguments.
#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let _serial = serial();
    let mut env = Env::new();
    let ctx = env.context(
        "ctx",
        &format!("FROM {BASE} AS first\nRUN true\nFROM first AS second\n"),
    );
    let dockerfile = ctx.join("Dockerfile");
    let missing = ctx.join("nope.Dockerfile");
    let missing_s = missing.to_string_lossy().into_owned();
    let not_dir = dockerfile.to_string_lossy().into_owned();
    let no_such_dir = env.dir.path().join("no-such-dir");
    let cases: Vec<(Vec<&str>, PathBuf, Vec<&str>)> = vec![
        (
            vec![],
            dockerfile.clone(),
            vec![not_dir.as_str(), "not a directory"],
        ),
        (
            vec![],
            no_such_dir.clone(),
            vec!["no-such-dir", "does not exist"],
        ),
        (
            vec!["-f", &missing_s],
            ctx.clone(),
            vec![missing_s.as_str(), "No such file"],
        ),
        (
            vec!["--target", "nosuchstage"],
            ctx.clone(),
            vec!["nosuchstage", "could not be found"],
        ),
    ];
    for (extra, context, wants) in cases {
        let o = env.build(&context, "bad:latest", &extra);
        let out = text(&o);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{extra:?} {}: {out}",
            context.display()
        );
        for w in wants {
            assert!(
                out.contains(w),
                "{extra:?} {}: no {w:?} in: {out}",
                context.display()
            );
        }
    }

    fs::write(&dockerfile, "FROM nosuch/image:1.0\nRUN true\n").unwrap();
    let o = env.build(&ctx, "bad:latest", &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("Dockerfile:1"), "{out}");
    assert!(out.contains("nosuch/image:1.0"), "{out}");
    assert!(
        out.contains("keel-build import") && out.contains("keel-build load"),
        "{out}"
    );

    fs::write(&dockerfile, format!("FROM {BASE}\nRUN true\n")).unwrap();
    let o = env
        .keel()
        .args(["build", "-t", "bad:latest", "--progress", "plain"])
        .args(["--runtime", "/nonexistent/keel-runtime"])
        .arg(&ctx)
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("/nonexistent/keel-runtime"), "{out}");
    assert!(!out.contains("#2"), "a step ran without a runtime: {out}");

    env.assert_only_base();
    env.assert_clean(&[], Duration::from_secs(5));
}
