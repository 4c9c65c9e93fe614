//! Shared by the root integration tests: a private state root, busybox
//! bundles, and checks that a container left nothing behind (state dir,
//! cgroup, mount, process). Every test uses ids prefixed `keel-test-` and
//! touches nothing it did not create.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_keel-runtime");

/// These tests create real containers; they need root (CI runs as root).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runtime integration tests need root (namespaces, cgroups, mounts)"
    );
}

/// A busybox rootfs from Debian's busybox-static, built once under cargo's
/// target dir (a static TempDir is never dropped, so one per test binary
/// under /tmp was never removed) and copied per bundle (it is 2 MB).
fn template_rootfs() -> &'static Path {
    static T: OnceLock<PathBuf> = OnceLock::new();
    T.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("keel-test-busybox-rootfs");
        if dir.join("etc/group").is_file() {
            return dir;
        }
        // Built beside and renamed: test binaries run in parallel.
        let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("keel-test-busybox-rootfs.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
            std::fs::create_dir_all(work.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", work.join("bin/busybox"))
            .expect("/bin/busybox (Debian busybox-static) is needed: make test installs it");
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", work.join("bin").join(applet));
            }
        }
        std::fs::write(
            work.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(work.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        if std::fs::rename(&work, &dir).is_err() {
            // Another test binary's copy won.
            let _ = std::fs::remove_dir_all(&work);
        }
        dir
    })
}

pub struct Bundle {
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// A bundle running `args` with runc's default spec, terminal off.
    pub fn busybox(args: &[&str]) -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("keel-test-bundle-")
            .tempdir()
            .unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(template_rootfs())
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let mut cfg = keel_runtime::spec::default_spec_json(false);
        cfg["process"]["terminal"] = Value::Bool(false);
        cfg["process"]["args"] = serde_json::json!(args);
        cfg["hostname"] = Value::String("keel".into());
        let b = Bundle { dir };
        b.write_config(&cfg);
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    pub fn write_config(&self, v: &Value) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_string_pretty(v).unwrap(),
        )
        .unwrap();
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let mut v = self.config();
        f(&mut v);
        self.write_config(&v);
    }
}

/// A private `--root`; on drop, force-deletes whatever a failed test left.
pub struct Runtime {
    pub root: tempfile::TempDir,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        require_root();
        Runtime {
            root: tempfile::Builder::new()
                .prefix("keel-test-root-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs with stdin closed and output captured in files: a detached
    /// container inherits its creator's stdio, so pipes would stay open
    /// (and `output()` wait) for as long as the container runs.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let status = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .status()
            .expect("spawn keel-runtime");
        Output {
            status,
            stdout: read_back(out),
            stderr: read_back(err),
        }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "keel-runtime {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "keel-runtime {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(out.status.code(), Some(1), "runc exits 1 on error");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits (bounded) for a container to reach `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        for _ in 0..500 {
            if self.status(id) == status {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("container {id} never reached {status}: {}", self.status(id));
    }

    pub fn ids(&self) -> Vec<String> {
        self.ok(&["list", "-q"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for id in self.ids_quiet() {
            let _ = self
                .cmd()
                .args(["delete", "--force", &id])
                .stdin(Stdio::null())
                .output();
        }
    }
}

impl Runtime {
    fn ids_quiet(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Everything a container could leave behind, checked after it is gone.
pub fn assert_nothing_left(rt: &Runtime, id: &str, bundle: &Bundle) {
    let state_dir = rt.root.path().join(id);
    assert!(
        !state_dir.exists(),
        "state dir {} left behind",
        state_dir.display()
    );
    let leftovers: Vec<String> = std::fs::read_dir(rt.root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers.is_empty(),
        "left in the state root: {leftovers:?}"
    );
    let cgroups = cgroup_dirs_named(id);
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
    let rootfs = bundle.rootfs();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs_s = rootfs.to_string_lossy();
    let stray: Vec<&str> = mounts.lines().filter(|l| l.contains(&*rootfs_s)).collect();
    assert!(stray.is_empty(), "mounts left behind: {stray:?}");
    let procs = processes_in_cgroup(id);
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
}

/// Directories named after the container under any cgroup hierarchy.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    walkdir_named(Path::new("/sys/fs/cgroup"), id, 4)
}

fn walkdir_named(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = vec![];
    if depth == 0 {
        return found;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && !ft.is_symlink() {
            let fname = e.file_name().to_string_lossy().into_owned();
            if fname.contains(name) {
                found.push(e.path());
            }
            found.extend(walkdir_named(&e.path(), name, depth - 1));
        }
    }
    found
}

/// Processes whose cgroup path names the container: after pivot_root a
/// container's /proc/PID/root no longer says where it is, its cgroup does.
pub fn processes_in_cgroup(id: &str) -> Vec<i32> {
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
            if cg.contains(id) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn read_back(mut f: std::fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut v = Vec::new();
    f.seek(std::io::SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut v).unwrap();
    v
}

/// A unique id for this test process.
pub fn id(name: &str) -> String {
    format!("keel-test-{name}-{}", std::process::id())
}
