//! Every verb and mode of keel-shim over the busybox images, with
//! keel-runtime and with runc. Root only.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{read_until, text, wait_child, Env, Rt, BBAPP, BUSYBOX};

const LONG: Duration = Duration::from_secs(30);

per_runtime!(
    run_attached_streams_and_exit_codes,
    run_attached_sigkill_is_137,
    run_detached_prints_the_id_at_once,
    create_then_start,
    ps_lists_running_all_quiet_and_json,
    logs_tail_timestamps_since,
    logs_follow_until_exit,
    attach_reconnects_to_a_running_container,
    stop_sends_the_images_stop_signal,
    stop_kills_after_the_timeout,
    kill_sends_the_given_signal,
    restart_runs_the_container_again,
    rm_refuses_running_and_rm_f_forces,
    exec_exit_code_env_workdir_user,
    wait_prints_the_exit_code,
    inspect_has_dockers_shape,
    cp_both_directions,
    commit_makes_an_image_with_the_containers_file,
    env_env_file_volumes_workdir_user_entrypoint,
    rm_flag_removes_the_container_and_frees_its_name,
    addressed_by_name_full_id_and_unique_prefix,
);

fn run_attached_streams_and_exit_codes(rt: Rt) {
    let env = Env::new(rt);
    let o = env.code(
        &[
            "run",
            "--rm",
            BUSYBOX,
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        3,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n", "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n", "{}", text(&o));
    env.code(&["run", "--rm", BUSYBOX, "true"], 0);
    // Without --rm too: the container stays, exited, with the code.
    env.code(
        &[
            "run",
            "--name",
            "keel-test-exit3",
            BUSYBOX,
            "sh",
            "-c",
            "exit 3",
        ],
        3,
    );
    assert_eq!(env.state("keel-test-exit3"), "exited");
    assert_eq!(env.inspect("keel-test-exit3")["State"]["ExitCode"], 3);
    env.ok(&["rm", "keel-test-exit3"]);

    let o = env.code(
        &[
            "run",
            "--name",
            "keel-test-127",
            BUSYBOX,
            "keel-no-such-cmd",
        ],
        127,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("keel-no-such-cmd"),
        "{}",
        text(&o)
    );
    let o = env.code(
        &["run", "--name", "keel-test-126", BUSYBOX, "/etc/passwd"],
        126,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/etc/passwd"),
        "{}",
        text(&o)
    );
    // A command that never ran leaves no container behind (as docker's
    // `run` does not either when the create fails).
    env.assert_clean(Duration::from_secs(10));
}

fn run_attached_sigkill_is_137(rt: Rt) {
    let env = Env::new(rt);
    let child = env.spawn(
        &[
            "run",
            "--name",
            "keel-test-sigkill",
            BUSYBOX,
            "sleep",
            "100",
        ],
        Stdio::null(),
    );
    env.wait_state("keel-test-sigkill", "running", LONG);
    assert_eq!(
        env.ok(&["kill", "keel-test-sigkill"]),
        "keel-test-sigkill\n"
    );
    let o = wait_child(child, LONG);
    assert_eq!(o.status.code(), Some(137), "{}", text(&o));
    let s = env.inspect("keel-test-sigkill")["State"].clone();
    assert_eq!(s["Status"], "exited");
    assert_eq!(s["ExitCode"], 137);
}

fn run_detached_prints_the_id_at_once(rt: Rt) {
    let env = Env::new(rt);
    let start = Instant::now();
    let out = env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-bg",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    // At once: well before the container's 100 seconds.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let id = out.trim();
    assert_eq!(id.len(), 64, "{out:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{out:?}");
    assert_eq!(env.state(id), "running");
    assert_eq!(env.ok(&["ps", "-q"]), format!("{}\n", &id[..12]));
}

fn create_then_start(rt: Rt) {
    let env = Env::new(rt);
    let out = env.ok(&[
        "create",
        "--name",
        "keel-test-created",
        BUSYBOX,
        "sh",
        "-c",
        "echo started; exit 2",
    ]);
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "{out:?}");
    assert_eq!(env.state("keel-test-created"), "created");
    assert_eq!(env.ok(&["ps", "-q"]), "");
    assert!(env.ok(&["ps", "-a"]).contains("Created"));
    // Nothing ran yet: no output.
    assert_eq!(env.logs(&["keel-test-created"]).0, "");

    assert_eq!(
        env.ok(&["start", "keel-test-created"]),
        "keel-test-created\n"
    );
    assert_eq!(env.ok(&["wait", "keel-test-created"]), "2\n");
    assert_eq!(env.logs(&["keel-test-created"]).0, "started\n");

    // start -a of the exited container: runs again, attached, its code ours.
    let o = env.code(&["start", "-a", "keel-test-created"], 2);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "started\n",
        "{}",
        text(&o)
    );
    assert_eq!(env.logs(&["keel-test-created"]).0, "started\nstarted\n");

    // start -a of a never-started container.
    env.ok(&[
        "create",
        "--name",
        "keel-test-fresh",
        BUSYBOX,
        "echo",
        "fresh",
    ]);
    let o = env.code(&["start", "-a", "keel-test-fresh"], 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "fresh\n",
        "{}",
        text(&o)
    );
    assert_eq!(env.id_of("keel-test-created"), id);
}

fn ps_lists_running_all_quiet_and_json(rt: Rt) {
    let env = Env::new(rt);
    let up = env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-up",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    let up = up.trim();
    env.code(
        &[
            "run",
            "--name",
            "keel-test-done",
            BUSYBOX,
            "sh",
            "-c",
            "exit 4",
        ],
        4,
    );
    let done = env.id_of("keel-test-done");

    let table = env.ok(&["ps"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("CONTAINER ID"), "{table}");
    assert!(lines[1].starts_with(&up[..12]), "{table}");
    assert!(lines[1].contains("Up"), "{table}");
    assert!(lines[1].ends_with("keel-test-up"), "{table}");

    let all = env.ok(&["ps", "-a"]);
    assert_eq!(all.lines().count(), 3, "{all}");
    let done_row = all.lines().find(|l| l.contains("keel-test-done")).unwrap();
    assert!(done_row.contains("Exited (4)"), "{all}");
    assert!(
        done_row.contains(BUSYBOX.split(':').next().unwrap()),
        "{all}"
    );

    assert_eq!(env.ok(&["ps", "-q"]), format!("{}\n", &up[..12]));
    let mut quiet: Vec<String> = env
        .ok(&["ps", "-a", "-q"])
        .lines()
        .map(String::from)
        .collect();
    quiet.sort();
    let mut want = vec![up[..12].to_string(), done[..12].to_string()];
    want.sort();
    assert_eq!(quiet, want);

    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "-a", "--format", "json"])).unwrap();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 2, "{json}");
    let by_name = |n: &str| {
        list.iter()
            .find(|c| c["Name"] == format!("/{n}"))
            .unwrap_or_else(|| panic!("{n} not in {json}"))
    };
    assert_eq!(by_name("keel-test-up")["State"]["Status"], "running");
    assert_eq!(by_name("keel-test-up")["Id"], up);
    assert_eq!(by_name("keel-test-done")["State"]["Status"], "exited");
    assert_eq!(by_name("keel-test-done")["State"]["ExitCode"], 4);
    let running: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "--format", "json"])).unwrap();
    assert_eq!(running.as_array().unwrap().len(), 1, "{running}");
}

fn logs_tail_timestamps_since(rt: Rt) {
    let env = Env::new(rt);
    env.code(
        &[
            "run",
            "--name",
            "keel-test-logs",
            BUSYBOX,
            "sh",
            "-c",
            "echo one; echo two >&2; sleep 2; echo three",
        ],
        0,
    );
    let (out, err) = env.logs(&["keel-test-logs"]);
    assert_eq!((out.as_str(), err.as_str()), ("one\nthree\n", "two\n"));
    // --tail counts the lines of both streams together.
    assert_eq!(
        env.logs(&["--tail", "1", "keel-test-logs"]),
        ("three\n".into(), "".into())
    );
    assert_eq!(
        env.logs(&["-n", "2", "keel-test-logs"]),
        ("three\n".into(), "two\n".into())
    );
    assert_eq!(
        env.logs(&["--tail", "0", "keel-test-logs"]),
        ("".into(), "".into())
    );
    assert_eq!(
        env.logs(&["--tail", "all", "keel-test-logs"]).0,
        "one\nthree\n"
    );

    let (out, _) = env.logs(&["-t", "keel-test-logs"]);
    let mut times = Vec::new();
    for (line, want) in out.lines().zip(["one", "three"]) {
        let (ts, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, want, "{out}");
        times
            .push(chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}")));
    }
    assert_eq!(times.len(), 2, "{out}");
    assert!(
        times[1] - times[0] >= chrono::Duration::milliseconds(1500),
        "{out}"
    );

    // Between the two: only the later line.
    let mid = times[0] + chrono::Duration::seconds(1);
    let mid = mid.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    assert_eq!(
        env.logs(&["--since", &mid, "keel-test-logs"]),
        ("three\n".into(), "".into())
    );
    assert_eq!(
        env.logs(&["--until", &mid, "keel-test-logs"]),
        ("one\n".into(), "two\n".into())
    );
    assert_eq!(
        env.logs(&["--since", "1h", "keel-test-logs"]).0,
        "one\nthree\n"
    );
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        env.logs(&["--since", &future, "keel-test-logs"]),
        ("".into(), "".into())
    );
    let o = env.code(&["logs", "--tail", "x", "keel-test-logs"], 125);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--tail"),
        "{}",
        text(&o)
    );
}

fn logs_follow_until_exit(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-follow",
        BUSYBOX,
        "sh",
        "-c",
        "echo first; sleep 2; echo second; sleep 1; exit 0",
    ]);
    let start = Instant::now();
    let mut child = env.spawn(&["logs", "-f", "keel-test-follow"], Stdio::null());
    let mut out = child.stdout.take().unwrap();
    let got = read_until(&mut out, "first\n", LONG);
    assert_eq!(got, "first\n");
    let got = read_until(&mut out, "second\n", LONG);
    assert_eq!(got, "second\n");
    // Still following: the container still runs (a moment more).
    let o = wait_child(child, LONG);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "",
        "nothing after second"
    );
    assert!(start.elapsed() >= Duration::from_secs(2));
    assert_eq!(env.state("keel-test-follow"), "exited");
    // -f of an exited container prints all and ends.
    let o = wait_child(
        env.spawn(&["logs", "-f", "keel-test-follow"], Stdio::null()),
        LONG,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "first\nsecond\n");
}

fn attach_reconnects_to_a_running_container(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "-i",
        "--name",
        "keel-test-attach",
        BUSYBOX,
        "sh",
    ]);
    let mut a = env.spawn(&["attach", "keel-test-attach"], Stdio::piped());
    let mut stdin = a.stdin.take().unwrap();
    let mut out = a.stdout.take().unwrap();
    stdin.write_all(b"echo hello-one\n").unwrap();
    read_until(&mut out, "hello-one\n", LONG);
    // ctrl-p ctrl-q: detach, the container keeps running.
    stdin.write_all(b"\x10\x11").unwrap();
    let o = wait_child(a, LONG);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(env.state("keel-test-attach"), "running");

    let mut a = env.spawn(&["attach", "keel-test-attach"], Stdio::piped());
    let mut stdin = a.stdin.take().unwrap();
    let mut out = a.stdout.take().unwrap();
    stdin.write_all(b"echo hello-two\n").unwrap();
    read_until(&mut out, "hello-two\n", LONG);
    stdin.write_all(b"exit 7\n").unwrap();
    let o = wait_child(a, LONG);
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_eq!(env.state("keel-test-attach"), "exited");
    assert_eq!(env.logs(&["keel-test-attach"]).0, "hello-one\nhello-two\n");
    let o = env.code(&["attach", "keel-test-attach"], 125);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stopped container"),
        "{}",
        text(&o)
    );
}

/// A shell as pid 1 that reports and exits on `sig`, or ignores it with an
/// empty action. Its `ready` line tells the trap is set.
fn trapping(sig: &str, action: &str) -> String {
    format!("trap '{action}' {sig}; echo ready; while :; do sleep 0.1; done")
}

fn wait_log(env: &Env, name: &str, want: &str) {
    let start = Instant::now();
    while !env.logs(&[name]).0.contains(want) {
        assert!(start.elapsed() < LONG, "no {want:?} in the log of {name}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_sends_the_images_stop_signal(rt: Rt) {
    let env = Env::new(rt);
    // The fixture's image says STOPSIGNAL SIGTERM.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-stop",
        "--entrypoint",
        "sh",
        BBAPP,
        "-c",
        &trapping("TERM", "echo got-term; exit 0"),
    ]);
    wait_log(&env, "keel-test-stop", "ready");
    assert_eq!(env.ok(&["stop", "keel-test-stop"]), "keel-test-stop\n");
    // Exit code 0, not 137: it ended on the TERM, before any KILL.
    let s = env.inspect("keel-test-stop")["State"].clone();
    assert_eq!(
        (s["Status"].as_str(), s["ExitCode"].as_i64()),
        (Some("exited"), Some(0))
    );
    assert_eq!(env.logs(&["keel-test-stop"]).0, "ready\ngot-term\n");
    // Stopping a stopped container is fine.
    env.ok(&["stop", "keel-test-stop"]);
}

fn stop_kills_after_the_timeout(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-stubborn",
        "--network",
        "none",
        BBAPP,
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-deaf",
        BUSYBOX,
        "sh",
        "-c",
        &trapping("TERM", ""),
    ]);
    wait_log(&env, "keel-test-deaf", "ready");
    let start = Instant::now();
    env.ok(&["stop", "-t", "1", "keel-test-deaf"]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "{took:?}"
    );
    assert_eq!(env.inspect("keel-test-deaf")["State"]["ExitCode"], 137);
    // The fixture's httpd as pid 1 has no TERM handler either.
    env.wait_state("keel-test-stubborn", "running", LONG);
    env.ok(&["stop", "--time", "1", "keel-test-stubborn"]);
    assert_eq!(env.state("keel-test-stubborn"), "exited");
}

fn kill_sends_the_given_signal(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-kill",
        BUSYBOX,
        "sh",
        "-c",
        &trapping("USR1", "echo got-usr1"),
    ]);
    wait_log(&env, "keel-test-kill", "ready");
    assert_eq!(
        env.ok(&["kill", "-s", "USR1", "keel-test-kill"]),
        "keel-test-kill\n"
    );
    wait_log(&env, "keel-test-kill", "got-usr1");
    assert_eq!(env.state("keel-test-kill"), "running");
    env.ok(&["kill", "--signal", "SIGUSR1", "keel-test-kill"]);
    let start = Instant::now();
    while env.logs(&["keel-test-kill"]).0.matches("got-usr1").count() < 2 {
        assert!(start.elapsed() < LONG, "second USR1 not seen");
        std::thread::sleep(Duration::from_millis(50));
    }
    env.ok(&["kill", "-s", "9", "keel-test-kill"]);
    env.wait_state("keel-test-kill", "exited", LONG);
    assert_eq!(env.inspect("keel-test-kill")["State"]["ExitCode"], 137);
    let o = env.code(&["kill", "keel-test-kill"], 125);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{}",
        text(&o)
    );
}

fn restart_runs_the_container_again(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-restart",
        BUSYBOX,
        "sh",
        "-c",
        &trapping("TERM", "exit 0"),
    ]);
    wait_log(&env, "keel-test-restart", "ready");
    let pid1 = env.inspect("keel-test-restart")["State"]["Pid"]
        .as_i64()
        .unwrap();
    assert_eq!(
        env.ok(&["restart", "-t", "5", "keel-test-restart"]),
        "keel-test-restart\n"
    );
    env.wait_state("keel-test-restart", "running", LONG);
    let start = Instant::now();
    while env.logs(&["keel-test-restart"]).0 != "ready\nready\n" {
        assert!(
            start.elapsed() < LONG,
            "{:?}",
            env.logs(&["keel-test-restart"])
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid2 = env.inspect("keel-test-restart")["State"]["Pid"]
        .as_i64()
        .unwrap();
    assert!(pid2 > 0 && pid2 != pid1, "{pid1} {pid2}");
    // An exited container restarts too.
    env.ok(&["stop", "keel-test-restart"]);
    env.ok(&["restart", "keel-test-restart"]);
    env.wait_state("keel-test-restart", "running", LONG);
}

fn rm_refuses_running_and_rm_f_forces(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-rm",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    let o = env.out(&["rm", "keel-test-rm"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("running"),
        "{}",
        text(&o)
    );
    assert_eq!(env.state("keel-test-rm"), "running");
    assert_eq!(env.ok(&["rm", "-f", "keel-test-rm"]), "keel-test-rm\n");

    env.code(&["run", "--name", "keel-test-rm2", BUSYBOX, "true"], 0);
    env.ok(&["create", "--name", "keel-test-rm3", BUSYBOX, "true"]);
    assert_eq!(
        env.ok(&["rm", "keel-test-rm2", "keel-test-rm3"]),
        "keel-test-rm2\nkeel-test-rm3\n"
    );
    env.assert_clean(Duration::from_secs(10));
    let o = env.out(&["rm", "keel-test-rm"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container"),
        "{}",
        text(&o)
    );
}

fn exec_exit_code_env_workdir_user(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-exec",
        "-e",
        "FROM_RUN=1",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    env.code(&["exec", "keel-test-exec", "sh", "-c", "exit 5"], 5);
    let o = env.code(
        &[
            "exec",
            "keel-test-exec",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ],
        0,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let out = env.ok(&[
        "exec",
        "-e",
        "KEEL_A=b c",
        "-w",
        "/tmp",
        "keel-test-exec",
        "sh",
        "-c",
        "echo \"$KEEL_A|$FROM_RUN|$(pwd)|$(id -u)\"",
    ]);
    assert_eq!(out, "b c|1|/tmp|0\n");
    let out = env.ok(&["exec", "-u", "app", "keel-test-exec", "id"]);
    assert!(out.starts_with("uid=1000(app) gid=1000(app)"), "{out}");
    let out = env.ok(&["exec", "--user", "nobody", "keel-test-exec", "id", "-un"]);
    assert_eq!(out, "nobody\n");
    // -i: our stdin reaches the command.
    let mut c = env.spawn(&["exec", "-i", "keel-test-exec", "cat"], Stdio::piped());
    c.stdin.take().unwrap().write_all(b"piped in\n").unwrap();
    let o = wait_child(c, LONG);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "piped in\n",
        "{}",
        text(&o)
    );
    let o = env.code(&["exec", "keel-test-exec", "keel-no-such-cmd"], 127);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("keel-no-such-cmd"),
        "{}",
        text(&o)
    );
    env.code(&["exec", "keel-test-exec", "/etc/passwd"], 126);
    // A command's own 1 and 127 stay what they are.
    env.code(&["exec", "keel-test-exec", "sh", "-c", "exit 1"], 1);
    env.code(
        &["exec", "keel-test-exec", "sh", "-c", "keel-no-such-cmd"],
        127,
    );
    env.ok(&["kill", "keel-test-exec"]);
    env.wait_state("keel-test-exec", "exited", LONG);
    let o = env.code(&["exec", "keel-test-exec", "true"], 125);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not running"),
        "{}",
        text(&o)
    );
}

fn wait_prints_the_exit_code(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-wait",
        BUSYBOX,
        "sh",
        "-c",
        "sleep 1; exit 9",
    ]);
    env.ok(&["run", "-d", "--name", "keel-test-wait0", BUSYBOX, "true"]);
    let start = Instant::now();
    assert_eq!(
        env.ok(&["wait", "keel-test-wait", "keel-test-wait0"]),
        "9\n0\n"
    );
    assert!(start.elapsed() >= Duration::from_millis(500));
    // Again, after the fact.
    assert_eq!(env.ok(&["wait", "keel-test-wait"]), "9\n");
}

fn inspect_has_dockers_shape(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-inspect",
        "-e",
        "KEEL_X=1",
        "--network",
        "none",
        BBAPP,
    ]);
    env.wait_state("keel-test-inspect", "running", LONG);
    let c = env.inspect("keel-test-inspect");
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "LogPath",
        "Name",
        "HostConfig",
        "Config",
    ] {
        assert!(keys.contains(&k), "{k} missing: {c}");
    }
    assert_eq!(c["Name"], "/keel-test-inspect");
    assert_eq!(c["Path"], "/srv/app/bin/entrypoint.sh");
    assert_eq!(c["Args"], serde_json::json!(["serve", "--port", "8080"]));
    assert!(c["Image"].as_str().unwrap().starts_with("sha256:"), "{c}");
    assert!(chrono::DateTime::parse_from_rfc3339(c["Created"].as_str().unwrap()).is_ok());
    let s = &c["State"];
    assert_eq!(s["Status"], "running");
    assert_eq!(s["Running"], true);
    assert_eq!(s["Dead"], false);
    assert!(s["Pid"].as_i64().unwrap() > 0, "{c}");
    assert!(chrono::DateTime::parse_from_rfc3339(s["StartedAt"].as_str().unwrap()).is_ok());
    assert_eq!(s["FinishedAt"], "0001-01-01T00:00:00Z");
    let cfg = &c["Config"];
    assert_eq!(cfg["Image"], BBAPP);
    assert_eq!(
        cfg["Entrypoint"],
        serde_json::json!(["/srv/app/bin/entrypoint.sh"])
    );
    assert_eq!(cfg["Cmd"], serde_json::json!(["serve", "--port", "8080"]));
    assert_eq!(cfg["Tty"], false);
    assert_eq!(cfg["OpenStdin"], false);
    let env_list: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env_list.contains(&"APP_HOME=/srv/app"), "{env_list:?}");
    assert!(env_list.contains(&"KEEL_X=1"), "{env_list:?}");
    assert_eq!(c["HostConfig"]["AutoRemove"], false);
    assert_eq!(c["HostConfig"]["LogConfig"]["Type"], "json-file");
    assert!(
        std::path::Path::new(c["LogPath"].as_str().unwrap()).is_file(),
        "{c}"
    );

    env.ok(&["kill", "keel-test-inspect"]);
    env.wait_state("keel-test-inspect", "exited", LONG);
    let s = env.inspect("keel-test-inspect")["State"].clone();
    assert_eq!(s["Running"], false);
    assert_eq!(s["Pid"], 0);
    assert_eq!(s["ExitCode"], 137);
    assert_ne!(s["FinishedAt"], "0001-01-01T00:00:00Z");
    // Several at once, in order; an unknown one fails the command.
    env.ok(&["create", "--name", "keel-test-inspect2", BUSYBOX]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "keel-test-inspect2", "keel-test-inspect"]))
            .unwrap();
    assert_eq!(v[0]["Name"], "/keel-test-inspect2");
    assert_eq!(v[0]["State"]["Status"], "created");
    assert_eq!(v[1]["Name"], "/keel-test-inspect");
    env.code(&["inspect", "keel-test-no-such"], 125);
}

fn cp_both_directions(rt: Rt) {
    let env = Env::new(rt);
    env.ok(&["run", "-d", "--name", "keel-test-cp", BUSYBOX, "sh", "-c",
        "mkdir -p /made/sub && echo inside > /made/sub/f && chmod 640 /made/sub/f && echo ready; sleep 100"]);
    wait_log(&env, "keel-test-cp", "ready");
    let host = env.dir.join("host");
    std::fs::create_dir_all(host.join("tree/deep")).unwrap();
    std::fs::write(host.join("one.txt"), "from the host\n").unwrap();
    std::fs::write(host.join("tree/deep/two.txt"), "deep\n").unwrap();

    env.ok(&[
        "cp",
        host.join("one.txt").to_str().unwrap(),
        "keel-test-cp:/tmp/",
    ]);
    env.ok(&[
        "cp",
        host.join("tree").to_str().unwrap(),
        "keel-test-cp:/tmp/tree",
    ]);
    env.ok(&[
        "cp",
        host.join("one.txt").to_str().unwrap(),
        "keel-test-cp:/renamed.txt",
    ]);
    let out = env.ok(&[
        "exec",
        "keel-test-cp",
        "cat",
        "/tmp/one.txt",
        "/tmp/tree/deep/two.txt",
        "/renamed.txt",
    ]);
    assert_eq!(out, "from the host\ndeep\nfrom the host\n");

    let back = env.dir.join("back");
    std::fs::create_dir_all(&back).unwrap();
    env.ok(&["cp", "keel-test-cp:/made", back.to_str().unwrap()]);
    let f = back.join("made/sub/f");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "inside\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o640
    );
    env.ok(&[
        "cp",
        "keel-test-cp:made/sub/f",
        back.join("f-copy").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(back.join("f-copy")).unwrap(),
        "inside\n"
    );
    // From a stopped container too: its files are still there.
    env.ok(&["stop", "-t", "1", "keel-test-cp"]);
    env.ok(&[
        "cp",
        "keel-test-cp:/tmp/one.txt",
        back.join("after-stop").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(back.join("after-stop")).unwrap(),
        "from the host\n"
    );
    let o = env.code(
        &["cp", "keel-test-cp:/no/such/file", back.to_str().unwrap()],
        125,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/no/such/file"),
        "{}",
        text(&o)
    );
    // Nothing escapes the container's root: `..` stays inside it.
    let esc = back.join("esc");
    let o = env.out(&[
        "cp",
        "keel-test-cp:/../../../../etc/passwd",
        esc.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let got = std::fs::read_to_string(&esc).unwrap();
    assert!(
        got.contains("app:x:1000:1000"),
        "not the image's passwd: {got}"
    );
}

fn commit_makes_an_image_with_the_containers_file(rt: Rt) {
    let env = Env::new(rt);
    env.code(
        &[
            "run",
            "--name",
            "keel-test-commit",
            BUSYBOX,
            "sh",
            "-c",
            "echo committed-content > /keel-committed.txt && rm /etc/motd 2>/dev/null; true",
        ],
        0,
    );
    let image = format!("keel-test-commit-{}:v1", rt.tag());
    let out = env.ok(&["commit", "keel-test-commit", &image]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let o = env.code(&["run", "--rm", &image, "cat", "/keel-committed.txt"], 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "committed-content\n",
        "{}",
        text(&o)
    );
    // The base image's files are all still there, and the image runs its
    // base's default command settings.
    let o = env.code(
        &[
            "run",
            "--rm",
            &image,
            "sh",
            "-c",
            "test -x /bin/busybox && id -un app",
        ],
        0,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "app\n", "{}", text(&o));
    // The committed container itself is unchanged and removable.
    env.ok(&["rm", "keel-test-commit"]);
}

fn env_env_file_volumes_workdir_user_entrypoint(rt: Rt) {
    let env = Env::new(rt);
    let envfile = env.dir.join("vars.env");
    std::fs::write(
        &envfile,
        "# a comment\nKEEL_FILE=from-file\n\nKEEL_BOTH=file\n",
    )
    .unwrap();
    std::env::set_var("KEEL_TEST_PASSED", "passed-through");
    let o = env.code(
        &["run", "--rm", "--env-file", envfile.to_str().unwrap(), "-e", "KEEL_BOTH=flag",
          "-e", "KEEL_TEST_PASSED", "-e", "KEEL_TEST_UNSET_VAR", "--env", "KEEL_SP=a b",
          BUSYBOX, "sh", "-c",
          "echo \"$KEEL_FILE|$KEEL_BOTH|$KEEL_TEST_PASSED|${KEEL_TEST_UNSET_VAR-unset}|$KEEL_SP\""],
        0,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "from-file|flag|passed-through|unset|a b\n",
        "{}",
        text(&o)
    );

    let vol = env.dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("in.txt"), "host data\n").unwrap();
    let rw = format!("{}:/data", vol.display());
    let ro = format!("{}:/ro:ro", vol.display());
    let o = env.code(
        &["run", "--rm", "-v", &rw, "-v", &ro, BUSYBOX, "sh", "-c",
          "cat /data/in.txt && echo written > /data/out.txt && if echo x > /ro/nope 2>/dev/null; then echo ro-writable; else echo ro-refused; fi"],
        0,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "host data\nro-refused\n",
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("out.txt")).unwrap(),
        "written\n"
    );
    assert!(!vol.join("nope").exists());

    let o = env.code(
        &[
            "run",
            "--rm",
            "-w",
            "/tmp/newdir",
            "-u",
            "app",
            BUSYBOX,
            "sh",
            "-c",
            "pwd; id -un",
        ],
        0,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/tmp/newdir\napp\n",
        "{}",
        text(&o)
    );
    // The fixture's USER app and WORKDIR, and their overrides.
    let o = env.code(
        &[
            "run",
            "--rm",
            "--workdir",
            "/",
            "--user",
            "0:0",
            "--entrypoint",
            "sh",
            BBAPP,
            "-c",
            "pwd; id -u",
        ],
        0,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/\n0\n", "{}", text(&o));
    let o = env.code(&["run", "--rm", "--entrypoint", "id", BBAPP, "-un"], 0);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "app\n", "{}", text(&o));
    let o = env.code(&["run", "--rm", "--entrypoint", "pwd", BBAPP], 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/srv/app\n",
        "{}",
        text(&o)
    );
    let o = env.code(
        &[
            "run",
            "--rm",
            "-u",
            "1000:1000",
            "-w",
            "/",
            "--entrypoint",
            "sh",
            BBAPP,
            "-c",
            "pwd; id -u; id -g",
        ],
        0,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/\n1000\n1000\n",
        "{}",
        text(&o)
    );
    let o = env.code(
        &[
            "run",
            "--rm",
            "--entrypoint",
            "",
            BBAPP,
            "echo",
            "no-entrypoint",
        ],
        0,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "no-entrypoint\n",
        "{}",
        text(&o)
    );
    let o = env.code(&["run", "--rm", BBAPP, "selftest"], 0);
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "user=app uid=1000 gid=1000",
        "cwd=/srv/app",
        "payload_ok=yes",
    ] {
        assert!(out.lines().any(|l| l == want), "{want} not in {out}");
    }
    env.assert_clean(Duration::from_secs(10));
}

fn rm_flag_removes_the_container_and_frees_its_name(rt: Rt) {
    let env = Env::new(rt);
    env.code(
        &["run", "--rm", "--name", "keel-test-gone", BUSYBOX, "true"],
        0,
    );
    env.assert_clean(Duration::from_secs(10));
    // The name is free again, at once.
    env.code(
        &["run", "--rm", "--name", "keel-test-gone", BUSYBOX, "true"],
        0,
    );
    env.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "keel-test-gone-d",
        BUSYBOX,
        "sh",
        "-c",
        "sleep 1",
    ]);
    env.assert_clean(Duration::from_secs(20));
    // An unnamed one's random name goes too.
    env.code(&["run", "--rm", BUSYBOX, "true"], 0);
    env.assert_clean(Duration::from_secs(10));
    // --rm with a stop.
    env.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "keel-test-gone-s",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    env.ok(&["stop", "-t", "1", "keel-test-gone-s"]);
    env.assert_clean(Duration::from_secs(20));
}

fn addressed_by_name_full_id_and_unique_prefix(rt: Rt) {
    let env = Env::new(rt);
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "keel-test-addr",
        BUSYBOX,
        "sleep",
        "100",
    ]);
    let id = id.trim().to_string();
    for who in [
        id.as_str(),
        &id[..12],
        &id[..5],
        "keel-test-addr",
        "/keel-test-addr",
    ] {
        assert_eq!(env.id_of(who), id, "{who}");
        assert_eq!(env.ok(&["exec", who, "echo", "hi"]), "hi\n", "{who}");
    }
    let upper = id[..12].to_ascii_uppercase();
    assert_eq!(env.id_of(&upper), id);
    // An unnamed container gets a random name that addresses it.
    let other = env.ok(&["create", BUSYBOX, "true"]);
    let other = other.trim();
    let name = env.inspect(other)["Name"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    assert!(!name.is_empty());
    assert_eq!(env.id_of(&name), other);
    // Unknown names and prefixes of nothing.
    let o = env.code(&["inspect", "keel-test-nobody"], 125);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No such container: keel-test-nobody"),
        "{}",
        text(&o)
    );
    let free_prefix = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f",
    ]
    .into_iter()
    .find(|p| !id.starts_with(p) && !other.starts_with(p))
    .unwrap();
    env.code(&["inspect", free_prefix], 125);
    // A prefix of both is ambiguous when they share one; the empty one never works.
    env.code(&["stop", "-t", "1", &id[..12]], 0);
    env.ok(&["rm", &id[..12], other]);
}
