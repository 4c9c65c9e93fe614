//! Reading a bundle's `config.json` with errors that name the file, line and
//! field, and checking what the kernel would otherwise report much later and
//! much less clearly (a missing rootfs, an empty `process.args`).

use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::Spec;

use crate::error::{Result, RuntimeError};

pub const CONFIG_FILE: &str = "config.json";

/// Loads and checks `BUNDLE/config.json`. The rootfs path in the returned spec
/// is left as written; libcontainer resolves it against the bundle.
pub fn load_bundle_config(bundle: &Path) -> Result<Spec> {
    let path = bundle.join(CONFIG_FILE);
    let data = std::fs::read(&path).map_err(|source| RuntimeError::ReadConfig {
        path: path.clone(),
        source,
    })?;
    let spec: Spec = serde_json::from_slice(&data).map_err(|e| RuntimeError::InvalidConfig {
        path: path.clone(),
        message: describe_json_error(&e),
    })?;
    check_spec(&spec, bundle, &path)?;
    Ok(spec)
}

/// serde's messages already name the field ("missing field `root`", "invalid
/// type: string, expected u32"); add where it is in the file.
fn describe_json_error(e: &serde_json::Error) -> String {
    if e.line() == 0 {
        e.to_string()
    } else {
        // serde_json appends " at line L column C" itself for data errors.
        let s = e.to_string();
        if s.contains(" at line ") {
            s
        } else {
            format!("{s} at line {} column {}", e.line(), e.column())
        }
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidConfig {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn check_spec(spec: &Spec, bundle: &Path, path: &Path) -> Result<()> {
    if !spec.version().starts_with("1.") {
        return Err(invalid(
            path,
            format!(
                "ociVersion: \"{}\" is not supported (want 1.x)",
                spec.version()
            ),
        ));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid(path, "root: missing (root.path names the rootfs)"))?;
    let rootfs = rootfs_path(bundle, root.path());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RuntimeError::Rootfs {
                path: rootfs,
                config: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            })
        }
        Err(source) => {
            return Err(RuntimeError::Rootfs {
                path: rootfs,
                config: path.to_path_buf(),
                source,
            })
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid(path, "process: missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(invalid(path, "process.args: must name the program to run")),
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            path,
            format!(
                "process.cwd: \"{}\" is not an absolute path",
                process.cwd().display()
            ),
        ));
    }
    if spec.linux().is_none() {
        return Err(invalid(path, "linux: missing"));
    }
    Ok(())
}

pub fn rootfs_path(bundle: &Path, root: &Path) -> PathBuf {
    if root.is_absolute() {
        root.to_path_buf()
    } else {
        bundle.join(root)
    }
}

/// runc's `spec` output, so `keel-runtime spec` then editing `args` works
/// the way people are used to.
pub fn default_spec_json(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut namespaces = vec![
        serde_json::json!({"type": "pid"}),
        serde_json::json!({"type": "network"}),
        serde_json::json!({"type": "ipc"}),
        serde_json::json!({"type": "uts"}),
        serde_json::json!({"type": "mount"}),
        serde_json::json!({"type": "cgroup"}),
    ];
    let mut mounts = vec![
        serde_json::json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        serde_json::json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        serde_json::json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        serde_json::json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        serde_json::json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"]}),
        serde_json::json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"]}),
        serde_json::json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let mut linux = serde_json::json!({
        "resources": {"devices": [{"allow": false, "access": "rwm"}]},
        "namespaces": [],
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
            "/proc/scsi"
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
        ]
    });
    if rootless {
        // As runc: a user namespace mapping the caller to root, no network
        // namespace (it could not be configured), no cgroup writes, and
        // sysfs bind-mounted since it cannot be mounted fresh.
        namespaces.retain(|n| n["type"] != "network");
        namespaces.push(serde_json::json!({"type": "user"}));
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        linux.as_object_mut().map(|o| o.remove("resources"));
        for m in mounts.iter_mut() {
            if m["type"] == "devpts" {
                m["options"] = serde_json::json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
            if m["type"] == "sysfs" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
        mounts.retain(|m| m["type"] != "mqueue" && m["type"] != "cgroup");
    }
    linux["namespaces"] = serde_json::Value::Array(namespaces);
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": mounts,
        "linux": linux
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str, make_rootfs: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), config).unwrap();
        if make_rootfs {
            std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        }
        dir
    }

    #[test]
    fn default_spec_parses_as_an_oci_spec() {
        for rootless in [false, true] {
            let v = default_spec_json(rootless);
            let spec: Spec = serde_json::from_value(v).unwrap();
            assert_eq!(spec.root().as_ref().unwrap().path(), Path::new("rootfs"));
        }
    }

    #[test]
    fn default_spec_loads_from_a_bundle() {
        let d = bundle_with(&default_spec_json(false).to_string(), true);
        load_bundle_config(d.path()).unwrap();
    }

    #[test]
    fn missing_config_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn malformed_config_names_the_line() {
        let d = bundle_with(
            "{\n \"ociVersion\": \"1.0.2\",\n \"root\": {\"path\": 5}\n}",
            true,
        );
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn wrong_field_type_names_the_field() {
        let mut v = default_spec_json(false);
        v["process"]["user"]["uid"] = serde_json::json!("root");
        let d = bundle_with(&v.to_string(), true);
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn missing_rootfs_is_named() {
        let d = bundle_with(&default_spec_json(false).to_string(), false);
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("rootfs"), "{err}");
        assert!(err.contains("root.path"), "{err}");
    }

    #[test]
    fn empty_args_and_relative_cwd_are_refused() {
        let mut v = default_spec_json(false);
        v["process"]["args"] = serde_json::json!([]);
        let d = bundle_with(&v.to_string(), true);
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("process.args"), "{err}");

        let mut v = default_spec_json(false);
        v["process"]["cwd"] = serde_json::json!("relative");
        let d = bundle_with(&v.to_string(), true);
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("process.cwd"), "{err}");
    }

    #[test]
    fn unsupported_version_is_refused() {
        let mut v = default_spec_json(false);
        v["ociVersion"] = serde_json::json!("0.5.0");
        let d = bundle_with(&v.to_string(), true);
        let err = load_bundle_config(d.path()).unwrap_err().to_string();
        assert!(err.contains("ociVersion"), "{err}");
    }
}
