//! RUN steps against runc and keel-runtime (when built), as root, on a
//! busybox rootfs in a temp dir. Containers live under a private `--root`.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keel_runtime_client::Runtime;

use super::*;

fn runtimes() -> Vec<PathBuf> {
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        eprintln!("note: not root, skipping RUN step tests");
        return Vec::new();
    }
    let mut found = Vec::new();
    match ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
        .iter()
        .find(|p| Path::new(p).is_file())
    {
        Some(p) => found.push(PathBuf::from(p)),
        None => eprintln!("note: runc not installed (apt-get install -y runc), skipping it"),
    }
    match crate::testing::workspace_binary("keel-runtime") {
        Some(p) => found.push(p),
        None => eprintln!("note: keel-runtime not built beside the tests, skipping it"),
    }
    found
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn new_id() -> String {
    format!(
        "keel-test-exec-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A runtime with a private root, a busybox rootfs and a bundle dir. Drop
/// force-deletes any container it handed an id for; the temp dir goes too.
struct Sandbox {
    dir: tempfile::TempDir,
    rt: Runtime,
    ids: Vec<String>,
}

impl Sandbox {
    fn new(binary: &Path) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("state")).unwrap();
        let rt = Runtime::new(binary).root(dir.path().join("state"));
        let sb = Sandbox {
            dir,
            rt,
            ids: Vec::new(),
        };
        busybox_rootfs(&sb.rootfs());
        sb
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn step(&mut self, script: &str) -> RunSpec {
        let id = new_id();
        self.ids.push(id.clone());
        RunSpec {
            args: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            network: Network::None,
            hostname: "keel-test".into(),
            id,
        }
    }

    /// Runs `step`, returning its result and everything it printed.
    fn run(&self, step: &RunSpec) -> (Result<i32, ExecError>, String) {
        self.run_on(&self.rootfs(), step)
    }

    fn run_on(&self, rootfs: &Path, step: &RunSpec) -> (Result<i32, ExecError>, String) {
        let mut out = Vec::new();
        let r = run_step_with(
            &self.rt,
            rootfs,
            &self.work(),
            step,
            &CancelToken::new(),
            &mut |b| out.extend_from_slice(b),
        );
        (r, String::from_utf8_lossy(&out).into_owned())
    }

    fn assert_nothing_left(&self, what: &Path) {
        assert!(
            self.rt.list().unwrap().is_empty(),
            "{}: containers left",
            what.display()
        );
        let left: Vec<_> = fs::read_dir(self.dir.path().join("state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "{}: left in --root: {left:?}",
            what.display()
        );
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.rt.delete(id, true);
        }
    }
}

fn busybox_rootfs(root: &Path) {
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in ["sh", "echo", "id", "ls", "cat", "pwd", "sleep", "touch"] {
        symlink("busybox", bin.join(applet)).unwrap();
    }
}

#[test]
fn exit_code_and_output() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let step = sb.step("echo hi; exit 3");
        let (r, out) = sb.run(&step);
        assert_eq!(r.unwrap(), 3, "{}", binary.display());
        assert_eq!(out, "hi\n");
        sb.assert_nothing_left(&binary);
    }
}

#[test]
fn stdout_and_stderr_are_merged_and_stdin_is_empty() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let step = sb.step("echo out; echo err >&2; cat; echo done");
        let (r, out) = sb.run(&step);
        assert_eq!(r.unwrap(), 0, "{}", binary.display());
        let mut lines: Vec<_> = out.lines().collect();
        lines.sort();
        assert_eq!(lines, ["done", "err", "out"]);
    }
}

#[test]
fn written_files_land_in_the_rootfs() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let step = sb.step("echo data > /made.txt");
        assert_eq!(sb.run(&step).0.unwrap(), 0, "{}", binary.display());
        assert_eq!(
            fs::read_to_string(sb.rootfs().join("made.txt")).unwrap(),
            "data\n"
        );
    }
}

#[test]
fn missing_cwd_is_created() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let mut step = sb.step("pwd");
        step.cwd = "/srv/app".into();
        let (r, out) = sb.run(&step);
        assert_eq!(r.unwrap(), 0, "{}", binary.display());
        assert_eq!(out, "/srv/app\n");
        assert!(sb.rootfs().join("srv/app").is_dir());
    }
}

#[test]
fn env_uid_and_groups() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let mut step = sb.step("echo \"$GREETING $PATH\"; id -u; id -g; id -G");
        step.env = vec!["GREETING=hello".into()];
        step.uid = 1000;
        step.gid = 1001;
        step.additional_gids = vec![1002];
        let (r, out) = sb.run(&step);
        assert_eq!(r.unwrap(), 0, "{}: {out}", binary.display());
        let lines: Vec<_> = out.lines().collect();
        assert_eq!(
            lines[0],
            format!("hello {}", &crate::defaults::DEFAULT_PATH[5..])
        );
        assert_eq!(lines[1], "1000");
        assert_eq!(lines[2], "1001");
        assert_eq!(lines[3], "1001 1002");
    }
}

#[test]
fn no_network_sees_only_lo() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let step = sb.step("ls /sys/class/net");
        let (r, out) = sb.run(&step);
        assert_eq!(r.unwrap(), 0, "{}", binary.display());
        assert_eq!(out, "lo\n");
    }
}

#[test]
fn host_network_sees_host_files_which_do_not_stay() {
    let host_resolv = fs::read_to_string("/etc/resolv.conf").ok();
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let mut step = sb.step("cat /etc/resolv.conf; ls /sys/class/net");
        step.network = Network::Host;
        let (r, out) = sb.run(&step);
        assert_eq!(r.unwrap(), 0, "{}: {out}", binary.display());
        if let Some(h) = &host_resolv {
            assert!(out.starts_with(h.as_str()), "{out}");
        }
        assert!(out.lines().count() > 1, "host interfaces expected: {out}");
        assert!(!sb.rootfs().join("etc/resolv.conf").exists());
        assert!(!sb.rootfs().join("etc/hosts").exists());
        sb.assert_nothing_left(&binary);
    }
}

/// An overlay mounted for the test, unmounted on drop.
struct Overlay(PathBuf);

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn host_network_leaves_no_mount_points_in_the_upper_dir() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let base = sb.dir.path().to_path_buf();
        let (upper, ovl_work, merged) = (base.join("upper"), base.join("ovl"), base.join("merged"));
        for d in [&upper, &ovl_work, &merged] {
            fs::create_dir(d).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            sb.rootfs().display(),
            upper.display(),
            ovl_work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap();
        let _overlay = Overlay(merged.clone());

        let mut step = sb.step("cat /etc/hosts >/dev/null && touch /new");
        step.network = Network::Host;
        let (r, out) = sb.run_on(&merged, &step);
        assert_eq!(r.unwrap(), 0, "{}: {out}", binary.display());
        assert!(upper.join("new").is_file());
        assert!(
            !upper.join("etc/hosts").exists(),
            "mount point left in the layer"
        );
        assert!(!upper.join("etc/resolv.conf").exists());
        sb.assert_nothing_left(&binary);
    }
}

#[test]
fn cancel_kills_the_container() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let step = sb.step("echo ready; sleep 1000");
        let token = CancelToken::new();
        let started = Instant::now();
        let r = run_step_with(&sb.rt, &sb.rootfs(), &sb.work(), &step, &token, &mut |b| {
            if b.starts_with(b"ready") {
                token.cancel();
            }
        });
        assert!(
            matches!(r, Err(ExecError::Cancelled { ref id, .. }) if *id == step.id),
            "{}: {r:?}",
            binary.display()
        );
        assert!(started.elapsed() < Duration::from_secs(20));
        sb.assert_nothing_left(&binary);
    }
}

#[test]
fn runtime_failure_names_the_step_and_cleans_up() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let mut step = sb.step("");
        step.args = vec!["/no/such/program".into()];
        let (r, _) = sb.run(&step);
        match r {
            Err(e @ ExecError::Runtime { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains(&step.id) && text.contains("/no/such/program"),
                    "{text}"
                );
            }
            other => panic!(
                "{}: expected a runtime error, got {other:?}",
                binary.display()
            ),
        }
        sb.assert_nothing_left(&binary);
    }
}

#[test]
fn invalid_steps_are_refused_before_running() {
    let sb_dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new("/nonexistent/runtime");
    let mut step = RunSpec {
        args: vec!["true".into()],
        env: vec!["NOEQUALS".into()],
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        network: Network::None,
        hostname: String::new(),
        id: "keel-test-invalid".into(),
    };
    let run = |s: &RunSpec| run_step(&rt, sb_dir.path(), sb_dir.path(), s, &mut |_| {});
    assert!(matches!(
        run(&step),
        Err(ExecError::Invalid { field: "env", .. })
    ));
    step.env.clear();
    step.cwd = "relative".into();
    assert!(matches!(
        run(&step),
        Err(ExecError::Invalid { field: "cwd", .. })
    ));
    step.cwd = "/".into();
    step.args.clear();
    assert!(matches!(
        run(&step),
        Err(ExecError::Invalid { field: "args", .. })
    ));
}

#[test]
fn killed_by_a_signal_is_128_plus_n() {
    for binary in runtimes() {
        let mut sb = Sandbox::new(&binary);
        let step = sb.step("echo ready; sleep 1000");
        let rt = sb.rt.clone();
        let mut sent = false;
        let r = run_step_with(
            &sb.rt,
            &sb.rootfs(),
            &sb.work(),
            &step,
            &CancelToken::new(),
            &mut |b| {
                if !sent && b.starts_with(b"ready") {
                    // The runtime may not have saved the container as
                    // running yet when its first output arrives.
                    for _ in 0..50 {
                        if rt.kill(&step.id, "KILL", false).is_ok() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    sent = true;
                }
            },
        );
        match r {
            Ok(code) => assert_eq!(code, 128 + 9, "{}", binary.display()),
            Err(e) => panic!("{}: {e}", binary.display()),
        }
        sb.assert_nothing_left(&binary);
    }
}
