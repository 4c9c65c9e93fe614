//! End-to-end tests: real supervisors over keel-runtime (and runc) running
//! busybox bundles, in private `--root`/`--run-dir` temp dirs. Root only.
//!
//! The supervisor is this test binary re-executed to run the one "test"
//! [`supervisor_process`], which calls [`super::main`]; the CLI's binary
//! does the same through its hidden `__supervise` subcommand.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use keel_runtime_client::Runtime;

use super::spawn::{spawn_with, Launcher};
use super::{start_created, SpawnOutcome, SupervisorError};
use crate::attach::client::{attach_with, LocalIo};
use crate::attach::frame::{Decoder, Frame};
use crate::attach::{AttachEnd, AttachError, AttachOptions};
use crate::container::{ContainerMeta, ExitRecord, Paths};

const SUPERVISE_ENV: &str = "KEEL_SHIM_TEST_SUPERVISE";

/// Not a test: the entry point of the supervisors the tests start (this
/// binary re-executed with `--exact` on it). In a normal run it returns.
#[test]
fn supervisor_process() {
    let Ok(spec) = std::env::var(SUPERVISE_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\n').collect();
    let paths = Paths::new(parts[0], parts[1]);
    std::process::exit(super::main(&paths, parts[2]));
}

fn runtime_binary(name: &str) -> PathBuf {
    if name == "runc" {
        return PathBuf::from("/usr/sbin/runc");
    }
    // target/debug/deps/keel_shim-HASH -> target/debug/keel-runtime
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("keel-runtime");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build -p keel-runtime` first",
        bin.display()
    );
    bin
}

struct Fixture {
    // Dropped last: the guard below must run before the dirs go.
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    paths: Paths,
    runtime: PathBuf,
    ids: std::cell::RefCell<Vec<String>>,
}

/// The cgroup dirs keel-runtime made for container `id` (it names them
/// `:youki:<id>` when the config has no cgroupsPath), in every hierarchy.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let name = format!(":youki:{id}");
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = h.path().join(&name);
        if p.is_dir() {
            out.push(p);
        }
    }
    out
}

impl Drop for Fixture {
    /// Even when a test fails: its containers are killed and deleted, and
    /// their cgroups removed, before the temp dir (the runtime's state) goes.
    fn drop(&mut self) {
        let rt = self.rt();
        for id in self.ids.borrow().iter() {
            if rt.state(id).is_ok() {
                let _ = rt.kill(id, "KILL", true);
                let _ = rt.delete(id, true);
            }
            for d in cgroup_dirs(id) {
                let _ = std::fs::remove_dir(&d);
            }
            let _ = keel_builder::bundle::remove_bundle(&self.paths.bundle(id));
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    fn new(runtime: &str) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let paths = Paths::new(dir.join("root"), dir.join("run"));
        Fixture {
            _tmp: tmp,
            dir,
            paths,
            runtime: runtime_binary(runtime),
            ids: Default::default(),
        }
    }

    fn id(&self) -> String {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:032x}{:032x}", std::process::id(), n);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    fn rt(&self) -> Runtime {
        Runtime::new(&self.runtime).root(self.paths.runtime_root())
    }

    /// A container dir with meta.json and a busybox bundle running `args`.
    fn container(&self, args: &[&str], tty: bool, stdin: bool) -> ContainerMeta {
        let id = self.id();
        let meta = ContainerMeta {
            id: id.clone(),
            name: format!("test-{}", &id[56..]),
            image: "busybox".into(),
            image_id: "sha256:0".into(),
            created: super::launch::now(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            entrypoint: None,
            cmd: None,
            tty,
            stdin,
            auto_remove: false,
            stop_signal: "SIGTERM".into(),
            log_max_size: None,
            log_max_files: 1,
            runtime: self.runtime.clone(),
        };
        let bundle = self.paths.bundle(&id);
        make_rootfs(&bundle.join("rootfs"));
        self.write_config(&meta);
        self.write_meta(&meta);
        meta
    }

    fn write_meta(&self, meta: &ContainerMeta) {
        std::fs::write(self.paths.meta(&meta.id), serde_json::to_vec(meta).unwrap()).unwrap();
    }

    fn write_config(&self, meta: &ContainerMeta) {
        let bundle = self.paths.bundle(&meta.id);
        let _ = std::fs::remove_file(bundle.join("config.json"));
        let st = std::process::Command::new(runtime_binary("keel-runtime"))
            .arg("spec")
            .arg("--bundle")
            .arg(&bundle)
            .status()
            .unwrap();
        assert!(st.success());
        let path = bundle.join("config.json");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        c["process"]["terminal"] = meta.tty.into();
        c["process"]["args"] = meta.args.clone().into();
        c["hostname"] = "keel".into();
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    fn launcher(&self, id: &str) -> Launcher {
        let spec = format!(
            "{}\n{}\n{}",
            self.paths.root.display(),
            self.paths.run.display(),
            id
        );
        Launcher {
            exe: std::env::current_exe().unwrap(),
            argv0: "keel-shim-test".into(),
            args: [
                "supervisor::tests::supervisor_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ]
            .iter()
            .map(OsString::from)
            .collect(),
            env: vec![(SUPERVISE_ENV.into(), spec.into())],
        }
    }

    fn spawn(&self, meta: &ContainerMeta, start: bool) -> Result<SpawnOutcome, SupervisorError> {
        spawn_with(&self.launcher(&meta.id), &self.paths, meta, start)
    }

    /// Waits for the supervisor to finish: exit.json written and its run
    /// dir removed.
    fn wait_exit(&self, id: &str, timeout: Duration) -> ExitRecord {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(rec) = ExitRecord::load(&self.paths.exit(id)) {
                if !self.paths.run_dir(id).exists() {
                    return rec;
                }
            }
            assert!(Instant::now() < deadline, "container {id} did not finish");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_entries(&self, id: &str) -> Vec<(String, String)> {
        read_log(&self.paths.log(id))
    }
}

fn read_log(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["time"].as_str().unwrap().ends_with('Z'));
            (
                v["stream"].as_str().unwrap().to_string(),
                v["log"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The text of one stream, entries joined (a line may be split across
/// entries by a flush).
fn stream_text(entries: &[(String, String)], stream: &str) -> String {
    entries
        .iter()
        .filter(|(s, _)| s == stream)
        .map(|(_, l)| l.as_str())
        .collect()
}

fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn kill9(pid: i32) {
    // SAFETY: a plain kill of a process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

/// Output collected from an attach session's local stdout and stderr.
struct Captured {
    out: std::thread::JoinHandle<Vec<u8>>,
    err: std::thread::JoinHandle<Vec<u8>>,
}

fn capture() -> (OwnedFd, OwnedFd, Captured) {
    let (out_r, out_w) = crate::io::pipe("test stdout").unwrap();
    let (err_r, err_w) = crate::io::pipe("test stderr").unwrap();
    let reader = |fd: OwnedFd| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::fs::File::from(fd), &mut v).unwrap();
            v
        })
    };
    (
        out_w,
        err_w,
        Captured {
            out: reader(out_r),
            err: reader(err_r),
        },
    )
}

/// Runs an attach session in a thread with pipes as the local stdio.
fn attach_in_thread(
    paths: &Paths,
    id: &str,
    opts: AttachOptions,
    stdin: OwnedFd,
) -> (
    std::thread::JoinHandle<Result<AttachEnd, AttachError>>,
    Captured,
) {
    let (out_w, err_w, cap) = capture();
    let paths = paths.clone();
    let id = id.to_string();
    let h = std::thread::spawn(move || {
        let local = LocalIo {
            stdin: stdin.as_fd(),
            stdout: out_w.as_fd(),
            stderr: err_w.as_fd(),
        };
        attach_with(&paths, &id, &opts, &local)
    });
    (h, cap)
}

fn null_stdin() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

/// A raw protocol client for what the attach client does not expose.
struct RawClient {
    sock: UnixStream,
    decoder: Decoder,
}

impl RawClient {
    fn connect(paths: &Paths, id: &str) -> RawClient {
        RawClient {
            sock: UnixStream::connect(paths.attach_socket(id)).unwrap(),
            decoder: Decoder::new(),
        }
    }

    fn send(&mut self, f: Frame) {
        std::io::Write::write_all(&mut self.sock, &f.to_bytes()).unwrap();
    }

    /// Frames until the exit frame (included) or EOF.
    fn until_exit(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            while let Some(f) = self.decoder.next_frame().unwrap() {
                let end = matches!(f, Frame::Exit(_));
                frames.push(f);
                if end {
                    return frames;
                }
            }
            let n = std::io::Read::read(&mut self.sock, &mut buf).unwrap();
            if n == 0 {
                return frames;
            }
            self.decoder.feed(&buf[..n]);
        }
    }
}

fn stdout_of(frames: &[Frame]) -> String {
    frames
        .iter()
        .filter_map(|f| match f {
            Frame::Stdout(d) => Some(String::from_utf8_lossy(d).into_owned()),
            _ => None,
        })
        .collect()
}

fn runtime_has(fx: &Fixture, id: &str) -> bool {
    fx.rt()
        .list()
        .map(|l| l.iter().any(|s| s.id == id))
        .unwrap_or(false)
}

fn assert_nothing_live(fx: &Fixture, id: &str) {
    assert!(!fx.paths.run_dir(id).exists(), "run dir left behind");
    assert!(!runtime_has(fx, id), "runtime state left behind");
}

#[test]
fn detached_container_output_is_logged_in_order_with_streams() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do echo out$i; echo err$i >&2; done",
        ],
        false,
        false,
    );
    let out = fx.spawn(&meta, true).unwrap();
    assert!(out.supervisor_pid > 0 && out.container_pid > 0);
    let rec = fx.wait_exit(&meta.id, Duration::from_secs(20));
    assert_eq!(rec.code, 0);
    assert_eq!(rec.signal, None);
    assert!(rec.started_at.is_some());
    let entries = fx.log_entries(&meta.id);
    let of = |s: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|(st, _)| st == s)
            .map(|(_, l)| l.clone())
            .collect()
    };
    assert_eq!(of("stdout"), ["out1\n", "out2\n", "out3\n"]);
    assert_eq!(of("stderr"), ["err1\n", "err2\n", "err3\n"]);
    assert_nothing_live(&fx, &meta.id);
    assert!(!alive(out.supervisor_pid) || is_zombie(out.supervisor_pid));
    // Kept without --rm.
    assert!(fx.paths.bundle(&meta.id).join("config.json").exists());
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

#[test]
fn attached_client_gets_stdout_stderr_and_exit_code() {
    for rt in ["keel-runtime", "runc"] {
        let fx = Fixture::new(rt);
        let meta = fx.container(
            &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
            false,
            false,
        );
        fx.spawn(&meta, false).unwrap();
        let (h, cap) =
            attach_in_thread(&fx.paths, &meta.id, AttachOptions::default(), null_stdin());
        // The hello must be in before the container starts talking.
        std::thread::sleep(Duration::from_millis(300));
        start_created(&fx.paths, &meta.id).unwrap();
        assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Exited(3), "{rt}");
        assert_eq!(cap.out.join().unwrap(), b"hello\n", "{rt}");
        assert_eq!(cap.err.join().unwrap(), b"oops\n", "{rt}");
        assert_eq!(fx.wait_exit(&meta.id, Duration::from_secs(20)).code, 3);
        assert_nothing_live(&fx, &meta.id);
    }
}

#[test]
fn killed_container_exits_137_to_the_attached_client() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["sleep", "1000"], false, false);
    let out = fx.spawn(&meta, true).unwrap();
    let (h, _cap) = attach_in_thread(&fx.paths, &meta.id, AttachOptions::default(), null_stdin());
    std::thread::sleep(Duration::from_millis(200));
    kill9(out.container_pid);
    assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Exited(137));
    let rec = fx.wait_exit(&meta.id, Duration::from_secs(20));
    assert_eq!((rec.code, rec.signal), (137, Some(9)));
    assert_nothing_live(&fx, &meta.id);
}

#[test]
fn exec_failures_give_126_and_127_with_the_runtime_message_and_leave_nothing() {
    for rt in ["keel-runtime", "runc"] {
        let fx = Fixture::new(rt);
        for (args, code) in [(["nosuchbin"], 127), (["/etc/passwd"], 126)] {
            let meta = fx.container(&args, false, false);
            match fx.spawn(&meta, true) {
                Err(SupervisorError::Runtime {
                    message, code: c, ..
                }) => {
                    assert_eq!(c, code, "{rt}: {message}");
                    assert!(message.contains(args[0]), "{rt}: {message}");
                }
                other => panic!("{rt}: expected a runtime error, got {other:?}"),
            }
            assert_nothing_live(&fx, &meta.id);
            assert!(!fx.paths.exit(&meta.id).exists());
            assert!(!fx.paths.log(&meta.id).exists());
        }
    }
}

#[test]
fn stdin_is_forwarded_and_its_end_closes_the_containers() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["cat"], false, true);
    fx.spawn(&meta, true).unwrap();
    let (in_r, in_w) = crate::io::pipe("test stdin").unwrap();
    let opts = AttachOptions {
        stdin: true,
        ..AttachOptions::default()
    };
    let (h, cap) = attach_in_thread(&fx.paths, &meta.id, opts, in_r);
    crate::io::write_all_fd(&in_w, b"hello\nworld\n").unwrap();
    drop(in_w);
    assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Exited(0));
    assert_eq!(cap.out.join().unwrap(), b"hello\nworld\n");
    let log = fx.log_entries(&meta.id);
    assert_eq!(stream_text(&log, "stdout"), "hello\nworld\n");
}

#[test]
fn detach_keys_leave_the_container_running() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["cat"], false, true);
    let out = fx.spawn(&meta, true).unwrap();
    let (in_r, in_w) = crate::io::pipe("test stdin").unwrap();
    let opts = AttachOptions {
        stdin: true,
        ..AttachOptions::default()
    };
    let (h, cap) = attach_in_thread(&fx.paths, &meta.id, opts, in_r);
    // ctrl-p then x: a broken sequence goes through as typed.
    crate::io::write_all_fd(&in_w, b"one\n\x10x\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    crate::io::write_all_fd(&in_w, b"\x10\x11").unwrap();
    assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Detached);
    assert_eq!(cap.out.join().unwrap(), b"one\n\x10x\n");
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(out.container_pid));
    kill9(out.container_pid);
    assert_eq!(fx.wait_exit(&meta.id, Duration::from_secs(20)).code, 137);
}

#[test]
fn pty_container_output_arrives_and_resize_reaches_it() {
    for rt in ["keel-runtime", "runc"] {
        let fx = Fixture::new(rt);
        let script = "for i in $(seq 50); do s=$(stty size); [ \"$s\" = \"33 101\" ] && break; sleep 0.1; done; echo size=$s; tty";
        let meta = fx.container(&["sh", "-c", script], true, false);
        fx.spawn(&meta, false).unwrap();
        let mut c = RawClient::connect(&fx.paths, &meta.id);
        c.send(Frame::Hello {
            stdin: false,
            stdout: true,
            stderr: true,
        });
        c.send(Frame::Resize {
            rows: 33,
            cols: 101,
        });
        std::thread::sleep(Duration::from_millis(200));
        start_created(&fx.paths, &meta.id).unwrap();
        let frames = c.until_exit();
        assert_eq!(frames.last(), Some(&Frame::Exit(0)), "{rt}");
        let text = stdout_of(&frames);
        // A tty turns \n into \r\n.
        assert!(text.contains("size=33 101\r\n"), "{rt}: {text:?}");
        assert!(text.contains("/dev/pts/"), "{rt}: {text:?}");
        let log = fx.log_entries(&meta.id);
        assert!(stream_text(&log, "stdout").contains("size=33 101"));
        assert!(stream_text(&log, "stderr").is_empty());
        fx.wait_exit(&meta.id, Duration::from_secs(20));
        assert_nothing_live(&fx, &meta.id);
    }
}

#[test]
fn pty_input_is_echoed_through_the_terminal() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["sh", "-c", "read line; echo got=$line"], true, true);
    fx.spawn(&meta, true).unwrap();
    let mut c = RawClient::connect(&fx.paths, &meta.id);
    c.send(Frame::Hello {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    c.send(Frame::Stdin(b"abc\r".to_vec()));
    let frames = c.until_exit();
    assert_eq!(frames.last(), Some(&Frame::Exit(0)));
    assert!(stdout_of(&frames).contains("got=abc"), "{frames:?}");
}

#[test]
fn the_exit_frame_comes_after_the_runtime_has_deleted_the_container() {
    // A client that goes on to remove everything at once (as this test's
    // temp dir does) must not leave the container's cgroups behind.
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["true"], false, false);
    fx.spawn(&meta, false).unwrap();
    let mut c = RawClient::connect(&fx.paths, &meta.id);
    c.send(Frame::Hello {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    c.send(Frame::Start);
    let frames = c.until_exit();
    assert_eq!(frames.last(), Some(&Frame::Exit(0)));
    let state_dir = fx.paths.runtime_root().join(&meta.id);
    assert!(
        !state_dir.exists(),
        "runtime state {} still there at the exit frame",
        state_dir.display()
    );
    assert_eq!(cgroup_dirs(&meta.id), Vec::<PathBuf>::new());
}

#[test]
fn killed_client_leaves_the_container_running_and_a_new_attach_works() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(
        &["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
        false,
        false,
    );
    let out = fx.spawn(&meta, true).unwrap();
    // A separate process, so that kill -9 is a real client death.
    let script = "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(bytes([1,0,0,0,1,6]))\ntime.sleep(100)\n";
    let mut client = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(fx.paths.attach_socket(&meta.id))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    client.kill().unwrap();
    client.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(out.container_pid));
    assert!(alive(out.supervisor_pid));

    let (h, cap) = attach_in_thread(&fx.paths, &meta.id, AttachOptions::default(), null_stdin());
    std::thread::sleep(Duration::from_millis(500));
    kill9(out.container_pid);
    assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Exited(137));
    let got = String::from_utf8(cap.out.join().unwrap()).unwrap();
    assert!(
        got.lines().count() >= 2 && got.lines().all(|l| l == "tick"),
        "{got:?}"
    );
    fx.wait_exit(&meta.id, Duration::from_secs(20));
}

#[test]
fn killed_supervisor_leaves_the_container_alive_and_files_whole() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["sh", "-c", "echo started; exec sleep 1000"], false, false);
    let out = fx.spawn(&meta, true).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    kill9(out.supervisor_pid);
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(out.container_pid));
    // What remains: the runtime's state (running), the run dir with the
    // pid files and a dead socket, the log as far as it was written, no
    // exit record.
    let state = fx.rt().state(&meta.id).unwrap();
    eprintln!(
        "after supervisor kill -9: runtime status {}, run dir {:?}, exit.json {}",
        state.status,
        std::fs::read_dir(fx.paths.run_dir(&meta.id))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>(),
        fx.paths.exit(&meta.id).exists()
    );
    assert_eq!(state.status, keel_runtime_client::Status::Running);
    assert!(!fx.paths.exit(&meta.id).exists());
    assert_eq!(
        fx.log_entries(&meta.id),
        [("stdout".to_string(), "started\n".to_string())]
    );
    match crate::attach::attach(&fx.paths, &meta.id, &AttachOptions::default()) {
        Err(AttachError::NotRunning { .. }) => {}
        other => panic!("expected NotRunning, got {other:?}"),
    }
    fx.rt().kill(&meta.id, "KILL", false).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(out.container_pid) && !is_zombie(out.container_pid) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    fx.rt().delete(&meta.id, true).unwrap();
}

#[test]
fn auto_remove_leaves_no_dirs_mounts_or_runtime_state() {
    let fx = Fixture::new("keel-runtime");
    let mut meta = fx.container(
        &["sh", "-c", "echo bye > /written; echo done"],
        false,
        false,
    );
    meta.auto_remove = true;
    fx.write_meta(&meta);
    // An overlay rootfs as bundles have, with the upper dir in the bundle.
    let lower = fx.dir.join("layers/lower");
    let bundle = fx.paths.bundle(&meta.id);
    std::fs::create_dir_all(lower.parent().unwrap()).unwrap();
    std::fs::rename(bundle.join("rootfs"), &lower).unwrap();
    for d in ["upper", "work"] {
        std::fs::create_dir_all(bundle.join(d)).unwrap();
    }
    keel_builder::bundle::mount_overlay(
        &fx.dir.join("layers"),
        &["lower".to_string()],
        Some(&bundle.join("upper")),
        Some(&bundle.join("work")),
        &bundle.join("rootfs"),
    )
    .unwrap();
    let mounted = |p: &Path| {
        let want = p.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
    };
    let rootfs = std::fs::canonicalize(bundle.join("rootfs")).unwrap();
    assert!(mounted(&rootfs));

    let res = fx.spawn(&meta, true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while fx.paths.container_dir(&meta.id).exists() || fx.paths.run_dir(&meta.id).exists() {
        if Instant::now() > deadline {
            let _ = keel_builder::bundle::unmount(&rootfs);
            panic!("container not removed (spawn: {res:?})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    res.unwrap();
    assert!(!mounted(&rootfs), "rootfs still mounted");
    assert!(!runtime_has(&fx, &meta.id));
    assert!(
        !lower.join("written").exists(),
        "write went to the lower layer"
    );
}

#[test]
fn two_hundred_megabytes_with_nobody_attached_are_all_logged_in_order() {
    let fx = Fixture::new("keel-runtime");
    // 200,000 lines of 1,000 bytes: a numbered prefix and padding.
    let script = "awk 'BEGIN { p = sprintf(\"%991s\", \"\"); gsub(/ /, \"x\", p); for (i = 0; i < 200000; i++) printf \"%08d%s\\n\", i, p }'";
    let meta = fx.container(&["sh", "-c", script], false, false);
    let t = Instant::now();
    fx.spawn(&meta, true).unwrap();
    let rec = fx.wait_exit(&meta.id, Duration::from_secs(600));
    let took = t.elapsed();
    assert_eq!(rec.code, 0);
    let entries = fx.log_entries(&meta.id);
    let text = stream_text(&entries, "stdout");
    let mut n = 0;
    for (i, line) in text.lines().enumerate() {
        assert_eq!(line.len(), 999, "line {i}");
        assert_eq!(&line[..8], format!("{i:08}"), "line {i} out of order");
        n += 1;
    }
    assert_eq!(n, 200_000);
    eprintln!(
        "200 MB through the supervisor (debug build) in {:.2}s: {:.1} MB/s, {} log entries",
        took.as_secs_f64(),
        200.0 / took.as_secs_f64(),
        entries.len()
    );
}

fn status_kb(pid: i32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn idle_supervisor_memory_is_reported() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["sleep", "1000"], false, false);
    let out = fx.spawn(&meta, true).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let rss = status_kb(out.supervisor_pid, "status", "VmRSS:");
    let pss = status_kb(out.supervisor_pid, "smaps_rollup", "Pss:");
    eprintln!(
        "idle supervisor (the test binary as supervisor, debug): VmRSS {rss} kB, Pss {pss} kB"
    );
    assert!(rss > 0);
    kill9(out.container_pid);
    assert_eq!(fx.wait_exit(&meta.id, Duration::from_secs(20)).code, 137);
}

#[test]
fn missing_metadata_is_reported_to_the_spawner() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["true"], false, false);
    std::fs::remove_file(fx.paths.meta(&meta.id)).unwrap();
    match fx.spawn(&meta, true) {
        Err(e @ SupervisorError::Failed { .. }) => {
            assert_eq!(e.exit_code(), 125);
            assert!(e.to_string().contains("meta.json"), "{e}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(!fx.paths.run_dir(&meta.id).exists());
}

#[test]
fn start_of_a_started_container_and_a_second_supervisor_are_refused() {
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(&["sleep", "1000"], false, false);
    let out = fx.spawn(&meta, true).unwrap();
    match start_created(&fx.paths, &meta.id) {
        Err(SupervisorError::Runtime { message, code, .. }) => {
            assert_eq!(code, 125);
            assert!(message.contains("already started"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match fx.spawn(&meta, true) {
        Err(SupervisorError::AlreadySupervised { .. }) => {}
        other => panic!("expected AlreadySupervised, got {other:?}"),
    }
    // The first supervisor is untouched.
    assert!(fx.paths.attach_socket(&meta.id).exists());
    assert!(alive(out.supervisor_pid));
    kill9(out.container_pid);
    fx.wait_exit(&meta.id, Duration::from_secs(20));
    match start_created(&fx.paths, &meta.id) {
        Err(SupervisorError::Attach(AttachError::NotRunning { .. })) => {}
        other => panic!("expected NotRunning, got {other:?}"),
    }
}

#[test]
fn a_slow_client_does_not_hold_up_the_container() {
    let fx = Fixture::new("keel-runtime");
    // 20 MB: far more than the client queue and socket buffers hold.
    let script = "awk 'BEGIN { p = sprintf(\"%91s\", \"\"); for (i = 0; i < 200000; i++) printf \"%08d%s\\n\", i, p }'";
    let meta = fx.container(&["sh", "-c", script], false, false);
    fx.spawn(&meta, false).unwrap();
    let mut c = RawClient::connect(&fx.paths, &meta.id);
    c.send(Frame::Hello {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    std::thread::sleep(Duration::from_millis(200));
    start_created(&fx.paths, &meta.id).unwrap();
    // The client never reads until the container is done.
    let rec = fx.wait_exit(&meta.id, Duration::from_secs(120));
    assert_eq!(rec.code, 0);
    let text = stream_text(&fx.log_entries(&meta.id), "stdout");
    assert_eq!(text.lines().count(), 200_000);
    // It was cut off: what it gets ends before the exit frame.
    let frames = c.until_exit();
    assert!(!matches!(frames.last(), Some(Frame::Exit(_))));
}

/// Blocks `sigs` in the calling thread and returns it, so a test can
/// direct them at an attach session before the session blocks them itself.
fn block_in_this_thread(sigs: &[nix::sys::signal::Signal]) -> libc::pthread_t {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in sigs {
        set.add(*s);
    }
    set.thread_block().unwrap();
    // SAFETY: no preconditions.
    unsafe { libc::pthread_self() }
}

#[test]
fn sig_proxy_forwards_sigterm_to_the_container() {
    use nix::sys::signal::Signal;
    let fx = Fixture::new("keel-runtime");
    let meta = fx.container(
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; while true; do sleep 0.05; done",
        ],
        false,
        false,
    );
    fx.spawn(&meta, true).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (out_w, err_w, cap) = capture();
    let paths = fx.paths.clone();
    let id = meta.id.clone();
    let h = std::thread::spawn(move || {
        tx.send(block_in_this_thread(&[Signal::SIGTERM])).unwrap();
        let stdin = null_stdin();
        let local = LocalIo {
            stdin: stdin.as_fd(),
            stdout: out_w.as_fd(),
            stderr: err_w.as_fd(),
        };
        attach_with(&paths, &id, &AttachOptions::default(), &local)
    });
    let thread = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // SAFETY: the thread is alive (it is in its attach session) and has
    // SIGTERM blocked.
    assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGTERM) }, 0);
    assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Exited(7));
    assert_eq!(cap.out.join().unwrap(), b"got-term\n");
    fx.wait_exit(&meta.id, Duration::from_secs(20));
}

#[test]
fn tty_client_uses_raw_mode_forwards_sigwinch_and_restores_the_terminal() {
    use nix::sys::signal::Signal;
    use nix::sys::termios::{tcgetattr, LocalFlags};
    use std::sync::{Arc, Mutex};
    let fx = Fixture::new("keel-runtime");
    let script = "ws() { while [ \"$(stty size)\" != \"$1\" ]; do sleep 0.05; done; }; ws '33 101'; echo one; ws '50 120'; echo two; read x; echo x=$x";
    let meta = fx.container(&["sh", "-c", script], true, true);
    fx.spawn(&meta, true).unwrap();

    let pty = nix::pty::openpty(None, None).unwrap();
    let size = |rows, cols| crate::io::Winsize { rows, cols };
    crate::io::set_winsize(pty.master.as_fd(), size(33, 101)).unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let master_reader = pty.master.try_clone().unwrap();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master_reader);
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut f, &mut buf) {
            if n == 0 {
                break;
            }
            seen2
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.lock().unwrap().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no {what:?} in {:?}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let (tx, rx) = std::sync::mpsc::channel();
    let slave = pty.slave.try_clone().unwrap();
    let paths = fx.paths.clone();
    let id = meta.id.clone();
    let h = std::thread::spawn(move || {
        tx.send(block_in_this_thread(&[Signal::SIGWINCH])).unwrap();
        let opts = AttachOptions {
            stdin: true,
            tty: true,
            ..AttachOptions::default()
        };
        let local = LocalIo {
            stdin: slave.as_fd(),
            stdout: slave.as_fd(),
            stderr: slave.as_fd(),
        };
        attach_with(&paths, &id, &opts, &local)
    });
    let thread = rx.recv().unwrap();
    // The initial size goes with the hello.
    wait_for("one");
    let raw = tcgetattr(pty.slave.as_fd()).unwrap();
    assert!(!raw.local_flags.contains(LocalFlags::ICANON), "not raw");
    crate::io::set_winsize(pty.master.as_fd(), size(50, 120)).unwrap();
    // SAFETY: the thread is in its attach session with SIGWINCH blocked.
    assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGWINCH) }, 0);
    wait_for("two");
    crate::io::write_all_fd(&pty.master, b"hi\r").unwrap();
    assert_eq!(h.join().unwrap().unwrap(), AttachEnd::Exited(0));
    wait_for("x=hi");
    let after = tcgetattr(pty.slave.as_fd()).unwrap();
    assert!(
        after.local_flags.contains(LocalFlags::ICANON),
        "not restored"
    );
    fx.wait_exit(&meta.id, Duration::from_secs(20));
}
