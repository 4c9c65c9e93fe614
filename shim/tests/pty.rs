//! `run -it` driven from a real terminal: a tmux session on a private
//! server runs keel-shim, the test types into it and reads its screen.
//! Needs tmux (apt-get install -y tmux) and root.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Env, Rt, BUSYBOX};

const LONG: Duration = Duration::from_secs(30);

per_runtime!(pty_session_echo_resize_detach_and_attach);

/// A tmux server of our own (`-L`), with one session; killed on drop.
/// Commands run as `CMD; echo $? > STATUS`: tmux sometimes leaves a pane's
/// exited process unreaped (its `pane_dead_status` then stays empty, seen
/// here after a detach), so the exit code is read from that file instead.
struct Tmux {
    socket: String,
    status: std::path::PathBuf,
}

impl Tmux {
    fn new(cols: u16, rows: u16, command: &str) -> Tmux {
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = format!(
            "keel-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let status = std::env::temp_dir().join(format!("{socket}.status"));
        let _ = std::fs::remove_file(&status);
        let t = Tmux { socket, status };
        let command = t.wrap(command);
        let o = t.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
            &command,
        ]);
        assert!(o.status.success(), "tmux: {}", common::text(&o));
        // The pane stays after keel-shim exits, so its status can be read.
        t.ok(&["set-option", "-t", "main", "remain-on-exit", "on"]);
        t
    }

    /// `command` as tmux's shell runs it, recording its exit code.
    fn wrap(&self, command: &str) -> String {
        format!("{command}; echo $? > '{}'", self.status.display())
    }

    /// Runs `command` in the pane again (after the last one has ended).
    fn respawn(&self, command: &str) {
        let _ = std::fs::remove_file(&self.status);
        self.ok(&["respawn-pane", "-k", "-t", "main", &self.wrap(command)]);
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux is installed (apt-get install -y tmux)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.status.success(), "tmux {args:?}: {}", common::text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.ok(&["capture-pane", "-p", "-J", "-S", "-", "-t", "main"])
    }

    fn wait_for(&self, want: &str, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.screen().contains(want) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    fn expect(&self, want: &str) {
        assert!(
            self.wait_for(want, LONG),
            "no {want:?} on the screen:\n{}",
            self.screen()
        );
    }

    fn type_line(&self, text: &str) {
        self.ok(&["send-keys", "-t", "main", "-l", text]);
        self.ok(&["send-keys", "-t", "main", "Enter"]);
    }

    /// The exit code of the pane's command, once it has ended.
    fn wait_pane_dead(&self) -> String {
        let start = Instant::now();
        loop {
            if let Ok(code) = std::fs::read_to_string(&self.status) {
                if code.ends_with('\n') {
                    return code.trim().to_string();
                }
            }
            assert!(
                start.elapsed() < LONG,
                "keel-shim still runs in the pane:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        let _ = std::fs::remove_file(&self.status);
    }
}

fn pty_session_echo_resize_detach_and_attach(rt: Rt) {
    let env = Env::new(rt);
    let name = "keel-test-pty";
    let tmux = Tmux::new(
        100,
        30,
        &env.shell_cmd(&["run", "-it", "--name", name, BUSYBOX, "sh"]),
    );
    tmux.expect("/ # ");
    // What we type is echoed by the container's terminal, then run.
    tmux.type_line("echo typed-$((6*7))");
    tmux.expect("echo typed-$((6*7))");
    tmux.expect("typed-42");
    tmux.type_line("stty size; tty");
    tmux.expect("30 100");
    tmux.expect("/dev/pts/");

    // A resize of the window reaches the container's pty.
    tmux.ok(&["resize-window", "-t", "main", "-x", "120", "-y", "40"]);
    let start = Instant::now();
    loop {
        tmux.type_line("stty size");
        if tmux.wait_for("40 120", Duration::from_secs(2)) {
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "resize not seen:\n{}",
            tmux.screen()
        );
    }

    // ctrl-p ctrl-q: the CLI ends, the container runs on.
    tmux.ok(&["send-keys", "-t", "main", "C-p", "C-q"]);
    assert_eq!(tmux.wait_pane_dead(), "0", "{}", tmux.screen());
    assert_eq!(env.state(name), "running");
    tmux.type_line("echo lost");

    // attach brings it back, at the terminal's size.
    tmux.respawn(&env.shell_cmd(&["attach", name]));
    tmux.ok(&["clear-history", "-t", "main"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux.type_line("echo back-$((40+2)); stty size");
    tmux.expect("back-42");
    tmux.expect("40 120");
    tmux.type_line("exit 3");
    assert_eq!(tmux.wait_pane_dead(), "3", "{}", tmux.screen());
    env.wait_state(name, "exited", LONG);
    assert_eq!(env.inspect(name)["State"]["ExitCode"], 3);
    assert_eq!(env.inspect(name)["Config"]["Tty"], true);
    // The log has the session, as the terminal showed it.
    let (log, _) = env.logs(&[name]);
    assert!(log.contains("typed-42"), "{log}");
    assert!(log.contains("back-42"), "{log}");
    drop(tmux);
}
