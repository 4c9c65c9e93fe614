//! keel-shim refusing bad input: a clear message, docker's exit code, and
//! nothing left behind (no container dir, no name reserved, no mount, no
//! process, no runtime state). Root only.

mod common;

use std::time::Duration;

use common::{text, Env, Rt, BUSYBOX};

per_runtime!(
    unknown_image,
    unknown_container,
    name_already_in_use,
    bad_volume_specs,
    missing_bundle_dir,
    other_bad_flags,
);

/// Runs keel-shim expecting `code` and a stderr naming `mention`.
fn refused(env: &Env, args: &[&str], code: i32, mention: &str) {
    let o = env.out(args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(mention),
        "{args:?}: no {mention:?} in: {}",
        text(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "",
        "{args:?}: {}",
        text(&o)
    );
}

fn nothing_left(env: &Env) {
    env.assert_clean(Duration::from_secs(5));
}

fn unknown_image(rt: Rt) {
    let env = Env::new(rt);
    for verb in ["run", "create"] {
        refused(
            &env,
            &[
                verb,
                "--name",
                "keel-test-noimage",
                "keel-test/no-such-image:v0",
                "true",
            ],
            125,
            "keel-test/no-such-image",
        );
        nothing_left(&env);
    }
    refused(
        &env,
        &["run", "-d", "keel-test/no-such-image"],
        125,
        "no-such-image",
    );
    nothing_left(&env);
    // The name was never taken.
    env.code(
        &[
            "run",
            "--rm",
            "--name",
            "keel-test-noimage",
            BUSYBOX,
            "true",
        ],
        0,
    );
    nothing_left(&env);
}

fn unknown_container(rt: Rt) {
    let env = Env::new(rt);
    let who = "keel-test-nobody";
    for args in [
        vec!["start", who],
        vec!["start", "-a", who],
        vec!["stop", who],
        vec!["kill", who],
        vec!["restart", who],
        vec!["logs", who],
        vec!["attach", who],
        vec!["exec", who, "true"],
        vec!["wait", who],
        vec!["inspect", who],
        vec!["commit", who, "keel-test-img"],
    ] {
        refused(&env, &args, 125, &format!("No such container: {who}"));
    }
    // docker's rm reports each failure and exits 1.
    refused(&env, &["rm", who], 1, &format!("No such container: {who}"));
    refused(
        &env,
        &["rm", "-f", who],
        1,
        &format!("No such container: {who}"),
    );
    // cp: neither side is a container.
    refused(
        &env,
        &["cp", &format!("{who}:/etc/passwd"), "/tmp/x"],
        125,
        "container",
    );
    refused(&env, &["inspect", "0123456789ab"], 125, "No such container");
    nothing_left(&env);
}

fn name_already_in_use(rt: Rt) {
    let env = Env::new(rt);
    let name = "keel-test-taken";
    let id = env.ok(&["run", "-d", "--name", name, BUSYBOX, "sleep", "100"]);
    let id = id.trim();
    for args in [
        vec!["run", "--name", name, BUSYBOX, "true"],
        vec!["run", "-d", "--name", name, BUSYBOX, "true"],
        vec!["create", "--name", name, BUSYBOX, "true"],
        vec!["create", "--name", &format!("/{name}"), BUSYBOX, "true"],
    ] {
        refused(&env, &args, 125, "already in use");
    }
    assert_eq!(env.container_ids(), vec![id.to_string()]);
    assert_eq!(env.names(), vec![name.to_string()]);
    assert_eq!(env.id_of(name), id);
    assert_eq!(env.state(name), "running");
    // A stopped container still holds its name.
    env.ok(&["stop", "-t", "1", name]);
    refused(
        &env,
        &["run", "--name", name, BUSYBOX, "true"],
        125,
        "already in use",
    );
    assert_eq!(env.container_ids(), vec![id.to_string()]);
    env.ok(&["rm", name]);
    nothing_left(&env);
}

fn bad_volume_specs(rt: Rt) {
    let env = Env::new(rt);
    let dir = env.dir.display().to_string();
    for spec in [
        "relative:/data".to_string(),
        "/keel-test-no-such-dir:/data".to_string(),
        format!("{dir}:/data:rx"),
        format!("{dir}:data"),
        format!("{dir}:/"),
        dir.clone(),
        format!("{dir}:/a:ro:extra"),
    ] {
        for verb in ["run", "create"] {
            refused(
                &env,
                &[
                    verb,
                    "--name",
                    "keel-test-vol",
                    "-v",
                    &spec,
                    BUSYBOX,
                    "true",
                ],
                125,
                &spec,
            );
            nothing_left(&env);
        }
    }
}

fn missing_bundle_dir(rt: Rt) {
    let env = Env::new(rt);
    let missing = env.dir.join("no-such-bundle");
    let empty = env.dir.join("empty-bundle");
    std::fs::create_dir_all(&empty).unwrap();
    for b in [&missing, &empty] {
        for verb in ["run", "create"] {
            refused(
                &env,
                &[
                    verb,
                    "--name",
                    "keel-test-bundle",
                    "--bundle",
                    b.to_str().unwrap(),
                    "true",
                ],
                125,
                &b.display().to_string(),
            );
            nothing_left(&env);
        }
    }
    // The empty dir is as it was.
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

fn other_bad_flags(rt: Rt) {
    let env = Env::new(rt);
    let missing_env = env.dir.join("no-such.env");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--name".into(), "bad name!".into()],
            "Invalid container name",
        ),
        (vec!["-e".into(), "=value".into()], "=value"),
        (
            vec!["--env-file".into(), missing_env.display().to_string()],
            "no-such.env",
        ),
        (
            vec!["--log-opt".into(), "max-size=lots".into()],
            "max-size=lots",
        ),
        (vec!["--log-opt".into(), "colour=red".into()], "colour=red"),
    ];
    for (flags, mention) in &cases {
        for verb in ["run", "create"] {
            let mut args: Vec<&str> = vec![verb];
            args.extend(flags.iter().map(String::as_str));
            args.extend([BUSYBOX, "true"]);
            refused(&env, &args, 125, mention);
            nothing_left(&env);
        }
    }
    refused(
        &env,
        &["run", "--detach-keys", "ctrl-", BUSYBOX, "true"],
        125,
        "ctrl-",
    );
    nothing_left(&env);
    refused(
        &env,
        &["logs", "--since", "yesterday-ish", "keel-test-x"],
        125,
        "",
    );
}
