//! The client against real runtimes: runc and keel-runtime (when built).
//! Needs root; every container lives under a private `--root` and is
//! deleted by a guard even when an assertion fails.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_runtime_client::{CreateOpts, Error, ExecOpts, Io, Runtime, Status};

/// keel-runtime as `cargo test --workspace` builds it: beside this test's
/// profile dir (target/<profile>/deps/<test> -> target/<profile>/keel-runtime).
fn keel_runtime() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("keel-runtime");
    p.is_file().then_some(p)
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The runtimes to test against, with a note for each one missing.
fn runtimes() -> Vec<PathBuf> {
    if !is_root() {
        eprintln!("note: not root, skipping runtime tests");
        return Vec::new();
    }
    let mut found = Vec::new();
    match which("runc") {
        Some(p) => found.push(p),
        None => eprintln!("note: runc not installed (apt-get install -y runc), skipping it"),
    }
    if let Some(p) = keel_runtime() {
        found.push(p);
    } else {
        eprintln!("note: keel-runtime not built beside the tests, skipping it");
    }
    found
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn new_id() -> String {
    format!(
        "keel-test-client-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private state root and bundle dir; on drop, every container it handed
/// out is force-deleted and both dirs are removed.
struct Sandbox {
    dir: PathBuf,
    rt: Runtime,
    ids: Vec<String>,
}

impl Sandbox {
    fn new(binary: &Path) -> Sandbox {
        let dir = std::env::temp_dir().join(new_id());
        fs::create_dir_all(dir.join("root")).unwrap();
        let rt = Runtime::new(binary).root(dir.join("root"));
        Sandbox {
            dir,
            rt,
            ids: Vec::new(),
        }
    }

    fn id(&mut self) -> String {
        let id = new_id();
        self.ids.push(id.clone());
        id
    }

    /// A bundle of a static busybox running `args`.
    fn bundle(&self, name: &str, args: &[&str]) -> PathBuf {
        let bundle = self.dir.join(name);
        let bin = bundle.join("rootfs/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in ["sh", "sleep", "echo", "id", "ls", "cat"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let ok = Command::new("runc")
            .arg("spec")
            .current_dir(&bundle)
            .status()
            .unwrap();
        assert!(ok.success(), "runc spec failed");
        let path = bundle.join("config.json");
        let mut spec: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        spec["process"]["terminal"] = false.into();
        spec["process"]["args"] = args.iter().map(|a| a.to_string()).collect();
        fs::write(&path, serde_json::to_vec(&spec).unwrap()).unwrap();
        bundle
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.rt.delete(id, true);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(rt: &Runtime, id: &str, want: Status) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = rt.state(id).unwrap();
        if st.status == want {
            return;
        }
        assert!(Instant::now() < deadline, "{id} stuck in {}", st.status);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lifecycle_create_state_start_kill_delete() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let bundle = sb.bundle("b", &["sleep", "1000"]);
        let id = sb.id();
        let rt = sb.rt.clone();
        let pid_file = sb.dir.join("pid");
        let opts = CreateOpts {
            pid_file: Some(pid_file.clone()),
            ..CreateOpts::default()
        };
        rt.create(&id, &bundle, &opts).unwrap();

        let st = rt.state(&id).unwrap();
        assert_eq!(st.id, id);
        assert_eq!(st.status, Status::Created, "{}", binary.display());
        assert!(st.pid > 0);
        assert_eq!(st.bundle, bundle);
        let written: i32 = fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(written, st.pid);

        rt.start(&id).unwrap();
        wait_for(&rt, &id, Status::Running);
        let listed = rt.list().unwrap();
        assert!(listed
            .iter()
            .any(|s| s.id == id && s.status == Status::Running));

        rt.kill(&id, "KILL", false).unwrap();
        wait_for(&rt, &id, Status::Stopped);
        rt.delete(&id, false).unwrap();
        assert!(rt.state(&id).is_err(), "{id} still there after delete");
        assert!(rt.list().unwrap().is_empty());
    }
}

#[test]
fn run_returns_the_container_exit_code() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let bundle = sb.bundle("b", &["sh", "-c", "exit 3"]);
        let id = sb.id();
        let code = sb
            .rt
            .run(&id, &bundle, &CreateOpts::default(), Io::null())
            .unwrap();
        assert_eq!(code, 3, "{}", binary.display());
        assert!(sb.rt.list().unwrap().is_empty(), "run left {id} behind");
    }
}

#[test]
fn run_output_goes_to_the_given_file() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let bundle = sb.bundle("b", &["sh", "-c", "echo out; echo err >&2"]);
        let id = sb.id();
        let out = sb.dir.join("out");
        let f = fs::File::create(&out).unwrap();
        let io = Io {
            stdin: std::process::Stdio::null(),
            stdout: f.try_clone().unwrap().into(),
            stderr: f.into(),
        };
        let code = sb.rt.run(&id, &bundle, &CreateOpts::default(), io).unwrap();
        assert_eq!(code, 0);
        // runc copies a foreground container's stdout and stderr through
        // two pipes of its own, so their relative order is not kept.
        let text = fs::read_to_string(&out).unwrap();
        let mut lines: Vec<_> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, ["err", "out"], "{}", binary.display());
    }
}

#[test]
fn exec_returns_the_process_exit_code() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let bundle = sb.bundle("b", &["sleep", "1000"]);
        let id = sb.id();
        let rt = sb.rt.clone();
        rt.create(&id, &bundle, &CreateOpts::default()).unwrap();
        rt.start(&id).unwrap();
        let process = sb.dir.join("process.json");
        let spec: serde_json::Value =
            serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
        let mut p = spec["process"].clone();
        p["args"] = serde_json::json!(["sh", "-c", "exit 5"]);
        fs::write(&process, serde_json::to_vec(&p).unwrap()).unwrap();
        let code = rt
            .exec(&id, &process, &ExecOpts::default(), Io::null())
            .unwrap();
        assert_eq!(code, 5, "{}", binary.display());
        rt.delete(&id, true).unwrap();
    }
}

#[test]
fn failure_carries_the_runtime_message() {
    for binary in runtimes() {
        let sb = Sandbox::new(&binary);
        let unknown = new_id();
        match sb.rt.start(&unknown) {
            Err(Error::Failed {
                command,
                message,
                status,
            }) => {
                assert!(message.contains("does not exist"), "message: {message}");
                // The log's msg, not a raw `{"level":...}` line or stderr's
                // `time=... level=error` decoration.
                assert!(!message.contains("level"), "message: {message}");
                assert!(command.contains("start") && command.contains(&unknown));
                assert!(!status.success());
            }
            other => panic!("{}: expected Failed, got {other:?}", binary.display()),
        }
    }
}

#[test]
fn user_log_file_is_kept_and_still_read() {
    for binary in runtimes() {
        let sb = Sandbox::new(&binary);
        let log = sb.dir.join("runtime.log");
        let rt = sb.rt.clone().log_file(&log);
        let a = new_id();
        let b = new_id();
        let _ = rt.delete(&a, false);
        match rt.kill(&b, "KILL", false) {
            Err(Error::Failed { message, .. }) => {
                assert!(message.contains("does not exist"), "message: {message}")
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert!(log.is_file());
    }
}
