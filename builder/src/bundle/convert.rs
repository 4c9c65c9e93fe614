//! Image configuration -> runtime `config.json`, following the image-spec's
//! "Conversion to OCI Runtime Configuration" on top of Docker-like defaults.
//!
//! The defaults are those of `runc spec` except where Docker's differ and an
//! image built for Docker would notice: Docker's default capability set (an
//! image's `RUN chown`/`apt-get` needs CHOWN, SETUID, ...), no
//! `noNewPrivileges` (setuid binaries such as `su` work under Docker), a
//! writable root, and no terminal.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use super::{resolve_user, BundleError};

/// Where anonymous volumes live, relative to the bundle directory.
/// `write_bundle` creates `volumes/<n>` for the n-th volume of the spec.
pub const VOLUMES_DIR: &str = "volumes";

/// Docker's PATH for images that set none.
use crate::defaults::{DEFAULT_PATH, DOCKER_CAPABILITIES, MASKED_PATHS, READONLY_PATHS};

const ANNOTATION_OS: &str = "org.opencontainers.image.os";
const ANNOTATION_ARCH: &str = "org.opencontainers.image.architecture";
const ANNOTATION_VARIANT: &str = "org.opencontainers.image.variant";
const ANNOTATION_OS_VERSION: &str = "org.opencontainers.image.os.version";
const ANNOTATION_OS_FEATURES: &str = "org.opencontainers.image.os.features";
const ANNOTATION_AUTHOR: &str = "org.opencontainers.image.author";
const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
const ANNOTATION_STOP_SIGNAL: &str = "org.opencontainers.image.stopSignal";
const ANNOTATION_EXPOSED_PORTS: &str = "org.opencontainers.image.exposedPorts";

/// How the container is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Its own network namespace. Today that holds only loopback, like
    /// `None`; it is separate so that a network setup can be attached later
    /// without callers changing what they ask for.
    #[default]
    Private,
    /// The host's network namespace, with the host's `/etc/resolv.conf`
    /// and `/etc/hosts` bind-mounted read-only so that names resolve.
    Host,
    /// A network namespace with loopback only.
    None,
}

/// What a caller (a `RUN` step, a shim's `run`/`create`) overrides in the
/// image's defaults. `Default` runs the image as it says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecOptions {
    /// Replaces the image's Cmd (`docker run IMAGE ARGS...`).
    pub args: Option<Vec<String>>,
    /// Replaces the image's Entrypoint; as in Docker, doing so also drops the
    /// image's Cmd, so only `args` follow it. `Some(vec![])` clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` entries that replace the image's value of KEY or are added.
    pub env: Vec<String>,
    /// Replaces WorkingDir; must be absolute.
    pub cwd: Option<String>,
    /// Replaces User, in the same `user[:group]` syntax.
    pub user: Option<String>,
    /// The container's hostname; none is set when `None`.
    pub hostname: Option<String>,
    /// Allocate a terminal (adds `TERM=xterm` when the image sets no TERM).
    pub terminal: bool,
    pub network: Network,
}

/// Converts an image configuration to a runtime spec, with `rootfs` (the
/// unpacked or mounted image) used to resolve the user. `root.path` is
/// `"rootfs"`, relative to the bundle, whatever `rootfs` is.
pub fn image_to_spec(
    config: &ImageConfiguration,
    rootfs: &Path,
    opts: &SpecOptions,
) -> Result<Spec, BundleError> {
    let empty = oci_spec::image::Config::default();
    let image = config.config().as_ref().unwrap_or(&empty);

    let args = process_args(image, opts)?;
    let env = process_env(image, opts)?;
    let cwd = match opts.cwd.as_deref().or(image.working_dir().as_deref()) {
        None | Some("") => "/".to_string(),
        Some(dir) if dir.starts_with('/') => dir.to_string(),
        Some(dir) => {
            return Err(BundleError::InvalidPath {
                field: if opts.cwd.is_some() {
                    "working directory override"
                } else {
                    "image WorkingDir"
                },
                value: dir.to_string(),
                reason: "must be an absolute path",
            })
        }
    };
    let user_spec = opts
        .user
        .as_deref()
        .or(image.user().as_deref())
        .unwrap_or("");
    let user = resolve_user(rootfs, user_spec)?;

    let spec_err = |field: &'static str| move |source| BundleError::Spec { field, source };

    let mut user_builder = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !user.additional_gids.is_empty() {
        user_builder = user_builder.additional_gids(user.additional_gids.clone());
    }
    let caps: Capabilities = docker_default_capabilities().into_iter().collect();
    // The builders start from oci-spec's (youki's) defaults, not from empty:
    // anything not set below would come from there, so unset what Docker
    // leaves unset (inheritable and ambient caps would otherwise be granted).
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(spec_err("process.capabilities"))?;
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    let process = ProcessBuilder::default()
        .terminal(opts.terminal)
        .user(user_builder.build().map_err(spec_err("process.user"))?)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()
            .map_err(spec_err("process.rlimits"))?])
        .no_new_privileges(false)
        .build()
        .map_err(spec_err("process"))?;

    let mut mounts = default_mounts().map_err(spec_err("mounts"))?;
    if opts.network == Network::Host {
        for file in ["/etc/resolv.conf", "/etc/hosts"] {
            if Path::new(file).exists() {
                mounts.push(bind_mount(file, file, &["rbind", "ro"]).map_err(spec_err("mounts"))?);
            }
        }
    }
    for (n, dest) in volume_paths(image)?.iter().enumerate() {
        let source = format!("{VOLUMES_DIR}/{n}");
        mounts.push(bind_mount(&source, dest, &["rbind", "rprivate"]).map_err(spec_err("mounts"))?);
    }

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()
                .map_err(spec_err("root"))?,
        )
        .process(process)
        .mounts(mounts)
        .annotations(annotations(config))
        .linux(default_linux(opts.network)?)
        .build()
        .map_err(spec_err("spec"))?;
    // Unset, the default would be oci-spec's "youki".
    spec.set_hostname(opts.hostname.clone());
    Ok(spec)
}

fn process_args(
    image: &oci_spec::image::Config,
    opts: &SpecOptions,
) -> Result<Vec<String>, BundleError> {
    let (entrypoint, cmd) = match &opts.entrypoint {
        Some(ep) => (ep.clone(), opts.args.clone().unwrap_or_default()),
        None => (
            image.entrypoint().clone().unwrap_or_default(),
            opts.args
                .clone()
                .or_else(|| image.cmd().clone())
                .unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(BundleError::NoCommand);
    }
    Ok(args)
}

fn env_key(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(k, _)| k)
}

fn process_env(
    image: &oci_spec::image::Config,
    opts: &SpecOptions,
) -> Result<Vec<String>, BundleError> {
    // The image's entries are kept verbatim (conversion.md), overrides
    // replace an entry of the same name where it stands so that the order a
    // user sees in `env` stays the image's.
    let mut env: Vec<String> = image.env().clone().unwrap_or_default();
    for entry in &opts.env {
        match entry.split_once('=') {
            Some((key, _)) if !key.is_empty() => match env.iter_mut().find(|e| env_key(e) == key) {
                Some(existing) => existing.clone_from(entry),
                None => env.push(entry.clone()),
            },
            _ => {
                return Err(BundleError::InvalidEnv {
                    entry: entry.clone(),
                    origin: "environment overrides",
                })
            }
        }
    }
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    if opts.terminal && !env.iter().any(|e| env_key(e) == "TERM") {
        env.push("TERM=xterm".to_string());
    }
    Ok(env)
}

/// The image's volumes as clean absolute paths, sorted so that numbering is
/// stable and a parent is mounted before a volume nested in it.
fn volume_paths(image: &oci_spec::image::Config) -> Result<Vec<String>, BundleError> {
    let mut out = BTreeSet::new();
    for raw in image.volumes().iter().flatten() {
        let invalid = |reason| BundleError::InvalidPath {
            field: "image volume",
            value: raw.clone(),
            reason,
        };
        if !raw.starts_with('/') {
            return Err(invalid("must be an absolute path"));
        }
        let mut parts: Vec<&str> = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() {
            return Err(invalid("a volume cannot be mounted over /"));
        }
        out.insert(format!("/{}", parts.join("/")));
    }
    Ok(out.into_iter().collect())
}

fn annotations(config: &ImageConfiguration) -> HashMap<String, String> {
    let mut a = HashMap::new();
    a.insert(ANNOTATION_OS.to_string(), config.os().to_string());
    a.insert(
        ANNOTATION_ARCH.to_string(),
        config.architecture().to_string(),
    );
    let optional = [
        (ANNOTATION_VARIANT, config.variant().clone()),
        (ANNOTATION_OS_VERSION, config.os_version().clone()),
        (
            ANNOTATION_OS_FEATURES,
            config.os_features().as_ref().map(|f| f.join(",")),
        ),
        (ANNOTATION_AUTHOR, config.author().clone()),
        (ANNOTATION_CREATED, config.created().clone()),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            a.insert(key.to_string(), v);
        }
    }
    if let Some(image) = config.config() {
        if let Some(sig) = image.stop_signal() {
            a.insert(ANNOTATION_STOP_SIGNAL.to_string(), sig.clone());
        }
        if let Some(ports) = image.exposed_ports() {
            // The image stores them as a map, so their order is not
            // meaningful; sorting keeps config.json reproducible.
            let ports: BTreeSet<&str> = ports.iter().map(String::as_str).collect();
            if !ports.is_empty() {
                let joined: Vec<&str> = ports.into_iter().collect();
                a.insert(ANNOTATION_EXPOSED_PORTS.to_string(), joined.join(","));
            }
        }
        // Labels last: conversion.md gives an explicit label precedence over
        // every implicit annotation of the same key.
        for (k, v) in image.labels().iter().flatten() {
            a.insert(k.clone(), v.clone());
        }
    }
    a
}

fn docker_default_capabilities() -> Vec<Capability> {
    DOCKER_CAPABILITIES
        .iter()
        .filter_map(|c| serde_json::from_value::<Capability>(serde_json::Value::from(*c)).ok())
        .collect()
}

fn mount(
    dest: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, oci_spec::OciSpecError> {
    let mut b = MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source);
    if !options.is_empty() {
        b = b.options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
    b.build()
}

fn bind_mount(source: &str, dest: &str, options: &[&str]) -> Result<Mount, oci_spec::OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(PathBuf::from(source))
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
}

fn default_mounts() -> Result<Vec<Mount>, oci_spec::OciSpecError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &[])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ])
}

fn default_linux(network: Network) -> Result<oci_spec::runtime::Linux, BundleError> {
    let spec_err = |field: &'static str| move |source| BundleError::Spec { field, source };
    let mut kinds = vec![LinuxNamespaceType::Pid];
    if network != Network::Host {
        kinds.push(LinuxNamespaceType::Network);
    }
    kinds.extend([
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]);
    let namespaces = kinds
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(spec_err("linux.namespaces"))?;

    // Deny every device, then allow the ones the default /dev holds (the
    // runtime creates them) and mknod of any (so that images can create
    // device nodes in their own tree, which cannot then be opened).
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build()
    };
    use LinuxDeviceType::{A, B, C};
    let devices = vec![
        rule(false, A, None, None, "rwm"),
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"), // null
        rule(true, C, Some(1), Some(5), "rwm"), // zero
        rule(true, C, Some(1), Some(7), "rwm"), // full
        rule(true, C, Some(1), Some(8), "rwm"), // random
        rule(true, C, Some(1), Some(9), "rwm"), // urandom
        rule(true, C, Some(5), Some(0), "rwm"), // tty
        rule(true, C, Some(5), Some(2), "rwm"), // ptmx
        rule(true, C, Some(136), None, "rwm"),  // pts/*
    ]
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map_err(spec_err("linux.resources.devices"))?;

    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(
            LinuxResourcesBuilder::default()
                .devices(devices)
                .build()
                .map_err(spec_err("linux.resources"))?,
        )
        .masked_paths(strings(&MASKED_PATHS))
        .readonly_paths(strings(&READONLY_PATHS))
        .build()
        .map_err(spec_err("linux"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn image(config: serde_json::Value) -> ImageConfiguration {
        serde_json::from_value(serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "author": "someone",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap()
    }

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(dir.path().join("etc/group"), "root:x:0:\nusers:x:100:app\n").unwrap();
        dir
    }

    fn convert(config: serde_json::Value, opts: &SpecOptions) -> Result<Spec, BundleError> {
        let r = rootfs();
        image_to_spec(&image(config), r.path(), opts)
    }

    fn process(spec: &Spec) -> &oci_spec::runtime::Process {
        spec.process().as_ref().unwrap()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_are_entrypoint_then_cmd() {
        let cfg = serde_json::json!({"Entrypoint": ["/ep", "-x"], "Cmd": ["serve"]});
        let spec = convert(cfg.clone(), &SpecOptions::default()).unwrap();
        assert_eq!(
            process(&spec).args().as_ref().unwrap(),
            &strings(&["/ep", "-x", "serve"])
        );

        let cmd_only = convert(
            serde_json::json!({"Cmd": ["sh", "-c", "true"]}),
            &SpecOptions::default(),
        )
        .unwrap();
        assert_eq!(
            process(&cmd_only).args().as_ref().unwrap(),
            &strings(&["sh", "-c", "true"])
        );

        // args replace Cmd but keep the Entrypoint, as `docker run IMAGE ARGS`.
        let opts = SpecOptions {
            args: Some(strings(&["selftest"])),
            ..Default::default()
        };
        let spec = convert(cfg.clone(), &opts).unwrap();
        assert_eq!(
            process(&spec).args().as_ref().unwrap(),
            &strings(&["/ep", "-x", "selftest"])
        );

        // A new entrypoint drops the image's Cmd.
        let opts = SpecOptions {
            entrypoint: Some(strings(&["/bin/sh"])),
            ..Default::default()
        };
        let spec = convert(cfg, &opts).unwrap();
        assert_eq!(
            process(&spec).args().as_ref().unwrap(),
            &strings(&["/bin/sh"])
        );
    }

    #[test]
    fn no_command_is_an_error_unless_args_are_given() {
        let err = convert(serde_json::json!({}), &SpecOptions::default()).unwrap_err();
        assert!(matches!(err, BundleError::NoCommand), "{err}");
        let opts = SpecOptions {
            args: Some(strings(&["/bin/true"])),
            ..Default::default()
        };
        let spec = convert(serde_json::json!({}), &opts).unwrap();
        assert_eq!(
            process(&spec).args().as_ref().unwrap(),
            &strings(&["/bin/true"])
        );
        // Clearing the entrypoint with nothing after it leaves nothing to run.
        let opts = SpecOptions {
            entrypoint: Some(vec![]),
            ..Default::default()
        };
        let err = convert(serde_json::json!({"Cmd": ["x"]}), &opts).unwrap_err();
        assert!(matches!(err, BundleError::NoCommand), "{err}");
    }

    #[test]
    fn env_is_the_images_with_overrides_and_a_default_path() {
        let cfg = serde_json::json!({"Cmd": ["x"], "Env": ["A=1", "B=2"]});
        let opts = SpecOptions {
            env: strings(&["B=3", "C=4=5"]),
            ..Default::default()
        };
        let spec = convert(cfg, &opts).unwrap();
        assert_eq!(
            process(&spec).env().as_ref().unwrap(),
            &strings(&["A=1", "B=3", "C=4=5", DEFAULT_PATH])
        );

        let cfg = serde_json::json!({"Cmd": ["x"], "Env": ["PATH=/opt/bin"]});
        let opts = SpecOptions {
            terminal: true,
            ..Default::default()
        };
        let spec = convert(cfg, &opts).unwrap();
        assert_eq!(
            process(&spec).env().as_ref().unwrap(),
            &strings(&["PATH=/opt/bin", "TERM=xterm"])
        );
        assert_eq!(process(&spec).terminal(), Some(true));
    }

    #[test]
    fn env_override_without_equals_is_an_error() {
        let opts = SpecOptions {
            env: strings(&["NOVALUE"]),
            ..Default::default()
        };
        let err = convert(serde_json::json!({"Cmd": ["x"]}), &opts).unwrap_err();
        assert!(err.to_string().contains("\"NOVALUE\""), "{err}");
    }

    #[test]
    fn cwd_from_working_dir_override_or_root() {
        let spec = convert(serde_json::json!({"Cmd": ["x"]}), &SpecOptions::default()).unwrap();
        assert_eq!(process(&spec).cwd(), Path::new("/"));
        let cfg = serde_json::json!({"Cmd": ["x"], "WorkingDir": "/srv/app"});
        let spec = convert(cfg.clone(), &SpecOptions::default()).unwrap();
        assert_eq!(process(&spec).cwd(), Path::new("/srv/app"));
        let opts = SpecOptions {
            cwd: Some("/tmp".into()),
            ..Default::default()
        };
        assert_eq!(
            process(&convert(cfg, &opts).unwrap()).cwd(),
            Path::new("/tmp")
        );
        let err = convert(
            serde_json::json!({"Cmd": ["x"], "WorkingDir": "rel"}),
            &SpecOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("WorkingDir \"rel\""), "{err}");
    }

    #[test]
    fn user_is_resolved_in_the_rootfs() {
        let spec = convert(
            serde_json::json!({"Cmd": ["x"], "User": "app"}),
            &SpecOptions::default(),
        )
        .unwrap();
        let user = process(&spec).user();
        assert_eq!((user.uid(), user.gid()), (1000, 1000));
        assert_eq!(user.additional_gids().as_ref().unwrap(), &vec![100]);

        let opts = SpecOptions {
            user: Some("0:100".into()),
            ..Default::default()
        };
        let spec = convert(serde_json::json!({"Cmd": ["x"], "User": "app"}), &opts).unwrap();
        let user = process(&spec).user();
        assert_eq!((user.uid(), user.gid()), (0, 100));
        assert!(user.additional_gids().is_none());

        let err = convert(
            serde_json::json!({"Cmd": ["x"], "User": "nobody"}),
            &SpecOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unable to find user nobody: no matching entries in passwd file"),
            "{err}"
        );
    }

    #[test]
    fn labels_become_annotations_and_win_over_implicit_ones() {
        let cfg = serde_json::json!({
            "Cmd": ["x"],
            "Labels": {"com.example.a": "1", "org.opencontainers.image.os": "from-label"},
            "StopSignal": "SIGQUIT",
            "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}
        });
        let spec = convert(cfg, &SpecOptions::default()).unwrap();
        let a = spec.annotations().as_ref().unwrap();
        assert_eq!(a["com.example.a"], "1");
        assert_eq!(a[ANNOTATION_OS], "from-label");
        assert_eq!(a[ANNOTATION_ARCH], "amd64");
        assert_eq!(a[ANNOTATION_AUTHOR], "someone");
        assert_eq!(a[ANNOTATION_CREATED], "2024-01-02T03:04:05Z");
        assert_eq!(a[ANNOTATION_STOP_SIGNAL], "SIGQUIT");
        assert_eq!(a[ANNOTATION_EXPOSED_PORTS], "53/udp,8080/tcp");
        assert!(!a.contains_key(ANNOTATION_VARIANT));
    }

    #[test]
    fn volumes_become_numbered_bind_mounts_in_path_order() {
        let cfg = serde_json::json!({
            "Cmd": ["x"],
            "Volumes": {"/var/lib/db/": {}, "/data": {}, "/data/./cache": {}}
        });
        let spec = convert(cfg, &SpecOptions::default()).unwrap();
        let vols: Vec<(String, String, Vec<String>)> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|m| m.typ().as_deref() == Some("bind"))
            .map(|m| {
                (
                    m.destination().display().to_string(),
                    m.source().as_ref().unwrap().display().to_string(),
                    m.options().clone().unwrap(),
                )
            })
            .collect();
        let opts = strings(&["rbind", "rprivate"]);
        assert_eq!(
            vols,
            vec![
                ("/data".into(), "volumes/0".into(), opts.clone()),
                ("/data/cache".into(), "volumes/1".into(), opts.clone()),
                ("/var/lib/db".into(), "volumes/2".into(), opts),
            ]
        );
        let err = convert(
            serde_json::json!({"Cmd": ["x"], "Volumes": {"rel": {}}}),
            &SpecOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("image volume \"rel\""), "{err}");
        let err = convert(
            serde_json::json!({"Cmd": ["x"], "Volumes": {"/..": {}}}),
            &SpecOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, BundleError::InvalidPath { .. }), "{err}");
    }

    #[test]
    fn defaults_are_dockers_where_runc_spec_differs() {
        let spec = convert(serde_json::json!({"Cmd": ["x"]}), &SpecOptions::default()).unwrap();
        let p = process(&spec);
        assert_eq!(p.terminal(), Some(false));
        assert_eq!(p.no_new_privileges(), Some(false));
        let caps = p.capabilities().as_ref().unwrap();
        let bounding = caps.bounding().as_ref().unwrap();
        assert_eq!(bounding.len(), 14);
        assert!(bounding.contains(&Capability::Chown) && bounding.contains(&Capability::SysChroot));
        assert!(!bounding.contains(&Capability::SysAdmin));
        assert_eq!(caps.effective(), caps.bounding());
        assert!(caps.ambient().is_none() && caps.inheritable().is_none());
        let rl = &p.rlimits().as_ref().unwrap()[0];
        assert_eq!(
            (rl.typ(), rl.soft(), rl.hard()),
            (PosixRlimitType::RlimitNofile, 1024, 1024)
        );
        let root = spec.root().as_ref().unwrap();
        assert_eq!(
            (root.path().as_path(), root.readonly()),
            (Path::new("rootfs"), Some(false))
        );
        let dests: Vec<String> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            strings(&[
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ])
        );
        let ns: Vec<LinuxNamespaceType> = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(
            ns.contains(&LinuxNamespaceType::Network) && ns.contains(&LinuxNamespaceType::Cgroup)
        );
        assert!(spec.hostname().is_none());
    }

    #[test]
    fn host_network_drops_the_network_namespace() {
        let opts = SpecOptions {
            network: Network::Host,
            hostname: Some("box".into()),
            ..Default::default()
        };
        let spec = convert(serde_json::json!({"Cmd": ["x"]}), &opts).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        assert!(!linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network));
        assert_eq!(spec.hostname().as_deref(), Some("box"));
        let has_resolv = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.destination() == Path::new("/etc/resolv.conf"));
        assert_eq!(has_resolv, Path::new("/etc/resolv.conf").exists());
    }
}
