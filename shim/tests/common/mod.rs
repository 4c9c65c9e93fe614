//! What every keel-shim integration test shares: the binaries, one image
//! store per test run (busybox imported, the busybox-app fixture built into
//! it), and [`Env`], a private `--root`/`--run-dir` whose guard removes the
//! test's containers (`rm -f`) and then fails the test if anything of them
//! is left: a mount, a process, runtime state, a container dir, a name.
//!
//! Root only (containers, overlays). keel-build and keel-runtime are taken
//! from beside keel-shim: `cargo build -p keel-builder -p keel-runtime`
//! into the same target dir first.

#![allow(dead_code)]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The base image and the fixture's image, as tagged in the store.
pub const BUSYBOX: &str = "local/busybox:latest";
pub const BBAPP: &str = "bbapp";

/// The OCI runtime a test runs its containers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rt {
    Keel,
    Runc,
}

impl Rt {
    pub fn binary(self) -> PathBuf {
        match self {
            Rt::Keel => {
                let p = beside_shim("keel-runtime");
                assert!(
                    p.is_file(),
                    "{} is missing: run `cargo build -p keel-runtime` into this target dir",
                    p.display()
                );
                p
            }
            Rt::Runc => {
                let p = PathBuf::from("/usr/sbin/runc");
                assert!(p.is_file(), "runc is missing: apt-get install -y runc");
                p
            }
        }
    }

    pub fn tag(self) -> &'static str {
        match self {
            Rt::Keel => "keel",
            Rt::Runc => "runc",
        }
    }
}

/// One test function per runtime: `per_runtime!(a, b)` makes
/// `keel_runtime::a`, `runc::a`, ... calling `a(Rt::Keel)` and `a(Rt::Runc)`.
#[macro_export]
macro_rules! per_runtime {
    ($($name:ident),* $(,)?) => {
        mod keel_runtime {
            $( #[test] fn $name() { super::$name($crate::common::Rt::Keel) } )*
        }
        mod runc {
            $( #[test] fn $name() { super::$name($crate::common::Rt::Runc) } )*
        }
    };
}

pub fn shim_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keel-shim"))
}

fn beside_shim(name: &str) -> PathBuf {
    shim_binary()
        .parent()
        .expect("keel-shim has a directory")
        .join(name)
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The image store of this test run: a directory named by our pid under
/// cargo's tmp dir (stores of earlier runs whose process is gone are
/// removed first), with busybox imported and the fixture built.
pub fn store() -> &'static Path {
    static STORE: OnceLock<PathBuf> = OnceLock::new();
    STORE.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("keel-shim-tests");
        fs::create_dir_all(&base).unwrap();
        for e in fs::read_dir(&base).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = name
                .strip_prefix("store-")
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
            if stale {
                let _ = fs::remove_dir_all(e.path());
            }
        }
        let store = base.join(format!("store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&store);

        let rootfs = dirs_home().join(".cache/keel/bases/busybox");
        fs::create_dir_all(rootfs.parent().unwrap()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/base-rootfs.sh");
        let o = Command::new("bash")
            .arg(&script)
            .arg("busybox")
            .arg(&rootfs)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "base-rootfs.sh: {}", text(&o));

        let build = beside_shim("keel-build");
        assert!(
            build.is_file(),
            "{} is missing: run `cargo build -p keel-builder` into this target dir",
            build.display()
        );
        let o = Command::new(&build)
            .arg("--root")
            .arg(&store)
            .arg("import")
            .arg(&rootfs)
            .arg(BUSYBOX)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "keel-build import: {}", text(&o));
        let fixture = Path::new("/work/shared/fixtures/busybox-app");
        let o = Command::new(&build)
            .arg("--root")
            .arg(&store)
            .args(["build", "--progress", "plain", "-t", BBAPP, "--runtime"])
            .arg(Rt::Keel.binary())
            .arg(fixture)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "keel-build build: {}", text(&o));
        store
    })
}

fn dirs_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// Most tests share the machine; the heavy ones (1 GiB of output, 100
/// containers) run alone.
static MACHINE: RwLock<()> = RwLock::new(());

enum Share {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

/// A test's private keel-shim: its own `--root` and `--run-dir` in a temp
/// dir. Dropping it removes every container of the test and fails the test
/// if anything of them survives.
pub struct Env {
    pub rt: Rt,
    pub dir: PathBuf,
    pub root: PathBuf,
    pub run: PathBuf,
    /// CLI processes the test started in the background.
    children: Mutex<Vec<u32>>,
    tmp: Option<tempfile::TempDir>,
    _share: Share,
}

impl Env {
    pub fn new(rt: Rt) -> Env {
        let share = Share::Shared(MACHINE.read().unwrap_or_else(|e| e.into_inner()));
        Env::with(rt, share)
    }

    /// For the heavy tests: no other test runs meanwhile.
    pub fn alone(rt: Rt) -> Env {
        let share = Share::Alone(MACHINE.write().unwrap_or_else(|e| e.into_inner()));
        Env::with(rt, share)
    }

    fn with(rt: Rt, share: Share) -> Env {
        store();
        // Short: the attach socket's path must fit a sockaddr_un (108).
        let tmp = tempfile::Builder::new()
            .prefix(&format!("keel-t{}-", &rt.tag()[..1]))
            .tempdir()
            .unwrap();
        let dir = tmp.path().to_path_buf();
        Env {
            rt,
            root: dir.join("root"),
            run: dir.join("r"),
            dir,
            children: Mutex::new(Vec::new()),
            tmp: Some(tmp),
            _share: share,
        }
    }

    /// `keel-shim` with this test's root, run dir, store and runtime;
    /// stdin is /dev/null unless the caller sets it.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(shim_binary());
        c.arg("--root")
            .arg(&self.root)
            .arg("--run-dir")
            .arg(&self.run)
            .arg("--store")
            .arg(store())
            .arg("--runtime")
            .arg(self.rt.binary())
            .stdin(Stdio::null());
        c
    }

    /// The command line of [`Env::cmd`] as one shell string (for tmux).
    pub fn shell_cmd(&self, args: &[&str]) -> String {
        let mut words = vec![
            shim_binary().display().to_string(),
            "--root".into(),
            self.root.display().to_string(),
            "--run-dir".into(),
            self.run.display().to_string(),
            "--store".into(),
            store().display().to_string(),
            "--runtime".into(),
            self.rt.binary().display().to_string(),
        ];
        words.extend(args.iter().map(|s| s.to_string()));
        words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs keel-shim, asserts it exited 0, returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(o.status.success(), "keel-shim {args:?}: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs keel-shim, asserts its exit code, returns the output.
    pub fn code(&self, args: &[&str], code: i32) -> Output {
        let o = self.out(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "keel-shim {args:?}: {}",
            text(&o)
        );
        o
    }

    /// A keel-shim in the background, killed by the guard if still there.
    pub fn spawn(&self, args: &[&str], stdin: Stdio) -> Child {
        let child = self
            .cmd()
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.children.lock().unwrap().push(child.id());
        child
    }

    /// The full id of a container, from `inspect`.
    pub fn id_of(&self, name: &str) -> String {
        self.inspect(name)["Id"].as_str().unwrap().to_string()
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self.ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    pub fn state(&self, name: &str) -> String {
        self.inspect(name)["State"]["Status"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Waits until `inspect` shows this state.
    pub fn wait_state(&self, name: &str, want: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            // Not there yet (a `run` still starting) counts as not yet.
            let o = self.out(&["inspect", name]);
            let st = serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .ok()
                .and_then(|v| v[0]["State"]["Status"].as_str().map(String::from))
                .unwrap_or_else(|| "missing".into());
            if st == want {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{name} is still {st}, not {want}, after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The container's log as `logs` prints it (stdout, stderr).
    pub fn logs(&self, args: &[&str]) -> (String, String) {
        let mut a = vec!["logs"];
        a.extend_from_slice(args);
        let o = self.out(&a);
        assert!(o.status.success(), "logs {args:?}: {}", text(&o));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    }

    /// Ids of the containers under our root.
    pub fn container_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        ids.sort();
        ids
    }

    /// Names still reserved under our root.
    pub fn names(&self) -> Vec<String> {
        fs::read_dir(self.root.join("names"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Everything of this test's containers that is still there: container
    /// dirs, names, live dirs, runtime state, mounts and processes.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for id in self.container_ids() {
            left.push(format!("container dir {id}"));
        }
        for n in self.names() {
            left.push(format!("name reserved: {n}"));
        }
        for e in fs::read_dir(&self.run).into_iter().flatten().flatten() {
            if e.file_name() != "runtime" {
                left.push(format!("run dir entry {}", e.path().display()));
            }
        }
        for e in fs::read_dir(self.run.join("runtime"))
            .into_iter()
            .flatten()
            .flatten()
        {
            left.push(format!("runtime state {}", e.path().display()));
        }
        left.extend(
            mounts_naming(&self.dir)
                .into_iter()
                .map(|m| format!("mount: {m}")),
        );
        left.extend(
            processes_in(&self.dir)
                .into_iter()
                .map(|(pid, what)| format!("process {pid}: {what}")),
        );
        left
    }

    /// Asserts that nothing of any container is there (waiting up to
    /// `within` for supervisors finishing up).
    pub fn assert_clean(&self, within: Duration) {
        let start = Instant::now();
        loop {
            let left = self.leftovers();
            if left.is_empty() {
                return;
            }
            if start.elapsed() >= within {
                panic!("left behind:\n  {}", left.join("\n  "));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Last resort on a failed test: kill what names our dir, delete the
    /// runtime's state, unmount, so that the temp dir can go.
    fn force_clean(&self) {
        for (pid, _) in processes_in(&self.dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        for id in self.container_ids() {
            let _ = Command::new(self.rt.binary())
                .arg("--root")
                .arg(self.run.join("runtime"))
                .args(["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Innermost first, and only in our own namespace: the others die
        // with their processes.
        let mut ours: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| Path::new(m).starts_with(&self.dir))
            .collect();
        ours.sort();
        for m in ours.iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for pid in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Containers may still be mid-removal from the test: rm -f all.
        let ids = self.container_ids();
        for chunk in ids.chunks(50) {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = self.out(&args);
        }
        let start = Instant::now();
        let mut left = self.leftovers();
        while !left.is_empty() && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(100));
            left = self.leftovers();
        }
        if !left.is_empty() {
            self.force_clean();
        }
        if let Some(tmp) = self.tmp.take() {
            let _ = tmp.close();
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!("rm -f left behind:\n  {}", left.join("\n  "));
        }
    }
}

/// Mount lines, in any process's mount namespace, that name `dir`.
pub fn mounts_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut seen_ns = std::collections::HashSet::new();
    let mut out = Vec::new();
    for pid in pids() {
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !seen_ns.insert(ns) {
            continue;
        }
        let Ok(info) = fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            continue;
        };
        out.extend(
            info.lines()
                .filter(|l| l.contains(&needle))
                .map(|l| format!("(pid {pid}) {l}")),
        );
    }
    out
}

/// Processes whose command line names `dir`, or whose root or cwd is in it
/// (a container's processes): (pid, what).
pub fn processes_in(dir: &Path) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let needle = dir.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for pid in pids() {
        if pid == me {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .unwrap_or_default();
        let in_dir = |what: &str| {
            fs::read_link(format!("/proc/{pid}/{what}")).is_ok_and(|p| p.starts_with(dir))
        };
        if cmdline.contains(&needle) || in_dir("root") || in_dir("cwd") {
            out.push((pid, cmdline.trim().to_string()));
        }
    }
    out
}

fn pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Reads a child's stdout until `want` appears (or panics after `limit`).
pub fn read_until(r: &mut impl Read, want: &str, limit: Duration) -> String {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        assert!(
            start.elapsed() < limit,
            "no {want:?} within {limit:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        match r.read(&mut buf) {
            Ok(0) => panic!(
                "EOF before {want:?}; got {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Waits for a child with a deadline; kills it and panics when it is late.
pub fn wait_child(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    let watchdog = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            if d.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        true
    });
    let o = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let late = watchdog.join().unwrap();
    assert!(
        !late,
        "keel-shim did not finish within {limit:?}: {}",
        text(&o)
    );
    o
}
