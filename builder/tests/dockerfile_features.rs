//! Dockerfile features end to end, each checked against the behaviour the
//! Dockerfile reference describes: keel-build builds into a private store,
//! results are read back through `inspect` and by running a bundle of the
//! image with keel-runtime. Needs root (overlay mounts, containers); without
//! it every test returns early with a note on stderr.

mod features;

use features::{Env, Files};
use serde_json::Value;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn env_of(config: &Value) -> Vec<String> {
    strings(&config["Env"])
}

fn env_value(config: &Value, key: &str) -> Option<String> {
    env_of(config)
        .into_iter()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn heredocs_in_run_and_copy_expand_unless_the_delimiter_is_quoted() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
ENV WHO=world
ARG COLOR=blue
RUN <<EOF
echo "script line one" > /script.out
echo "who=$WHO" >> /script.out
EOF
RUN cat <<EOF > /shell.out
who=$WHO
EOF
RUN cat <<'EOF' > /shell-quoted.out
who=$WHO
EOF
COPY <<EOF /etc/x
color=${COLOR} who=$WHO
EOF
COPY <<"EOF" /etc/y
color=${COLOR} who=$WHO
EOF
"#,
    )]);
    env.build_ok(&ctx, &["-t", "heredoc"]);
    let out = env.run(
        "heredoc",
        &[
            "cat",
            "/script.out",
            "/shell.out",
            "/shell-quoted.out",
            "/etc/x",
            "/etc/y",
        ],
    );
    assert_eq!(
        out,
        "script line one\nwho=world\nwho=world\nwho=$WHO\ncolor=blue who=world\ncolor=${COLOR} who=$WHO\n"
    );
    let history = env.inspect("heredoc")["History"].clone();
    let runs: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .filter(|c| c.starts_with("RUN"))
        .collect();
    assert_eq!(
        runs,
        [
            "RUN <<EOF",
            "RUN cat <<EOF > /shell.out",
            "RUN cat <<'EOF' > /shell-quoted.out"
        ]
    );
}

#[test]
fn shell_instruction_changes_run_cmd_and_entrypoint_shell_forms() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
SHELL ["/bin/sh", "-ec"]
RUN echo "$-" > /flags
ENTRYPOINT echo entry
CMD echo from-cmd
"#,
    )]);
    env.build_ok(&ctx, &["-t", "shell"]);
    let c = env.config("shell");
    assert_eq!(strings(&c["Shell"]), ["/bin/sh", "-ec"]);
    assert_eq!(strings(&c["Entrypoint"]), ["/bin/sh", "-ec", "echo entry"]);
    assert_eq!(strings(&c["Cmd"]), ["/bin/sh", "-ec", "echo from-cmd"]);
    let flags = env.run("shell", &["cat", "/flags"]);
    assert!(flags.contains('e'), "RUN did not get -e: flags {flags:?}");

    // With -e the failing `false` ends the step; under the default
    // `/bin/sh -c` the same line would succeed.
    let ctx = env.context(&[(
        "Dockerfile",
        "FROM local/busybox:latest\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN false; touch /ran\n",
    )]);
    let out = env.build(&ctx, &["-t", "shell-e"]);
    assert!(!out.status.success(), "RUN false under -e succeeded");
    let ctx = env.context(&[(
        "Dockerfile",
        "FROM local/busybox:latest\nRUN false; touch /ran\n",
    )]);
    env.build_ok(&ctx, &["-t", "shell-c"]);
}

#[test]
fn cmd_and_entrypoint_forms_and_entrypoint_resets_an_inherited_cmd() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
CMD ["echo", "parent", "cmd"]
"#,
    )]);
    env.build_ok(&ctx, &["-t", "parent"]);
    assert_eq!(
        strings(&env.config("parent")["Cmd"]),
        ["echo", "parent", "cmd"]
    );

    // The inherited CMD does not survive a new ENTRYPOINT...
    let ctx = env.context(&[(
        "Dockerfile",
        "FROM parent\nENTRYPOINT [\"echo\", \"entry\"]\n",
    )]);
    env.build_ok(&ctx, &["-t", "child-reset"]);
    let c = env.config("child-reset");
    assert_eq!(strings(&c["Entrypoint"]), ["echo", "entry"]);
    assert!(c["Cmd"].is_null(), "inherited Cmd kept: {}", c["Cmd"]);
    assert_eq!(env.run_default("child-reset"), "entry\n");

    // ...but one set in the same stage does, in either order.
    let ctx = env.context(&[(
        "Dockerfile",
        "FROM parent\nCMD [\"a\", \"b\"]\nENTRYPOINT echo shell-entry\n",
    )]);
    env.build_ok(&ctx, &["-t", "child-keep"]);
    let c = env.config("child-keep");
    assert_eq!(
        strings(&c["Entrypoint"]),
        ["/bin/sh", "-c", "echo shell-entry"]
    );
    assert_eq!(strings(&c["Cmd"]), ["a", "b"]);

    let ctx = env.context(&[(
        "Dockerfile",
        "FROM parent\nENTRYPOINT [\"echo\", \"e\"]\nCMD c1 c2\n",
    )]);
    env.build_ok(&ctx, &["-t", "child-exec"]);
    let c = env.config("child-exec");
    assert_eq!(strings(&c["Cmd"]), ["/bin/sh", "-c", "c1 c2"]);
    assert_eq!(env.run_default("child-exec"), "e /bin/sh -c c1 c2\n");
}

#[test]
fn env_and_arg_substitution_follow_the_reference() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"ARG BASE=local/busybox:latest
ARG GLOBAL=global-default
ARG NOT_REDECLARED=invisible
FROM ${BASE}
ARG GLOBAL
ARG UNSET
ARG SET=value
ARG CLI=cli-default
ENV A=${UNSET:-fallback} B=${SET:+alt} C=${UNSET:+alt} D=${SET:-unused} \
    G=${GLOBAL} N=x${NOT_REDECLARED}x
ARG OVER=from-arg
ENV OVER=from-env
RUN echo "$OVER $CLI $GLOBAL" > /seen
"#,
    )]);
    env.build_ok(&ctx, &["-t", "vars", "--build-arg", "CLI=from-cli"]);
    let c = env.config("vars");
    assert_eq!(env_value(&c, "A").as_deref(), Some("fallback"));
    assert_eq!(env_value(&c, "B").as_deref(), Some("alt"));
    assert_eq!(env_value(&c, "C").as_deref(), Some(""));
    assert_eq!(env_value(&c, "D").as_deref(), Some("value"));
    assert_eq!(env_value(&c, "G").as_deref(), Some("global-default"));
    assert_eq!(env_value(&c, "N").as_deref(), Some("xx"));
    assert_eq!(env_value(&c, "OVER").as_deref(), Some("from-env"));
    // ARGs are build-time only.
    assert_eq!(env_value(&c, "CLI"), None);
    assert_eq!(
        env.run("vars", &["cat", "/seen"]),
        "from-env from-cli global-default\n"
    );

    // --build-arg reaches a global ARG, and so FROM and the stage's copy.
    env.build_ok(
        &ctx,
        &[
            "-t",
            "vars2",
            "--build-arg",
            "GLOBAL=from-cli",
            "--build-arg",
            "BASE=vars",
        ],
    );
    let c = env.config("vars2");
    assert_eq!(env_value(&c, "G").as_deref(), Some("from-cli"));
    assert_eq!(
        env.run("vars2", &["cat", "/seen"]),
        "from-env cli-default from-cli\n"
    );
}

#[test]
fn an_arg_change_reruns_the_first_run_after_it_but_not_the_steps_before() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
RUN echo before > /before
ENV STILL=cached
ARG V=1
RUN echo "$V" > /v
RUN echo after > /after
"#,
    )]);
    let first = env.build_ok(&ctx, &["-t", "argcache", "--build-arg", "V=1"]);
    assert!(first.contains("(4 steps run, 0 cached)"), "{first}");
    let same = env.build_ok(&ctx, &["-t", "argcache", "--build-arg", "V=1"]);
    assert!(same.contains("(0 steps run, 4 cached)"), "{same}");
    let changed = env.build_ok(&ctx, &["-t", "argcache", "--build-arg", "V=2"]);
    assert!(changed.contains("(2 steps run, 2 cached)"), "{changed}");
    assert!(
        step_cached(&changed, "RUN echo before > /before"),
        "{changed}"
    );
    assert!(!step_cached(&changed, "RUN echo \"$V\" > /v"), "{changed}");
    assert_eq!(env.run("argcache", &["cat", "/v"]), "2\n");
}

/// Whether the `--progress plain` log marks the step titled `title` CACHED.
fn step_cached(log: &str, title: &str) -> bool {
    let lines: Vec<&str> = log.lines().collect();
    let Some(i) = lines.iter().position(|l| l.ends_with(title)) else {
        panic!("no step {title:?} in the log:\n{log}");
    };
    let id = lines[i].split_whitespace().next().unwrap_or_default();
    lines[i + 1..]
        .iter()
        .any(|l| l.starts_with(&format!("{id} CACHED")))
}

#[test]
fn metadata_instructions_land_in_the_config_as_docker_stores_them() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
MAINTAINER Jane Doe <jane@example.com>
LABEL a=1 "b c"="d e"
LABEL a=2
EXPOSE 80 53/udp
VOLUME ["/data", "/logs"]
VOLUME /more
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=4 CMD test -f /tmp/ok || exit 1
USER app
ONBUILD RUN echo "triggered as $(id -un)" > /tmp/onbuild
ONBUILD ENV FROM_ONBUILD=yes
ONBUILD COPY a.txt /from-child-context
"#,
    )]);
    env.build_ok(&ctx, &["-t", "meta"]);
    let image = env.inspect("meta");
    assert_eq!(image["Author"], "Jane Doe <jane@example.com>");
    let c = &image["Config"];
    assert_eq!(c["Labels"], serde_json::json!({"a": "2", "b c": "d e"}));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "53/udp": {}})
    );
    assert_eq!(
        c["Volumes"],
        serde_json::json!({"/data": {}, "/logs": {}, "/more": {}})
    );
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(c["User"], "app");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({
            "Test": ["CMD-SHELL", "test -f /tmp/ok || exit 1"],
            "Interval": 5_000_000_000u64,
            "Timeout": 3_000_000_000u64,
            "StartPeriod": 1_000_000_000u64,
            "Retries": 4,
        })
    );
    assert_eq!(
        strings(&c["OnBuild"]),
        [
            "RUN echo \"triggered as $(id -un)\" > /tmp/onbuild",
            "ENV FROM_ONBUILD=yes",
            "COPY a.txt /from-child-context"
        ]
    );
    // No trigger runs in the image that declares it.
    assert_eq!(env_value(c, "FROM_ONBUILD"), None);

    let ctx = env.context(&[
        (
            "Dockerfile",
            "FROM meta\nHEALTHCHECK NONE\nRUN cat /tmp/onbuild /from-child-context > /tmp/seen\n",
        ),
        ("a.txt", "child's context\n"),
    ]);
    env.build_ok(&ctx, &["-t", "meta-child"]);
    let c = env.config("meta-child");
    assert!(
        c["OnBuild"].is_null(),
        "child kept OnBuild: {}",
        c["OnBuild"]
    );
    assert_eq!(env_value(&c, "FROM_ONBUILD").as_deref(), Some("yes"));
    assert_eq!(c["Healthcheck"], serde_json::json!({"Test": ["NONE"]}));
    assert_eq!(
        env.run("meta-child", &["cat", "/tmp/seen"]),
        "triggered as app\nchild's context\n"
    );
    assert_eq!(env.run("meta-child", &["id", "-un"]), "app\n");

    // A grandchild does not run the triggers again.
    let ctx = env.context(&[("Dockerfile", "FROM meta-child\nRUN true\n")]);
    let log = env.build_ok(&ctx, &["-t", "meta-grandchild"]);
    assert!(!log.contains("ONBUILD"), "a trigger ran again:\n{log}");
}

#[test]
fn relative_workdirs_chain_and_every_one_exists() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
WORKDIR /a
WORKDIR b
WORKDIR c
RUN pwd > /in-abc
WORKDIR /x/y
ENV BASE=/e
WORKDIR $BASE/f
WORKDIR ../g
"#,
    )]);
    env.build_ok(&ctx, &["-t", "wd"]);
    assert_eq!(env.config("wd")["WorkingDir"], "/e/g");
    let out = env.run(
        "wd",
        &[
            "sh",
            "-c",
            "pwd; cat /in-abc; for d in /a/b/c /x/y /e/f /e/g; do test -d $d && echo $d; done",
        ],
    );
    assert_eq!(out, "/e/g\n/a/b/c\n/a/b/c\n/x/y\n/e/f\n/e/g\n");
}

#[test]
fn target_builds_only_the_stages_it_needs() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest AS base
RUN echo base > /base
FROM base AS lib
RUN echo lib > /lib.txt
FROM local/busybox:latest AS broken
RUN echo broken-ran; exit 3
FROM local/busybox:latest AS final
COPY --from=0 /base /from0
COPY --from=lib /lib.txt /fromlib
COPY --from=local/busybox:latest /bin/busybox /x
FROM broken AS last
"#,
    )]);
    let log = env.build_ok(&ctx, &["-t", "final", "--target", "final"]);
    assert!(
        !log.contains("[broken "),
        "the unneeded stage was built:\n{log}"
    );
    assert!(
        !log.contains("broken-ran"),
        "the unneeded stage ran:\n{log}"
    );
    let out = env.run(
        "final",
        &[
            "sh",
            "-c",
            "cat /from0 /fromlib; cmp /x /bin/busybox && stat -c %a /x",
        ],
    );
    assert_eq!(out, "base\nlib\n755\n");

    // A stage FROM a previous stage has its files.
    env.build_ok(&ctx, &["-t", "lib", "--target", "lib"]);
    assert_eq!(env.run("lib", &["cat", "/base", "/lib.txt"]), "base\nlib\n");

    // Without --target the last stage needs the broken one.
    let out = env.build(&ctx, &["-t", "last"]);
    assert!(!out.status.success(), "the failing stage did not fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken-ran"), "{err}");
    assert!(err.contains('3'), "exit code not reported: {err}");
}

#[test]
fn copy_sources_destinations_ownership_and_modes() {
    let Some(env) = Env::new() else { return };
    let archive = features::tar_gz(&[("top.txt", "in the tarball\n"), ("sub/deep.txt", "deep\n")]);
    let ctx = env.context_with(
        &[
            (
                "Dockerfile",
                r#"FROM local/busybox:latest
COPY *.txt /globs/
COPY dir /contents/
COPY dir /contents2
COPY a.txt /tmp
COPY a.txt /noslash
COPY a.txt /withslash/
COPY a.txt b.txt /multi/
COPY --chown=app:app a.txt /owned
COPY --chmod=0600 a.txt /private
COPY --chown=app --chmod=640 dir /ownedtree/
ADD arch.tar.gz /unpacked/
COPY arch.tar.gz /packed/
"#,
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("c.md", "c\n"),
            ("dir/one", "1\n"),
            ("dir/sub/two", "2\n"),
        ],
        &[("arch.tar.gz", &archive)],
    );
    env.build_ok(&ctx, &["-t", "copies"]);
    let out = env.run(
        "copies",
        &[
            "sh",
            "-c",
            "cd / && find globs contents contents2 withslash multi unpacked packed | sort; \
             ls /tmp; \
             test -f /noslash && cat /noslash; \
             stat -c '%n %U:%G %a' /owned /private /ownedtree/one /ownedtree/sub/two",
        ],
    );
    assert_eq!(
        out,
        "contents\ncontents/one\ncontents/sub\ncontents/sub/two\n\
         contents2\ncontents2/one\ncontents2/sub\ncontents2/sub/two\n\
         globs\nglobs/a.txt\nglobs/b.txt\n\
         multi\nmulti/a.txt\nmulti/b.txt\n\
         packed\npacked/arch.tar.gz\n\
         unpacked\nunpacked/sub\nunpacked/sub/deep.txt\nunpacked/top.txt\n\
         withslash\nwithslash/a.txt\n\
         a.txt\n\
         a\n\
         /owned app:app 644\n/private root:root 600\n\
         /ownedtree/one app:app 640\n/ownedtree/sub/two app:app 640\n"
    );
}

#[test]
fn several_sources_need_a_directory_destination() {
    let Some(env) = Env::new() else { return };
    for (line, what) in [
        ("COPY a.txt b.txt /multi", "two named sources"),
        ("COPY *.txt /multi", "a wildcard matching two files"),
    ] {
        let ctx = env.context(&[
            (
                "Dockerfile",
                &format!("FROM local/busybox:latest\n{line}\n"),
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
        ]);
        let out = env.build(&ctx, &["-t", "multi"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: built without a trailing /");
        assert!(
            err.contains("must be a directory and end with a /"),
            "{what}: {err}"
        );
    }
    // One wildcard match is a single source: no slash needed.
    let ctx = env.context(&[
        (
            "Dockerfile",
            "FROM local/busybox:latest\nCOPY a.* /single\n",
        ),
        ("a.txt", "a\n"),
    ]);
    env.build_ok(&ctx, &["-t", "single"]);
    assert_eq!(env.run("single", &["cat", "/single"]), "a\n");
}

#[test]
fn dockerignore_exceptions_and_a_dockerfile_specific_ignore_file() {
    let Some(env) = Env::new() else { return };
    let dockerfile = "FROM local/busybox:latest\nCOPY . /ctx/\n";
    let files: Files = &[
        ("Dockerfile", dockerfile),
        ("build/app.Dockerfile", dockerfile),
        (".dockerignore", "*.log\n!keep.log\nsecret/\nbuild\n"),
        ("build/app.Dockerfile.dockerignore", "ok.txt\n"),
        ("a.log", "a\n"),
        ("keep.log", "k\n"),
        ("ok.txt", "ok\n"),
        ("secret/s", "s\n"),
    ];
    let ctx = env.context(files);
    env.build_ok(&ctx, &["-t", "ign"]);
    let list = |image| env.run(image, &["sh", "-c", "cd /ctx && find . | sort"]);
    assert_eq!(
        list("ign"),
        ".\n./.dockerignore\n./Dockerfile\n./keep.log\n./ok.txt\n"
    );

    let file = ctx.join("build/app.Dockerfile");
    env.build_ok(&ctx, &["-t", "ign-f", "-f", file.to_str().unwrap()]);
    assert_eq!(
        list("ign-f"),
        ".\n./.dockerignore\n./Dockerfile\n./a.log\n./build\n./build/app.Dockerfile\n\
         ./build/app.Dockerfile.dockerignore\n./keep.log\n./secret\n./secret/s\n"
    );
}

#[test]
fn deletions_are_whiteouts_and_replaced_directories_are_opaque() {
    let Some(env) = Env::new() else { return };
    let ctx = env.context(&[(
        "Dockerfile",
        r#"FROM local/busybox:latest
RUN echo hi > /etc/motd && mkdir -p /opt/d/sub && echo old > /opt/d/old && echo o > /opt/d/sub/o
RUN rm /etc/motd /linuxrc
RUN rm -rf /opt/d && mkdir /opt/d && echo new > /opt/d/new
"#,
    )]);
    env.build_ok(&ctx, &["-t", "wh"]);
    let check = "ls -a /opt/d; for f in /etc/motd /linuxrc /opt/d/old /opt/d/sub; do \
                 [ -e $f ] || [ -L $f ] && echo present $f; done; cat /opt/d/new";
    let want = ".\n..\nnew\nnew\n";
    assert_eq!(env.run("wh", &["sh", "-c", check]), want, "overlay bundle");
    assert_eq!(
        env.run_copy("wh", &["sh", "-c", check]),
        want,
        "--copy bundle"
    );

    // As OCI layers: a `.wh.` entry per deleted name, and the replaced
    // directory's own layer marks it opaque.
    let layers = env.layer_entries("wh");
    let n = layers.len();
    assert_eq!(n, 4, "base + 3 RUN layers");
    let rm = &layers[n - 2];
    assert!(rm.iter().any(|e| e == "etc/.wh.motd"), "{rm:?}");
    assert!(rm.iter().any(|e| e == ".wh.linuxrc"), "{rm:?}");
    let replaced = &layers[n - 1];
    assert!(
        replaced.iter().any(|e| e == "opt/d/.wh..wh..opq"),
        "{replaced:?}"
    );
    assert!(replaced.iter().any(|e| e == "opt/d/new"), "{replaced:?}");
}

#[test]
fn a_hundred_and_twenty_layers_build_bundle_and_are_all_visible() {
    let Some(env) = Env::new() else { return };
    let mut dockerfile = String::from("FROM local/busybox:latest\n");
    for i in 1..=120 {
        dockerfile.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    let ctx = env.context(&[("Dockerfile", &dockerfile)]);
    env.build_ok(&ctx, &["-t", "many"]);
    assert_eq!(strings(&env.inspect("many")["RootFS"]["Layers"]).len(), 121);
    // keel-build mounts bundles in our namespace: the overlay is visible here.
    let bundle = env.bundle(
        "many",
        false,
        &[
            "sh",
            "-c",
            "n=0; for i in $(seq 1 120); do [ \"$(cat /f$i)\" = $i ] && n=$((n+1)); done; echo $n",
        ],
    );
    let rootfs = bundle.dir.join("rootfs");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not a mount point", rootfs.display()));
    // The kernel shows `lowerdir=a:b:...` or, for mounts made with
    // fsconfig, one `lowerdir+=` option per layer.
    let options = line.split(' ').flat_map(|f| f.split(','));
    let lower: usize = options
        .map(|o| {
            if let Some(list) = o.strip_prefix("lowerdir=") {
                list.split(':').count()
            } else {
                usize::from(o.starts_with("lowerdir+="))
            }
        })
        .sum();
    assert_eq!(lower, 121, "{line}");
    assert_eq!(env.run_in(&bundle), "120\n");
}
