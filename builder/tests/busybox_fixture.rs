//! The busybox fixture (multi-stage, most instructions) built end to end:
//! .dockerignore'd context, image config as Docker would write it, and the
//! selftest run from a bundle under keel-runtime and runc.

mod common;

use std::collections::BTreeMap;

use common::{key_values, Base, Status, Store};
use serde_json::{json, Value};

/// README's reference listing (buildah 1.28) of the filtered context.
const CONTEXT_LISTING: &str = ".
./config
./config/app.conf
./keep.log
./src
./src/app.sh
./src/build.sh
./src/entrypoint.sh
./static
./static/index.html
./static/style.css
";

const PATH: &str = "/srv/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn env_map(config: &Value) -> BTreeMap<String, String> {
    config["Env"]
        .as_array()
        .unwrap_or_else(|| panic!("no Env in {config}"))
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_selftest(out: &str, version: &str, revision: &str) {
    let kv = key_values(out);
    let want = [
        ("version", version),
        ("user", "app uid=1000 gid=1000"),
        ("cwd", "/srv/app"),
        ("app_port", "8080"),
        ("payload_ok", "yes"),
        (
            "conf",
            "greeting=hello from the busybox fixture log_level=info ",
        ),
        ("static", "index.html style.css "),
        ("revision", revision),
    ];
    for (k, v) in want {
        assert_eq!(
            kv.get(k).map(String::as_str),
            Some(v),
            "selftest {k}= in:\n{out}"
        );
    }
}

/// What `docker build` would put in this Dockerfile's image config.
fn assert_docker_config(image: &Value, version: &str) {
    let c = &image["Config"];
    assert_eq!(c["Entrypoint"], json!(["/srv/app/bin/entrypoint.sh"]));
    assert_eq!(c["Cmd"], json!(["serve", "--port", "8080"]));
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "app");
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["Volumes"], json!({"/srv/app/data": {}}));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(
        c["Labels"],
        json!({
            "org.opencontainers.image.title": "bbapp",
            "org.opencontainers.image.version": version,
            "org.opencontainers.image.description": "busybox fixture app",
        })
    );
    // Docker's order: the default PATH a PATH-less base gets comes first,
    // and ENV replaces it in place. ARG values stay out of Env.
    assert_eq!(
        c["Env"],
        json!([format!("PATH={PATH}"), "APP_HOME=/srv/app", "APP_PORT=8080"])
    );
    let env = env_map(c);
    assert_eq!(env.get("PATH").map(String::as_str), Some(PATH));
    assert_eq!(env.get("APP_HOME").map(String::as_str), Some("/srv/app"));
    assert_eq!(env.get("APP_PORT").map(String::as_str), Some("8080"));
    assert!(
        !env.contains_key("VERSION")
            && !env.contains_key("BUILD_NOTE")
            && !env.contains_key("BASE"),
        "build args leaked into Env: {env:?}"
    );
    for absent in ["Healthcheck", "OnBuild", "Shell"] {
        assert!(
            c.get(absent).is_none_or(|v| v.is_null() || v == &json!([])),
            "{absent} should be unset: {c}"
        );
    }
    assert_eq!(image["Architecture"], "amd64");
    assert_eq!(image["Os"], "linux");

    // Docker's invariant: one diff id per layer, one non-empty history
    // entry per layer.
    let layers = image["Layers"].as_array().expect("Layers");
    let diff_ids = image["RootFS"]["Layers"].as_array().expect("RootFS.Layers");
    assert_eq!(layers.len(), diff_ids.len());
    let history = image["History"].as_array().expect("History");
    let with_layer = history
        .iter()
        .filter(|h| h["empty_layer"] != json!(true))
        .count();
    assert_eq!(with_layer, layers.len(), "history: {history:#?}");
    // The final stage's own entries, in order, as BuildKit records them
    // (ARG makes none; build args are not part of the config).
    let own: Vec<(&str, bool)> = history[history.len() - 14..]
        .iter()
        .map(|h| {
            (
                h["created_by"].as_str().unwrap_or(""),
                h["empty_layer"] == json!(true),
            )
        })
        .collect();
    let expect: [(&str, bool); 14] = [
        ("LABEL ", true),
        ("ENV APP_HOME=/srv/app APP_PORT=8080 PATH=", true),
        ("RUN /bin/sh -c mkdir -p /srv/app/data", false),
        ("WORKDIR /srv/app", true),
        ("COPY --from=build /out/ /srv/app/", false),
        (
            "COPY --chown=1000:1000 config/app.conf /srv/app/conf/app.conf",
            false,
        ),
        ("ADD static/ /srv/app/static/", false),
        ("USER app", true),
        ("RUN /bin/sh -c id > ./whoami.txt", false),
        ("VOLUME ", true),
        ("EXPOSE ", true),
        ("STOPSIGNAL SIGTERM", true),
        ("ENTRYPOINT [\"/srv/app/bin/entrypoint.sh\"]", true),
        ("CMD [\"serve\",\"--port\",\"8080\"]", true),
    ];
    for ((by, empty), (prefix, want_empty)) in own.iter().zip(expect) {
        assert!(
            by.starts_with(prefix),
            "history entry {by:?}, want {prefix:?}..."
        );
        assert_eq!(*empty, want_empty, "empty_layer of {by:?}");
    }
}

/// `images` shows NAME TAG and the 12-digit id.
fn assert_listed(store: &Store, name: &str, id: &str) {
    let (repo, tag) = name.rsplit_once(':').expect("name:tag");
    let short = &id.trim_start_matches("sha256:")[..12];
    let out = store.ok(["images"]);
    assert!(
        out.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 3 && cols[0] == repo && cols[1] == tag && cols[2] == short
        }),
        "images does not list {name} {short}:\n{out}"
    );
}

#[test]
fn busybox_fixture_builds_runs_and_matches_docker() {
    if common::skip() {
        return;
    }
    let store = Store::new();
    assert!(
        store.import(Base::Busybox),
        "the busybox base must build here"
    );
    let context = common::fixture("busybox-app");

    let first = store.build(&context, "bbapp:test", &[]);
    assert!(
        first.steps.iter().all(|s| s.status == Status::Done),
        "a fresh store runs every step:\n{}",
        first.log
    );
    // Two stages: FROM + 5 instructions, FROM + 16 instructions.
    assert_eq!(first.steps.len(), 6 + 17, "{}", first.log);
    let image = store.inspect("bbapp:test");
    assert_docker_config(&image, "1.0.0");
    assert_listed(&store, "bbapp:test", &first.id);

    // The default bundle runs ENTRYPOINT + CMD as the image's user.
    {
        let b = store.bundle("bbapp:test", "default", &[]);
        let cfg = b.config();
        assert_eq!(
            cfg["process"]["args"],
            json!(["/srv/app/bin/entrypoint.sh", "serve", "--port", "8080"])
        );
        assert_eq!(cfg["process"]["cwd"], "/srv/app");
        assert_eq!(cfg["process"]["user"]["uid"], 1000);
        assert_eq!(cfg["process"]["user"]["gid"], 1000);
        assert_eq!(cfg["process"]["terminal"], false);
        let listing = std::fs::read_to_string(b.rootfs().join("srv/app/share/context-listing.txt"))
            .expect("context-listing.txt in the image");
        assert_eq!(listing, CONTEXT_LISTING);
        // The build stage's RUN ran as root, the final one as app.
        let whoami = std::fs::read_to_string(b.rootfs().join("srv/app/whoami.txt"))
            .expect("whoami.txt in the image");
        assert!(
            whoami.starts_with("uid=1000(app) gid=1000(app)") && whoami.ends_with("/srv/app\n"),
            "{whoami:?}"
        );
        let note = std::fs::read_to_string(b.rootfs().join("srv/app/build-note.txt"))
            .expect("build-note.txt");
        assert_eq!(note, "no note\n");
    }

    // Bundle args replace CMD (as `docker run IMAGE selftest` does), under
    // both runtimes.
    for (name, runtime) in [
        ("keel-runtime", common::keel_runtime()),
        ("runc", common::runc()),
    ] {
        let b = store.bundle("bbapp:test", &format!("selftest-{name}"), &["selftest"]);
        assert_eq!(
            b.config()["process"]["args"],
            json!(["/srv/app/bin/entrypoint.sh", "selftest"])
        );
        let out = b.run_ok(&runtime);
        assert_selftest(&out, "1.0.0", "1");
    }

    // A build arg reaches the build stage's RUN (and only steps that see
    // it are rebuilt) and the final stage's LABEL.
    let v2 = store.build(
        &context,
        "bbapp:v2",
        &[
            "--build-arg",
            "VERSION=2.0.0",
            "--build-arg",
            "BUILD_NOTE=v2 note",
        ],
    );
    assert_ne!(v2.id, first.id);
    assert_eq!(
        v2.keyed(Status::Cached),
        ["build 3", "build 4", "build 5"],
        "{}",
        v2.log
    );
    let image2 = store.inspect("bbapp:v2");
    assert_docker_config(&image2, "2.0.0");
    {
        let b = store.bundle("bbapp:v2", "selftest-v2", &["selftest"]);
        let out = b.run_ok(&common::keel_runtime());
        assert_selftest(&out, "2.0.0", "1");
        let note = std::fs::read_to_string(b.rootfs().join("srv/app/build-note.txt"))
            .expect("build-note.txt");
        assert_eq!(note, "v2 note\n");
    }

    // history: one line per step of the final stage (ARG makes none) on
    // top of the base's.
    let base_history = store.inspect(Base::Busybox.image())["History"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    let table = store.ok(["history", "bbapp:test"]);
    assert_eq!(table.lines().count(), 1 + base_history + 14, "{table}");
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("CMD [\"serve\"")),
        "{table}"
    );
    let hjson: Value =
        serde_json::from_str(&store.ok(["history", "--format", "json", "bbapp:test"]))
            .expect("history --format json");
    assert_eq!(hjson.as_array().map(Vec::len), Some(base_history + 14));

    assert_listed(&store, "bbapp:v2", &v2.id);
    let base_id = store.inspect(Base::Busybox.image())["Id"]
        .as_str()
        .map(str::to_string)
        .expect("base image Id");
    assert_listed(&store, Base::Busybox.image(), &base_id);
    store.check();
}
