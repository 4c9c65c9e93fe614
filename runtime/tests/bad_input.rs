//! Root integration tests: every bad input fails with exit status 1, a
//! message naming what was wrong, and leaves no state dir, cgroup, mount or
//! process behind.

mod common;

use common::{assert_nothing_left, id, Bundle, Runtime};

fn create(rt: &Runtime, b: &Bundle, id: &str) -> String {
    rt.fails(&["create", "--bundle", b.path().to_str().unwrap(), id])
}

#[test]
fn missing_config_json() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    let id = id("noconfig");
    let err = create(&rt, &b, &id);
    assert!(
        err.contains("config.json") && err.contains("No such file"),
        "{err}"
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn malformed_config_json_names_line_and_field() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    std::fs::write(
        b.path().join("config.json"),
        "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\n",
    )
    .unwrap();
    let id = id("badjson");
    let err = create(&rt, &b, &id);
    assert!(
        err.contains("config.json") && err.contains("line 4"),
        "{err}"
    );
    assert_nothing_left(&rt, &id, &b);

    let mut v = Bundle::busybox(&["true"]).config();
    v["process"]["user"]["uid"] = serde_json::json!("root");
    b.write_config(&v);
    let err = create(&rt, &b, &id);
    assert!(err.contains("invalid type") && err.contains("u32"), "{err}");
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn missing_rootfs() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    b.edit(|v| v["root"]["path"] = "nonexistent-rootfs".into());
    let id = id("norootfs");
    let err = create(&rt, &b, &id);
    assert!(
        err.contains("nonexistent-rootfs") && err.contains("root.path"),
        "{err}"
    );
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn invalid_container_id() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    for bad in ["a/b", "..", "has space"] {
        let err = create(&rt, &b, bad);
        assert!(err.contains("invalid container id"), "{err}");
    }
    assert!(
        std::fs::read_dir(rt.root.path())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn duplicate_container_id() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("dup");
    rt.ok(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = create(&rt, &b, &id);
    assert!(
        err.contains("container with id exists") && err.contains(&id),
        "{err}"
    );
    // The first container is untouched by the failed second create.
    assert_eq!(rt.status(&id), "created");
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn unknown_signal() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("badsig");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = rt.fails(&["kill", &id, "SIGFOO"]);
    assert!(
        err.contains("unknown signal") && err.contains("SIGFOO"),
        "{err}"
    );
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "-f", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn start_of_a_running_container() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("startrunning");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = rt.fails(&["start", &id]);
    assert!(
        err.contains("cannot start an already running container"),
        "{err}"
    );
    rt.ok(&["delete", "-f", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn delete_of_a_running_container_without_force() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["sleep", "100"]);
    let id = id("delrunning");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let err = rt.fails(&["delete", &id]);
    assert!(
        err.contains("cannot delete container") && err.contains("not stopped"),
        "{err}"
    );
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn failing_prestart_hook() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    b.edit(|v| {
        v["hooks"] = serde_json::json!({"prestart": [{"path": "/bin/false", "args": ["false"]}]})
    });
    let id = id("badhook");
    let err = create(&rt, &b, &id);
    assert!(err.contains("hook"), "{err}");
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn nonexistent_executable() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["/no/such/program"]);
    let id = id("noexec");
    let err = create(&rt, &b, &id);
    assert!(err.contains("/no/such/program"), "{err}");
    assert_nothing_left(&rt, &id, &b);
    // The same through `run`.
    let err = rt.fails(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(err.contains("/no/such/program"), "{err}");
    assert_nothing_left(&rt, &id, &b);
}

#[test]
fn commands_on_a_missing_container() {
    let rt = Runtime::new();
    for args in [
        vec!["state", "keel-test-ghost"],
        vec!["start", "keel-test-ghost"],
        vec!["kill", "keel-test-ghost"],
        vec!["delete", "keel-test-ghost"],
        vec!["exec", "keel-test-ghost", "true"],
        vec!["pause", "keel-test-ghost"],
        vec!["ps", "keel-test-ghost"],
    ] {
        let err = rt.fails(&args);
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
    // runc: a forced delete of a missing container succeeds.
    rt.ok(&["delete", "--force", "keel-test-ghost"]);
}

#[test]
fn kill_of_a_stopped_container_says_not_running() {
    let rt = Runtime::new();
    let b = Bundle::busybox(&["true"]);
    let id = id("killstopped");
    rt.ok(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    rt.wait_status(&id, "stopped");
    let err = rt.fails(&["kill", &id, "TERM"]);
    assert!(err.contains("not running"), "{err}");
    rt.ok(&["delete", &id]);
    assert_nothing_left(&rt, &id, &b);
}
