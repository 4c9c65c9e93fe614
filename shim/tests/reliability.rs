//! keel-shim when things go wrong around it: the CLI or the supervisor
//! killed, a container writing 1 GiB with nobody reading, 100 containers at
//! once. Root only.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{read_until, text, wait_child, Env, Rt, BUSYBOX};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const LONG: Duration = Duration::from_secs(60);

per_runtime!(
    cli_killed_while_attached_leaves_the_container_running,
    supervisor_killed_leaves_a_dead_container_that_rm_f_removes,
    a_gigabyte_of_stdout_with_nobody_attached_is_all_logged_in_order,
    a_hundred_detached_containers_start_log_and_go,
);

fn alive(pid: i32) -> bool {
    // A zombie is gone for our purposes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn cli_killed_while_attached_leaves_the_container_running(rt: Rt) {
    let env = Env::new(rt);
    let name = "keel-test-cli-killed";
    let mut cli = env.spawn(
        &["run", "-i", "--name", name, BUSYBOX, "sh"],
        Stdio::piped(),
    );
    let mut stdin = cli.stdin.take().unwrap();
    let mut out = cli.stdout.take().unwrap();
    stdin.write_all(b"echo alive\n").unwrap();
    read_until(&mut out, "alive\n", LONG);
    kill(Pid::from_raw(cli.id() as i32), Signal::SIGKILL).unwrap();
    let o = wait_child(cli, LONG);
    assert_eq!(o.status.code(), None, "killed: {}", text(&o));
    drop(stdin);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(env.state(name), "running");

    let mut a = env.spawn(&["attach", name], Stdio::piped());
    let mut stdin = a.stdin.take().unwrap();
    let mut out = a.stdout.take().unwrap();
    stdin.write_all(b"echo again\n").unwrap();
    read_until(&mut out, "again\n", LONG);
    // Killed a second time, from an attach.
    kill(Pid::from_raw(a.id() as i32), Signal::SIGKILL).unwrap();
    wait_child(a, LONG);
    assert_eq!(env.state(name), "running");

    let mut a = env.spawn(&["attach", name], Stdio::piped());
    let mut stdin = a.stdin.take().unwrap();
    stdin.write_all(b"echo third; exit 4\n").unwrap();
    let o = wait_child(a, LONG);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "third\n");
    assert_eq!(env.logs(&[name]).0, "alive\nagain\nthird\n");
}

fn supervisor_killed_leaves_a_dead_container_that_rm_f_removes(rt: Rt) {
    let env = Env::new(rt);
    let name = "keel-test-sup-killed";
    let id = env.ok(&["run", "-d", "--name", name, BUSYBOX, "sleep", "100"]);
    let id = id.trim();
    let ctr_pid = env.inspect(name)["State"]["Pid"].as_i64().unwrap() as i32;
    assert!(ctr_pid > 0);
    let sup: i32 = std::fs::read_to_string(env.run.join(id).join("supervisor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(Pid::from_raw(sup), Signal::SIGKILL).unwrap();
    let start = Instant::now();
    while alive(sup) {
        assert!(start.elapsed() < LONG, "supervisor {sup} survived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }

    let s = env.inspect(name)["State"].clone();
    assert_eq!(s["Status"], "dead", "{s}");
    assert_eq!(s["Dead"], true, "{s}");
    assert_eq!(s["Running"], false, "{s}");
    let ps = env.ok(&["ps", "-a"]);
    let row = ps
        .lines()
        .find(|l| l.ends_with(name))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.contains("Dead"), "{ps}");
    assert_eq!(env.ok(&["ps", "-q"]), "", "a dead container is not running");
    // Nothing more can be done to it than removing it.
    env.code(&["attach", name], 125);
    env.code(&["exec", name, "true"], 125);

    assert_eq!(env.ok(&["rm", "-f", name]), format!("{name}\n"));
    let start = Instant::now();
    while alive(ctr_pid) {
        assert!(
            start.elapsed() < LONG,
            "container process {ctr_pid} survived rm -f"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.assert_clean(Duration::from_secs(10));
    env.code(&["inspect", name], 125);
    // And the name is free.
    env.code(&["run", "--rm", "--name", name, BUSYBOX, "true"], 0);
}

const LINES: usize = 1 << 20;
/// Bytes per line, newline included: LINES of them make 1 GiB.
const LINE_LEN: usize = 1024;

fn a_gigabyte_of_stdout_with_nobody_attached_is_all_logged_in_order(rt: Rt) {
    let env = Env::alone(rt);
    let name = "keel-test-gigabyte";
    // "%07d " and 1015 x's and the newline: 1024 bytes a line.
    let script = format!(
        "BEGIN {{ p = sprintf(\"%{pad}s\", \"\"); gsub(/ /, \"x\", p); \
         for (i = 0; i < {LINES}; i++) printf \"%07d %s\\n\", i, p }}",
        pad = LINE_LEN - 9
    );
    env.ok(&["run", "-d", "--name", name, BUSYBOX, "awk", &script]);
    let start = Instant::now();
    let wait = wait_child(
        env.spawn(&["wait", name], Stdio::null()),
        Duration::from_secs(1200),
    );
    assert_eq!(
        String::from_utf8_lossy(&wait.stdout),
        "0\n",
        "{}",
        text(&wait)
    );
    eprintln!("1 GiB written in {:?}", start.elapsed());

    let start = Instant::now();
    let mut logs = env
        .cmd()
        .args(["logs", name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::with_capacity(1 << 20, logs.stdout.take().unwrap());
    let pad = "x".repeat(LINE_LEN - 9);
    let mut n = 0usize;
    let mut bytes = 0usize;
    for line in reader.split(b'\n') {
        let line = line.unwrap();
        bytes += line.len() + 1;
        let want = format!("{n:07} {pad}");
        if line != want.as_bytes() {
            panic!(
                "line {n}: {:?}",
                String::from_utf8_lossy(&line[..line.len().min(80)])
            );
        }
        n += 1;
    }
    let o = logs.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    assert_eq!(n, LINES);
    assert_eq!(bytes, LINES * LINE_LEN);
    eprintln!("1 GiB read back in {:?}", start.elapsed());
    env.ok(&["rm", name]);
}

fn a_hundred_detached_containers_start_log_and_go(rt: Rt) {
    let env = Env::alone(rt);
    const N: usize = 100;
    let names: Vec<String> = (0..N).map(|i| format!("keel-test-many-{i}")).collect();
    std::thread::scope(|s| {
        for chunk in names.chunks(N / 4) {
            let env = &env;
            s.spawn(move || {
                for name in chunk {
                    env.ok(&[
                        "run",
                        "-d",
                        "--name",
                        name,
                        BUSYBOX,
                        "sh",
                        "-c",
                        &format!("echo hello from {name}; exec sleep 300"),
                    ]);
                }
            });
        }
    });
    let running = env.ok(&["ps", "-q"]);
    assert_eq!(running.lines().count(), N, "{running}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["ps", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), N);
    for name in &names {
        let start = Instant::now();
        loop {
            let (out, _) = env.logs(&[name]);
            if out == format!("hello from {name}\n") {
                break;
            }
            assert!(start.elapsed() < LONG, "{name}: {out:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::scope(|s| {
        for chunk in names.chunks(N / 4) {
            let env = &env;
            s.spawn(move || {
                let mut args = vec!["rm", "-f"];
                args.extend(chunk.iter().map(String::as_str));
                let out = env.ok(&args);
                assert_eq!(out.lines().count(), chunk.len(), "{out}");
            });
        }
    });
    env.assert_clean(Duration::from_secs(30));
}
