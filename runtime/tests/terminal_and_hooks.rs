//! Root integration tests: the pty master handed over `--console-socket`
//! (SCM_RIGHTS, as runc does), and the six OCI hooks in order.

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::Stdio;

use common::{assert_nothing_left, id, Bundle, Runtime};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

fn receive_fd(listener: &UnixListener) -> OwnedFd {
    let (stream, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            return unsafe { OwnedFd::from_raw_fd(fds[0]) };
        }
    }
    panic!("no fd received on the console socket");
}

#[test]
fn pty_master_is_sent_over_the_console_socket() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&[
        "sh",
        "-c",
        "[ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; stty size 2>&1",
    ]);
    b.edit(|v| {
        v["process"]["terminal"] = true.into();
        v["process"]["consoleSize"] = serde_json::json!({"height": 33, "width": 101});
    });
    let id = id("console");
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    rt.ok(&[
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    let master = receive_fd(&listener);
    rt.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // The master reads EIO once the container's side is closed.
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("stdio-is-a-tty"), "{text}");
    assert!(text.contains("33 101"), "consoleSize not applied: {text}");
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    b.edit(|v| v["process"]["terminal"] = true.into());
    let id = id("noconsole");
    let err = rt.fails(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("console"), "{err}");
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn all_six_hooks_run_in_order_with_the_state_on_stdin() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    let log = b.rootfs().join("hooks.log");
    let log_s = log.to_str().unwrap().to_string();
    let host = |name: &str| {
        serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("read -r state; case \"$state\" in *'\"id\"'*) echo {name} >> {log_s};; esac")]})
    };
    // createContainer runs in the container's mount namespace before
    // pivot_root (the host's paths still resolve); startContainer after it,
    // where the log is /hooks.log.
    let inside = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> /hooks.log")]});
    let before_pivot = |name: &str| serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} >> {log_s}")]});
    b.edit(|v| {
        v["root"]["readonly"] = false.into();
        v["hooks"] = serde_json::json!({
            "prestart": [host("prestart")],
            "createRuntime": [host("createRuntime")],
            "createContainer": [before_pivot("createContainer")],
            "startContainer": [inside("startContainer")],
            "poststart": [host("poststart")],
            "poststop": [host("poststop")],
        });
    });
    let id = id("hooks");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    let got = std::fs::read_to_string(&log).unwrap();
    let got: Vec<&str> = got.lines().collect();
    assert_eq!(
        got,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ]
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn foreground_run_with_a_terminal_proxies_its_own_pty() {
    // `script` gives keel-runtime a real terminal, as a person's shell would.
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sh"]);
    b.edit(|v| v["process"]["terminal"] = true.into());
    let id = id("fg-tty");
    let cmd = format!(
        "stty cols 120 rows 40; {} --root {} run --bundle {} {id}",
        common::BIN,
        rt.root.path().display(),
        b.path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (bsdutils)");
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write;
    std::thread::sleep(std::time::Duration::from_millis(500));
    stdin
        .write_all(b"echo $((6*7)); stty size; exit 5\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(text.contains("42\r\n"), "{text}");
    assert!(text.contains("40 120"), "window size not passed on: {text}");
    assert_nothing_left(&rt, &id, &b);
}

/// While create is still under way (here: held in a prestart hook) the
/// container is "creating", as runc says, not "stopped": a client that
/// polls for "running" must not take it for a container that already ran.
#[test]
fn state_during_create_is_creating() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    let gate = b.path().join("gate");
    b.edit(|v| {
        v["hooks"] = serde_json::json!({
            "prestart": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("i=0; while [ ! -e {} ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done", gate.display())]
            }]
        });
    });
    let id = id("creating");
    let mut create = rt
        .cmd()
        .args(["create", "--bundle", b.path().to_str().unwrap(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = None;
    for _ in 0..500 {
        let out = rt.run(&["state", &id]);
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            seen = Some(v["status"].as_str().unwrap().to_string());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::fs::write(&gate, "").unwrap();
    assert!(create.wait().unwrap().success());
    assert_eq!(seen.as_deref(), Some("creating"));
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["delete", "--force", &id]);
    assert_nothing_left(&rt, &id, &b);
}
