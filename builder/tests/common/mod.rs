//! Shared helpers of keel-build's root integration tests: a private store per
//! test, the base root filesystems (built once, cached under
//! ~/.cache/keel/bases), builds with plain progress parsed into steps, and
//! bundles run under keel-runtime or runc whose containers and overlay mounts
//! are removed by guards even when an assertion fails.
//!
//! The tests need root (overlay mounts, chown, runtimes) and the fixtures
//! (KEEL_FIXTURES, default /work/shared/fixtures); without either they say
//! why on stderr and return early.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

pub const KEEL_BUILD: &str = env!("CARGO_BIN_EXE_keel-build");

/// A selftest prints a few lines and exits; anything near this is a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The slowest keel-build command here (importing the python base, or its
/// build on a loaded machine) takes well under a minute.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// True (after saying why on stderr) when a test cannot run on this
/// machine: `if common::skip() { return; }`.
pub fn skip() -> bool {
    match skip_reason() {
        Some(why) => {
            eprintln!("skipping: {why}");
            true
        }
        None => false,
    }
}

pub fn fixtures_dir() -> PathBuf {
    keel_builder::testing::fixtures_dir()
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("keel-build's integration tests need root (overlay mounts, chown)".into());
    }
    let f = fixtures_dir();
    if !f.join("busybox-app/Dockerfile").is_file() {
        return Some(format!(
            "no fixtures at {} (set KEEL_FIXTURES to the fixtures directory)",
            f.display()
        ));
    }
    None
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// keel-build as cargo built it for these tests. Other worktrees sharing
/// the target dir rebuild it in place, so the tests run a snapshot.
pub fn keel_build() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| snapshot(Path::new(KEEL_BUILD)))
}

/// keel-runtime from the same target dir as keel-build (`cargo build -p
/// keel-runtime` puts it there; cargo does not build other packages'
/// binaries for our tests), snapshotted too.
pub fn keel_runtime() -> PathBuf {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let built = Path::new(KEEL_BUILD).with_file_name("keel-runtime");
        assert!(
            built.is_file(),
            "keel-runtime is not built beside {KEEL_BUILD}: run `cargo build -p keel-runtime` with the same CARGO_TARGET_DIR"
        );
        snapshot(&built)
    })
    .clone()
}

/// Copies a binary into this process's own directory under cargo's
/// target tmp dir, first removing the directories of test processes that
/// have exited.
fn snapshot(built: &Path) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        if let Ok(entries) = std::fs::read_dir(base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(pid) = name
                    .strip_prefix("keel-fixtures-")
                    .and_then(|p| p.parse::<i32>().ok())
                else {
                    continue;
                };
                let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    == Err(nix::errno::Errno::ESRCH);
                if gone {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("keel-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        dir
    });
    let name = built.file_name().expect("a binary's file name");
    let dest = dir.join(name);
    std::fs::copy(built, &dest)
        .unwrap_or_else(|e| panic!("copying {} to {}: {e}", built.display(), dest.display()));
    dest
}

fn on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .chain(["/usr/sbin".into(), "/usr/bin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Debian's runc, installed with apt-get (through scripts/deps.sh) when missing.
pub fn runc() -> PathBuf {
    static RUNC: OnceLock<PathBuf> = OnceLock::new();
    RUNC.get_or_init(|| {
        if let Some(p) = on_path("runc") {
            return p;
        }
        let st = Command::new(repo_root().join("scripts/deps.sh"))
            .arg("runc")
            .status()
            .expect("running scripts/deps.sh runc");
        assert!(st.success(), "scripts/deps.sh runc failed: {st}");
        on_path("runc").expect("runc is still not on PATH after installing it")
    })
    .clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Base {
    Busybox,
    Python,
}

impl Base {
    fn kind(self) -> &'static str {
        match self {
            Base::Busybox => "busybox",
            Base::Python => "python",
        }
    }

    pub fn image(self) -> &'static str {
        match self {
            Base::Busybox => "local/busybox:latest",
            Base::Python => "local/python:3",
        }
    }
}

/// The base's root filesystem, made by scripts/base-rootfs.sh once and kept
/// under ~/.cache/keel/bases (the script does nothing when the cached tree
/// matches its recipe). None when it cannot be built here (the python tree
/// needs a Debian mirror); the reason goes to stderr.
pub fn base_rootfs(base: Base) -> Option<PathBuf> {
    static DONE: Mutex<BTreeMap<Base, Option<PathBuf>>> = Mutex::new(BTreeMap::new());
    // Held while the script runs: the other tests of this binary wait
    // rather than start a second debootstrap.
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = done.get(&base) {
        return r.clone();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    let out = PathBuf::from(home)
        .join(".cache/keel/bases")
        .join(base.kind());
    let r = Command::new(repo_root().join("scripts/base-rootfs.sh"))
        .arg(base.kind())
        .arg(&out)
        .stdout(Stdio::null())
        .output();
    let result = match r {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            eprintln!(
                "scripts/base-rootfs.sh {} {} failed ({}):\n{}",
                base.kind(),
                out.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run scripts/base-rootfs.sh: {e}");
            None
        }
    };
    done.insert(base, result.clone());
    result
}

/// A copy of a fixture context the test may edit (modes, owners and times
/// kept, as `cp -a` does).
pub fn copy_context(name: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("keel-test-ctx-")
        .tempdir()
        .expect("tempdir for the context");
    let src = fixture(name);
    let st = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dir.path())
        .status()
        .expect("running cp");
    assert!(st.success(), "cp -a {} failed", src.display());
    dir
}

/// Replaces `from` (which must occur exactly once) by `to` in a file. The
/// fixture files are read-only; root writes them anyway, keeping the mode
/// (part of COPY's cache key).
pub fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        text.matches(from).count(),
        1,
        "{} should contain {from:?} exactly once",
        path.display()
    );
    std::fs::write(path, text.replace(from, to))
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(what: &str, o: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    )
}

/// A private keel-build store in a temp dir.
pub struct Store {
    dir: TempDir,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Store {
    pub fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-store-")
            .tempdir()
            .expect("tempdir for the store");
        let root = dir.path().join("store");
        Store {
            dir,
            root,
            env: Vec::new(),
        }
    }

    /// An environment variable for every keel-build this store runs.
    pub fn with_env(mut self, key: &str, value: &str) -> Store {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A fresh directory inside the store's temp dir (for bundles).
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        assert!(!p.exists(), "{} is used twice", p.display());
        p
    }

    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(keel_build());
        c.arg("--root").arg(&self.root).args(args);
        c.env_remove("SOURCE_DATE_EPOCH");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null());
        c
    }

    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let c = self.command(args);
        let shown = format!("{c:?}");
        let f = run_with_timeout(c, COMMAND_TIMEOUT, || {});
        match f.status {
            Some(status) => Output {
                status,
                stdout: f.stdout.into_bytes(),
                stderr: f.stderr.into_bytes(),
            },
            None => panic!(
                "{shown} did not finish in {COMMAND_TIMEOUT:?}\n--- stdout\n{}\n--- stderr\n{}",
                f.stdout, f.stderr
            ),
        }
    }

    /// Runs keel-build and returns its stdout; fails the test otherwise.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let o = self.run(&args);
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("keel-build {args:?}"), &o)
        );
        text(&o.stdout)
    }

    /// Imports a base image; false when its root filesystem cannot be built here.
    pub fn import(&self, base: Base) -> bool {
        let Some(dir) = base_rootfs(base) else {
            return false;
        };
        let out = self.ok([
            OsStr::new("import"),
            dir.as_os_str(),
            OsStr::new(base.image()),
        ]);
        assert!(out.trim().starts_with("sha256:"), "import printed {out:?}");
        true
    }

    /// `build --progress plain -t TAG [ARGS] CONTEXT` with keel-runtime
    /// running RUN steps unless ARGS name a `--runtime`.
    pub fn build(&self, context: &Path, tag: &str, args: &[&str]) -> BuildRun {
        let mut all: Vec<String> = vec![
            "build".into(),
            "--progress".into(),
            "plain".into(),
            "-t".into(),
            tag.into(),
        ];
        if !args.contains(&"--runtime") {
            all.push("--runtime".into());
            all.push(keel_runtime().display().to_string());
        }
        all.extend(args.iter().map(|a| a.to_string()));
        all.push(context.display().to_string());
        let o = self.run(&all);
        assert!(
            o.status.success(),
            "{}",
            describe(&format!("keel-build {all:?}"), &o)
        );
        let log = text(&o.stderr);
        let id = log
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("built "))
            .and_then(|l| l.split([' ', ',']).next())
            .unwrap_or_else(|| panic!("no `built ID` line in:\n{log}"))
            .to_string();
        // The tag must name what the build reported.
        let inspected = self.inspect(tag);
        assert_eq!(
            inspected["Id"],
            id.as_str(),
            "{tag} does not name the built image"
        );
        BuildRun {
            id,
            steps: parse_plain(&log),
            log,
        }
    }

    /// The object `inspect` prints for an image.
    pub fn inspect(&self, image: &str) -> Value {
        let out = self.ok(["inspect", image]);
        let v: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("inspect {image} printed no JSON ({e}):\n{out}"));
        v.get(0)
            .cloned()
            .unwrap_or_else(|| panic!("inspect {image} printed an empty list"))
    }

    /// `check` finds no problem.
    pub fn check(&self) {
        let o = self.run(["check"]);
        let out = text(&o.stdout);
        assert!(
            o.status.success() && out.trim_end().ends_with(", 0 problems"),
            "{}",
            describe("keel-build check", &o)
        );
    }

    /// `bundle IMAGE DIR [-- ARGS]`; the guard unbundles it.
    pub fn bundle(&self, image: &str, name: &str, args: &[&str]) -> Bundle<'_> {
        let dir = self.scratch(name);
        let mut all = vec![
            "bundle".to_string(),
            image.to_string(),
            dir.display().to_string(),
        ];
        if !args.is_empty() {
            all.push("--".into());
            all.extend(args.iter().map(|a| a.to_string()));
        }
        // The guard exists before the command: a half-made bundle is
        // removed too.
        let bundle = Bundle { store: self, dir };
        self.ok(&all);
        bundle
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // A bundle guard that could not unbundle leaves an overlay mount;
        // deleting the temp dir through it would be wrong, so detach first.
        detach_mounts_under(self.dir.path());
    }
}

/// Lazily unmounts every mount at or below `dir`, deepest first.
fn detach_mounts_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|raw| PathBuf::from(unescape_mountinfo(raw)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort();
    for p in points.iter().rev() {
        eprintln!("detaching {} left mounted by a test", p.display());
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Cached,
    Done,
    Error,
    /// A step line without a result line.
    Unfinished,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub number: usize,
    /// `[build 4/6] COPY src/ ./`
    pub title: String,
    pub status: Status,
}

impl Step {
    /// `build 4` from `[build 4/6] ...`: stage label and position.
    pub fn position(&self) -> String {
        self.title
            .strip_prefix('[')
            .and_then(|t| t.split_once(']'))
            .and_then(|(p, _)| p.split_once('/'))
            .map(|(p, _)| p.to_string())
            .unwrap_or_default()
    }

    /// The instruction after the `[...]` prefix.
    pub fn instruction(&self) -> &str {
        self.title
            .split_once("] ")
            .map(|(_, i)| i)
            .unwrap_or(&self.title)
    }

    /// FROM and ARG are not cached steps (they make no cache record).
    pub fn is_keyed(&self) -> bool {
        let i = self.instruction();
        !(i.starts_with("FROM ") || i.starts_with("ARG "))
    }
}

/// One build's outcome: the image id and its steps as `--progress plain`
/// reported them.
#[derive(Debug)]
pub struct BuildRun {
    pub id: String,
    pub steps: Vec<Step>,
    pub log: String,
}

impl BuildRun {
    /// The step at `position` (`build 4`, `stage-1 8`).
    pub fn step(&self, position: &str) -> &Step {
        self.steps
            .iter()
            .find(|s| s.position() == position)
            .unwrap_or_else(|| panic!("no step {position} in the build log:\n{}", self.log))
    }

    /// Positions of the keyed steps with this status, in build order.
    pub fn keyed(&self, status: Status) -> Vec<String> {
        self.steps
            .iter()
            .filter(|s| s.is_keyed() && s.status == status)
            .map(Step::position)
            .collect()
    }
}

/// Parses BuildKit-style plain progress: `#N TITLE`, output lines `#N 0.123
/// text`, then `#N CACHED`, `#N DONE 0.1s` or `#N ERROR: ...`.
pub fn parse_plain(log: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, body)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(number) = n.parse::<usize>() else {
            continue;
        };
        match steps.iter_mut().find(|s| s.number == number) {
            None => steps.push(Step {
                number,
                title: body.to_string(),
                status: Status::Unfinished,
            }),
            Some(s) => {
                if body == "CACHED" {
                    s.status = Status::Cached;
                } else if body.starts_with("DONE ") {
                    s.status = Status::Done;
                } else if body.starts_with("ERROR") {
                    s.status = Status::Error;
                }
            }
        }
    }
    steps
}

/// `key=value` lines (the value is everything after the first `=`).
pub fn key_values(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

static CONTAINERS: AtomicUsize = AtomicUsize::new(0);

/// A bundle made by `keel-build bundle`; dropping it unbundles it.
pub struct Bundle<'a> {
    store: &'a Store,
    pub dir: PathBuf,
}

#[derive(Debug)]
pub struct RunOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Bundle<'_> {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config(&self) -> Value {
        let p = self.dir.join("config.json");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// `RUNTIME --root PRIVATE run -b BUNDLE keel-test-N`, its output; the
    /// container is deleted even if the run hangs or the test fails.
    pub fn run(&self, runtime: &Path) -> RunOutput {
        let n = CONTAINERS.fetch_add(1, Ordering::SeqCst);
        let id = format!("keel-test-{}-{n}", std::process::id());
        let state = tempfile::Builder::new()
            .prefix("keel-test-rt-")
            .tempdir_in("/run")
            .or_else(|_| tempfile::Builder::new().prefix("keel-test-rt-").tempdir())
            .expect("tempdir for the runtime's state");
        let container = Container {
            runtime: runtime.to_path_buf(),
            root: state.path().to_path_buf(),
            id: id.clone(),
        };
        let mut c = Command::new(runtime);
        c.arg("--root")
            .arg(state.path())
            .args(["run", "-b"])
            .arg(&self.dir)
            .arg(&id)
            .stdin(Stdio::null());
        // A hung container keeps our pipes open: kill it with the runtime
        // before waiting for the rest of its output.
        let f = run_with_timeout(c, RUN_TIMEOUT, || container.delete());
        let r = RunOutput {
            code: f.status.and_then(|s| s.code()),
            stdout: f.stdout,
            stderr: f.stderr,
        };
        assert!(
            f.status.is_some(),
            "{} run {id} did not finish in {RUN_TIMEOUT:?}: {r:?}",
            runtime.display()
        );
        r
    }

    /// Runs and requires exit status 0; returns stdout.
    pub fn run_ok(&self, runtime: &Path) -> String {
        let r = self.run(runtime);
        assert_eq!(r.code, Some(0), "{} run failed: {r:?}", runtime.display());
        r.stdout
    }
}

/// What a command printed, and its status (None: killed at the timeout).
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with its output captured; at `timeout` kills it, calls
/// `on_timeout` (to stop what it started) and returns what it printed.
pub fn run_with_timeout(
    mut cmd: Command,
    timeout: Duration,
    on_timeout: impl FnOnce(),
) -> Finished {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let out = child.stdout.take().map(Capture::start);
    let err = child.stderr.take().map(Capture::start);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                on_timeout();
                break None;
            }
        }
    };
    // After a timeout, something the child started may still hold the
    // pipes: take what arrived instead of waiting for their end.
    let patience = if status.is_some() {
        timeout
    } else {
        Duration::from_secs(5)
    };
    let until = Instant::now() + patience;
    Finished {
        status,
        stdout: out.map(|c| c.finish(until)).unwrap_or_default(),
        stderr: err.map(|c| c.finish(until)).unwrap_or_default(),
    }
}

/// A pipe read to its end on a thread.
struct Capture {
    buf: Arc<Mutex<Vec<u8>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Capture {
    fn start(mut r: impl Read + Send + 'static) -> Capture {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buf);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = r.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Capture { buf, thread }
    }

    fn finish(self, deadline: Instant) -> String {
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        text(&b)
    }
}

impl Drop for Bundle<'_> {
    fn drop(&mut self) {
        if !self.dir.exists() {
            return;
        }
        let o = self
            .store
            .run([OsStr::new("unbundle"), self.dir.as_os_str()]);
        if !o.status.success() {
            eprintln!("{}", describe("keel-build unbundle", &o));
            detach_mounts_under(&self.dir);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A container id in a private runtime root; deleted on drop.
struct Container {
    runtime: PathBuf,
    root: PathBuf,
    id: String,
}

impl Container {
    fn delete(&self) {
        // `run` deletes the container when it exits normally; this covers
        // a killed or failed run. "does not exist" is the common answer.
        let _ = Command::new(&self.runtime)
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.delete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_progress_parses_into_steps() {
        let log = "#1 [build 1/6] FROM local/busybox:latest\n#1 DONE 0.0s\n\
                   #2 [build 4/6] COPY src/ ./\n#2 CACHED\n\
                   #3 [build 6/6] RUN sh ./build.sh\n#3 0.012 #4 not a step\n#3 DONE 0.1s\n\
                   #4 [stage-1 2/3] RUN false\n#4 ERROR: exit 1\nbuilt sha256:ab in 0.1s\n";
        let steps = parse_plain(log);
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[1].position(), "build 4");
        assert_eq!(steps[1].instruction(), "COPY src/ ./");
        assert_eq!(steps[1].status, Status::Cached);
        assert_eq!(steps[2].status, Status::Done);
        assert_eq!(steps[3].status, Status::Error);
        assert!(!steps[0].is_keyed());
        assert!(steps[2].is_keyed());
    }

    #[test]
    fn mountinfo_octal_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/tmp/x\134"), r"/tmp/x\");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn commands_are_captured_and_killed_at_the_timeout() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let f = run_with_timeout(c, Duration::from_secs(30), || panic!("no timeout"));
        assert_eq!(f.status.and_then(|s| s.code()), Some(3));
        assert_eq!((f.stdout.as_str(), f.stderr.as_str()), ("out\n", "err\n"));

        // The grandchild `sleep` keeps stdout open after sh is killed.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("sleep.pid");
        let mut c = Command::new("sh");
        c.args(["-c", "echo started; sleep 60 & echo $! >\"$0\"; wait"])
            .arg(&pidfile);
        let called = std::cell::Cell::new(false);
        let t = Instant::now();
        let f = run_with_timeout(c, Duration::from_millis(300), || called.set(true));
        let waited = t.elapsed();
        let sleep: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(sleep), nix::sys::signal::SIGKILL)
            .unwrap();
        assert!(f.status.is_none() && called.get());
        assert_eq!(f.stdout, "started\n");
        // Its few seconds of patience, not the sleep's minute.
        assert!(waited < Duration::from_secs(30), "{waited:?}");
    }

    #[test]
    fn key_values_split_at_the_first_equals() {
        let kv = key_values("version=1.0.0\nuser=app uid=1000 gid=1000\nnoise\n");
        assert_eq!(kv["version"], "1.0.0");
        assert_eq!(kv["user"], "app uid=1000 gid=1000");
        assert_eq!(kv.len(), 2);
    }
}
