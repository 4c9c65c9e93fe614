//! The OCI runtime config of a RUN step: `runc spec`'s defaults, with
//! Docker's choices for build containers where they differ.

use std::path::Path;

use serde_json::{json, Value};

use super::rootfs::HostFile;
use super::{Network, RunSpec};

use crate::defaults::{DEFAULT_PATH, DOCKER_CAPABILITIES, MASKED_PATHS, READONLY_PATHS};

pub(crate) fn config(step: &RunSpec, rootfs: &Path, binds: &[HostFile]) -> Value {
    let mut env = step.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(DEFAULT_PATH.to_string());
    }
    let caps = DOCKER_CAPABILITIES.to_vec();

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for b in binds {
        mounts.push(json!({
            "destination": b.destination,
            "type": "bind",
            "source": b.source,
            "options": ["rbind", "ro", "nosuid", "nodev", "noexec"],
        }));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    // Host networking is the absence of a network namespace; a new one
    // has only `lo`, which the runtime brings up.
    if step.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }

    let mut config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {
                "uid": step.uid,
                "gid": step.gid,
                "additionalGids": step.additional_gids,
            },
            "args": step.args,
            "env": env,
            "cwd": step.cwd,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            // As docker build: setuid programs (su, sudo) work in a RUN.
            "noNewPrivileges": false,
        },
        "root": {"path": rootfs, "readonly": false},
        "mounts": mounts,
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    if !step.hostname.is_empty() {
        config["hostname"] = step.hostname.clone().into();
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn step(network: Network) -> RunSpec {
        RunSpec {
            args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec!["A=1".into()],
            cwd: "/work".into(),
            uid: 1000,
            gid: 1001,
            additional_gids: vec![5, 6],
            network,
            hostname: "builder".into(),
            id: "keel-step-1".into(),
        }
    }

    fn namespaces(c: &Value) -> Vec<&str> {
        c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn host_network_has_no_netns_and_binds_the_host_files() {
        let binds = [HostFile {
            source: PathBuf::from("/etc/resolv.conf"),
            destination: "/etc/resolv.conf",
        }];
        let c = config(&step(Network::Host), Path::new("/merged"), &binds);
        assert!(!namespaces(&c).contains(&"network"));
        let m = c["mounts"].as_array().unwrap().last().unwrap();
        assert_eq!(m["destination"], "/etc/resolv.conf");
        assert_eq!(m["type"], "bind");
        assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn no_network_gets_its_own_netns() {
        let c = config(&step(Network::None), Path::new("/merged"), &[]);
        assert!(namespaces(&c).contains(&"network"));
        assert!(!c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["type"] == "bind"));
    }

    #[test]
    fn process_is_the_steps() {
        let c = config(&step(Network::None), Path::new("/merged"), &[]);
        let p = &c["process"];
        assert_eq!(p["terminal"], false);
        assert_eq!(
            p["user"],
            json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 6]})
        );
        assert_eq!(p["cwd"], "/work");
        assert_eq!(p["env"], json!(["A=1", DEFAULT_PATH]));
        assert_eq!(p["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert!(p["capabilities"].get("ambient").is_none());
        assert_eq!(c["root"], json!({"path": "/merged", "readonly": false}));
        assert_eq!(c["hostname"], "builder");
    }

    #[test]
    fn a_given_path_is_not_replaced() {
        let mut s = step(Network::None);
        s.env = vec!["PATH=/opt/bin".into()];
        let c = config(&s, Path::new("/merged"), &[]);
        assert_eq!(c["process"]["env"], json!(["PATH=/opt/bin"]));
    }

    #[test]
    fn config_is_a_valid_oci_spec() {
        let c = config(&step(Network::Host), Path::new("/merged"), &[]);
        let spec: oci_spec::runtime::Spec = serde_json::from_value(c).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("builder"));
    }
}
