//! The README's cache scenarios: what a rebuild after each kind of edit
//! runs again, read from `--progress plain` (`#N CACHED` per reused step).

mod common;

use common::{key_values, Base, Status, Store};
use serde_json::Value;

fn positions(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn busybox_rebuilds_exactly_what_an_edit_touches() {
    if common::skip() {
        return;
    }
    let store = Store::new();
    assert!(
        store.import(Base::Busybox),
        "the busybox base must build here"
    );
    let ctx = common::copy_context("busybox-app");

    let first = store.build(ctx.path(), "bbapp:cache", &[]);
    assert!(first.keyed(Status::Cached).is_empty(), "{}", first.log);

    // No change: every keyed step is CACHED and the image is the same.
    let again = store.build(ctx.path(), "bbapp:cache", &[]);
    assert!(
        again.keyed(Status::Done).is_empty(),
        "nothing should run again:\n{}",
        again.log
    );
    assert_eq!(
        again.keyed(Status::Cached).len(),
        first.keyed(Status::Done).len()
    );
    assert!(again.log.contains("(0 steps run, "), "{}", again.log);
    assert_eq!(again.id, first.id);

    // Timestamps are not content: touching every file changes nothing.
    let st = std::process::Command::new("find")
        .arg(ctx.path())
        .args(["-exec", "touch", "-d", "@1800000000", "{}", "+"])
        .status()
        .expect("find -exec touch");
    assert!(st.success());
    let touched = store.build(ctx.path(), "bbapp:cache", &[]);
    assert!(touched.keyed(Status::Done).is_empty(), "{}", touched.log);
    assert_eq!(touched.id, first.id);

    // A file .dockerignore leaves out is not part of any key either.
    std::fs::write(ctx.path().join("secret.txt"), "changed secret\n").expect("secret.txt");
    std::fs::write(ctx.path().join("tmp/new.txt"), "new\n").expect("tmp/new.txt");
    let ignored = store.build(ctx.path(), "bbapp:cache", &[]);
    assert!(ignored.keyed(Status::Done).is_empty(), "{}", ignored.log);
    assert_eq!(ignored.id, first.id);

    // The README's scenario: src/app.sh changes COPY src/ (and COPY . /ctx/,
    // which copies it too), so the build stage's RUN and, in the final
    // stage, COPY --from=build and everything after it run again.
    common::edit(
        &ctx.path().join("src/app.sh"),
        "echo \"revision=1\"",
        "echo \"revision=2\"",
    );
    let edited = store.build(ctx.path(), "bbapp:cache", &[]);
    assert_eq!(
        edited.keyed(Status::Cached),
        positions(&[
            "build 3",
            "stage-1 4",
            "stage-1 5",
            "stage-1 6",
            "stage-1 7"
        ]),
        "{}",
        edited.log
    );
    let rebuilt: Vec<String> = ["build 4", "build 5", "build 6"]
        .iter()
        .map(|s| s.to_string())
        .chain((8..=17).map(|n| format!("stage-1 {n}")))
        .collect();
    assert_eq!(edited.keyed(Status::Done), rebuilt, "{}", edited.log);
    assert_eq!(
        edited.step("stage-1 8").instruction(),
        "COPY --from=build /out/ ./"
    );
    assert_ne!(edited.id, first.id);

    // Unchanged steps share their layers with the first image.
    let a = store.inspect(&first.id);
    let b = store.inspect("bbapp:cache");
    let layers = |v: &Value| -> Vec<String> {
        v["RootFS"]["Layers"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (la, lb) = (layers(&a), layers(&b));
    assert_eq!(la.len(), lb.len());
    // Base and the final stage's `RUN mkdir` come before COPY --from,
    // whose layer holds the new app.sh.
    assert_eq!(la.len(), 6, "{la:?}");
    assert_eq!(la[..2], lb[..2]);
    assert_ne!(la[2], lb[2]);

    {
        let bundle = store.bundle("bbapp:cache", "selftest", &["selftest"]);
        let kv = key_values(&bundle.run_ok(&common::keel_runtime()));
        assert_eq!(kv.get("revision").map(String::as_str), Some("2"), "{kv:?}");
        assert_eq!(
            kv.get("version").map(String::as_str),
            Some("1.0.0"),
            "{kv:?}"
        );
    }

    // Back to the first content: the first image's steps are all cached.
    common::edit(
        &ctx.path().join("src/app.sh"),
        "echo \"revision=2\"",
        "echo \"revision=1\"",
    );
    let back = store.build(ctx.path(), "bbapp:cache", &[]);
    assert!(back.keyed(Status::Done).is_empty(), "{}", back.log);
    assert_eq!(back.id, first.id);
    store.check();
}

fn python_selftest(store: &Store, image: &str, name: &str) -> Value {
    let b = store.bundle(image, name, &["python3", "app.py", "--selftest"]);
    let out = b.run_ok(&common::keel_runtime());
    let line = out.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("selftest printed no JSON ({e}): {out}"))
}

#[test]
fn python_source_and_dependency_changes() {
    if common::skip() {
        return;
    }
    let store = Store::new();
    if !store.import(Base::Python) {
        eprintln!("skipping: the python base root filesystem cannot be built here");
        return;
    }
    let ctx = common::copy_context("python-app");

    let first = store.build(ctx.path(), "pyapp:cache", &[]);
    assert_eq!(first.steps.len(), 8, "{}", first.log);
    assert!(first.keyed(Status::Cached).is_empty(), "{}", first.log);
    let image = store.inspect("pyapp:cache");
    let c = &image["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["python3", "app.py"]));
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"8000/tcp": {}}));
    // As Docker writes it: the base has no PATH, so the default comes first.
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_ENV=production",
            "PORT=8000",
            "PYTHONUNBUFFERED=1"
        ])
    );

    {
        // .dockerignore: .env, debug.log, Dockerfile and .dockerignore stay out.
        let b = store.bundle("pyapp:cache", "listing", &[]);
        let mut names: Vec<String> = std::fs::read_dir(b.rootfs().join("app"))
            .expect("/app in the image")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["app.py", "helpers", "requirements.txt"]);
    }
    let report = python_selftest(&store, "pyapp:cache", "selftest-1");
    let deps = serde_json::json!({
        "click": "8.1.7", "flask": "3.0.3", "gunicorn": "22.0.0", "itsdangerous": "2.2.0",
        "jinja2": "3.1.4", "markupsafe": "2.1.5", "requests": "2.32.3", "werkzeug": "3.0.3",
    });
    assert_eq!(
        report["greeting"], "hello from the python fixture",
        "{report}"
    );
    assert_eq!(report["revision"], 1, "{report}");
    assert_eq!(report["cwd"], "/app", "{report}");
    assert_eq!(report["env"], "production", "{report}");
    assert_eq!(report["port"], 8000, "{report}");
    assert_eq!(report["uid"], 0, "{report}");
    assert_eq!(report["python"], "3.11.2", "{report}");
    assert_eq!(report["deps"], deps, "{report}");

    let again = store.build(ctx.path(), "pyapp:cache", &[]);
    assert!(again.keyed(Status::Done).is_empty(), "{}", again.log);
    assert_eq!(again.id, first.id);

    // Source-only change: `COPY . .` and the steps after it.
    common::edit(
        &ctx.path().join("app.py"),
        "APP_REVISION = 1",
        "APP_REVISION = 2",
    );
    let source = store.build(ctx.path(), "pyapp:cache", &[]);
    assert_eq!(
        source.keyed(Status::Cached),
        positions(&["stage-0 2", "stage-0 3", "stage-0 4"]),
        "{}",
        source.log
    );
    assert_eq!(
        source.keyed(Status::Done),
        positions(&["stage-0 5", "stage-0 6", "stage-0 7", "stage-0 8"]),
        "{}",
        source.log
    );
    assert!(source
        .step("stage-0 5")
        .instruction()
        .starts_with("COPY . ."));
    let report = python_selftest(&store, "pyapp:cache", "selftest-2");
    assert_eq!(report["revision"], 2, "{report}");
    assert_eq!(report["deps"], deps, "{report}");

    // Dependency change: COPY requirements.txt and the RUN run again.
    common::edit(
        &ctx.path().join("requirements.txt"),
        "click==8.1.7",
        "click==8.1.8",
    );
    let deps_changed = store.build(ctx.path(), "pyapp:cache", &[]);
    assert_eq!(
        deps_changed.keyed(Status::Cached),
        positions(&["stage-0 2"]),
        "{}",
        deps_changed.log
    );
    assert!(deps_changed
        .step("stage-0 3")
        .instruction()
        .starts_with("COPY requirements.txt"));
    assert!(deps_changed
        .step("stage-0 4")
        .instruction()
        .starts_with("RUN "));
    assert_eq!(deps_changed.step("stage-0 4").status, Status::Done);
    let report = python_selftest(&store, "pyapp:cache", "selftest-3");
    assert_eq!(report["deps"]["click"], "8.1.8", "{report}");
    assert_eq!(report["revision"], 2, "{report}");

    // A file .dockerignore leaves out changes nothing.
    std::fs::write(ctx.path().join("debug.log"), "more noise\n").expect("debug.log");
    std::fs::write(ctx.path().join(".env"), "SECRET=2\n").expect(".env");
    let ignored = store.build(ctx.path(), "pyapp:cache", &[]);
    assert!(ignored.keyed(Status::Done).is_empty(), "{}", ignored.log);
    assert_eq!(ignored.id, deps_changed.id);
    store.check();
}
