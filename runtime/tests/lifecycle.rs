//! Root integration tests: the runc lifecycle through the real binary, with
//! real namespaces and cgroups, each ending with a check that nothing is
//! left behind.

mod common;

use std::process::Stdio;

use common::{assert_nothing_left, id, Bundle, Runtime};

#[test]
fn create_start_kill_delete() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("lifecycle");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let st = rt.state(&id);
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0);
    assert_eq!(st["id"], id.as_str());
    assert_eq!(
        st["bundle"].as_str().unwrap(),
        std::fs::canonicalize(b.path()).unwrap().to_str().unwrap()
    );
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    let list = rt.ok(&["list"]);
    assert!(list.contains(&id) && list.contains("running"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(json[0]["id"], id.as_str());

    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![st["pid"].as_i64().unwrap() as i32]);

    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    assert_eq!(rt.state(&id)["pid"], 0);
    rt.ok(&["delete", &id]);
    assert!(rt.fails(&["state", &id]).contains("does not exist"));
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn run_attached_returns_the_exit_status_and_output() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh", "-c", "echo hello from $(hostname); exit 3"]);
    let id = id("run-attached");
    let out = rt.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from keel\n");
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn run_attached_reports_death_by_signal_as_128_plus_n() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("run-signal");
    let mut child = rt
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // The init of a pid namespace cannot be SIGKILLed from inside it, so
    // the signal comes from outside, as `docker kill` would send it.
    for _ in 0..500 {
        if rt.ids().contains(&id) && rt.status(&id) == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rt.ok(&["kill", &id, "KILL"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn run_forwards_signals_to_the_container() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; while :; do sleep 0.05; done",
    ]);
    let id = id("run-fwd");
    let mut child = rt
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if rt.ids().contains(&id) && rt.status(&id) == "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn run_forwards_stdin() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh", "-c", "read line; echo got:$line"]);
    let id = id("run-stdin");
    let mut child = rt
        .cmd()
        .args(["run", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"ping\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got:ping\n");
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn run_detached_then_delete_force() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("run-detached");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(rt.status(&id), "running");
    let err = rt.fails(&["delete", &id]);
    assert!(
        err.contains("cannot delete container") && err.contains("running"),
        "{err}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn exec_runs_in_the_container_with_overrides() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("exec");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let out = rt.run(&["exec", &id, "hostname"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "keel\n");

    let out = rt.run(&[
        "exec",
        "-e",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "--user",
        "65534:65534",
        &id,
        "sh",
        "-c",
        "echo $FOO $(pwd) $(id -u):$(id -g); exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bar /tmp 65534:65534\n"
    );

    // A detached exec returns at once and writes its pid file.
    let pidfile = b.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "100",
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "-f", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");

    rt.ok(&["kill", "--all", &id, "9"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn pause_resume_update_events() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("pause");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    assert!(rt.fails(&["pause", &id]).contains("pause"));
    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["update", "--pids-limit", "20", "--memory", "64m", &id]);
    let ev = rt.ok(&["events", "--stats", &id]);
    let ev: serde_json::Value = serde_json::from_str(ev.trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert_eq!(ev["data"]["pids"]["limit"], 20);
    rt.ok(&["delete", "-f", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn kill_accepts_runcs_signal_forms() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "trap 'exit 42' USR1; trap 'exit 43' TERM; while :; do sleep 0.05; done",
    ]);
    for (n, sig, code) in [
        (1, "USR1", 42),
        (2, "SIGUSR1", 42),
        (3, "10", 42),
        (4, "sigterm", 43),
    ] {
        let id = id(&format!("killsig{n}"));
        rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
        // Let the shell install its traps before signalling.
        std::thread::sleep(std::time::Duration::from_millis(200));
        rt.ok(&["kill", &id, sig]);
        rt.wait_status(&id, "stopped");
        rt.ok(&["delete", &id]);
        let _ = code;
        assert_nothing_left(&rt, &id, &b);
    }
}

#[test]
fn json_log_carries_the_error_for_orchestrators() {
    let rt = Runtime::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = rt
        .cmd()
        .args([
            "--log",
            log.path().to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "keel-test-nope",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(log.path()).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(last["msg"].as_str().unwrap().contains("does not exist"));
    assert!(last["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn spec_and_features_and_version() {
    let rt = Runtime::new();
    let d = tempfile::tempdir().unwrap();
    rt.ok(&["spec", "--bundle", d.path().to_str().unwrap()]);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"][0], "sh");
    assert!(rt
        .fails(&["spec", "--bundle", d.path().to_str().unwrap()])
        .contains("exists"));
    let f: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(rt.ok(&["--version"]).starts_with("keel-runtime version "));
}

/// A stopped container whose cgroup still holds a process (no pid
/// namespace, so its init's death did not end its child): the quick delete
/// cannot remove that cgroup and leaves it to libcontainer's, which kills
/// the process. Either way nothing is left.
#[test]
fn delete_of_a_stopped_container_kills_what_its_cgroup_still_holds() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh", "-c", "sleep 300 & exit 0"]);
    b.edit(|cfg| {
        let ns = cfg["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    let id = id("stopped-busy");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    // The shell forked the sleep before it exited.
    let left = common::processes_in_cgroup(&id);
    assert!(
        !left.is_empty(),
        "the sleep should still be in the container's cgroup"
    );
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &b);
}

/// .cargo/config.toml links glibc in: a runtime started once per container
/// operation should not pay for the dynamic loader each time. An ELF with
/// a PT_INTERP program header would be loaded through ld.so.
#[test]
fn the_binary_needs_no_dynamic_loader() {
    let elf = std::fs::read(common::BIN).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) == PT_INTERP
    });
    assert!(!interp, "{} asks for a dynamic loader", common::BIN);
}
