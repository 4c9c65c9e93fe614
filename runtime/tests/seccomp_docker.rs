//! Root integration test: Docker's default seccomp profile (Docker 20.10's
//! profiles/seccomp/default.json, from Debian's package, turned into the
//! OCI form the way dockerd does for its default capabilities) loads, and a
//! probe script inside the container sees exactly what it sees under runc.

mod common;

use std::process::Command;

use common::{assert_nothing_left, id, Bundle, Runtime};
use serde_json::{json, Value};

const DOCKER_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Probes whose outcome depends on the seccomp filter (and, identically for
/// both runtimes, on the capabilities above).
const PROBES: &str = r#"
mkdir -p /mnt
for p in "unshare -U true" "unshare -m true" "mount -t tmpfs none /mnt" "hostname other" \
         "chroot / true" "mknod /tmp/null c 1 3" "linux32 true" "renice -n 5 $$" \
         "ionice -c 3 true" "swapoff /nonexistent" "date -s 2001-01-01" "chown 1:1 /tmp" \
         "adjtimex -o 0" "dmesg -c" "sh -c 'echo child'" "sync" "uname -m"; do
  err=$(sh -c "$p" 2>&1 >/dev/null); rc=$?
  echo "$p => rc=$rc ${err##*: }"
done
# The filter must come without no_new_privs and leave exactly the configured
# capabilities, as under runc.
grep -E '^(NoNewPrivs|Seccomp|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status
"#;

fn docker_profile() -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/docker-seccomp-profile.sh"
    );
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("run docker-seccomp-profile.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// dockerd's conversion for an amd64 host and the default capabilities:
/// keep a rule when its `includes` are met and its `excludes` are not.
fn to_oci(p: &Value) -> Value {
    let has_cap = |c: &Value| DOCKER_CAPS.contains(&c.as_str().unwrap_or(""));
    let arch_ok = |a: &Value| a == "amd64" || a == "x86_64";
    let mut syscalls = vec![];
    for s in p["syscalls"].as_array().unwrap() {
        let inc = &s["includes"];
        let exc = &s["excludes"];
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        if !list(&inc["caps"]).iter().all(has_cap) {
            continue;
        }
        let inc_arches = list(&inc["arches"]);
        if !inc_arches.is_empty() && !inc_arches.iter().any(arch_ok) {
            continue;
        }
        if list(&exc["caps"]).iter().any(has_cap) || list(&exc["arches"]).iter().any(arch_ok) {
            continue;
        }
        let mut r = json!({"names": s["names"], "action": s["action"]});
        if let Some(a) = s["args"].as_array().filter(|a| !a.is_empty()) {
            r["args"] = Value::Array(a.clone());
        }
        if !s["errnoRet"].is_null() {
            r["errnoRet"] = s["errnoRet"].clone();
        }
        syscalls.push(r);
    }
    let mut arches = vec![];
    for m in p["archMap"].as_array().unwrap() {
        if m["architecture"] == "SCMP_ARCH_X86_64" {
            arches.push(m["architecture"].clone());
            arches.extend(
                m["subArchitectures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    let mut o =
        json!({"defaultAction": p["defaultAction"], "architectures": arches, "syscalls": syscalls});
    if !p["defaultErrnoRet"].is_null() {
        o["defaultErrnoRet"] = p["defaultErrnoRet"].clone();
    }
    o
}

fn probe_bundle(seccomp: Option<Value>) -> Bundle {
    let b = Bundle::busybox(&["sh", "-c", PROBES]);
    b.edit(|v| {
        v["root"]["readonly"] = false.into();
        v["process"]["noNewPrivileges"] = false.into();
        for set in ["bounding", "effective", "permitted"] {
            v["process"]["capabilities"][set] = json!(DOCKER_CAPS);
        }
        v["process"]["capabilities"]["ambient"] = json!([]);
        if let Some(s) = seccomp {
            v["linux"]["seccomp"] = s;
        }
    });
    b
}

fn run_with(runtime: &str, root: &std::path::Path, b: &Bundle, id: &str) -> String {
    let out = Command::new(runtime)
        .args([
            "--root",
            root.to_str().unwrap(),
            "run",
            "--bundle",
            b.path().to_str().unwrap(),
            id,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{runtime}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn docker_default_profile_behaves_as_under_runc() {
    let rt = Runtime::new();
    let profile = to_oci(&docker_profile());
    assert!(profile["syscalls"].as_array().unwrap().len() > 10);
    let b = probe_bundle(Some(profile));
    let id = id("docker-seccomp");
    let keel = run_with(common::BIN, rt.root.path(), &b, &id);
    assert_nothing_left(&rt, &id, &b);

    // The filter is really there: creating a user namespace needs no
    // capability, only Docker's profile refuses it.
    assert!(
        keel.contains("unshare -U true => rc=1 Operation not permitted"),
        "{keel}"
    );
    assert!(keel.contains("chroot / true => rc=0"), "{keel}");
    assert!(keel.contains("linux32 true => rc=0"), "{keel}");
    assert!(keel.contains("NoNewPrivs:\t0"), "{keel}");
    assert!(keel.contains("Seccomp:\t2"), "{keel}");

    let runc = which("runc").expect("runc is the yardstick here: make test installs it");
    let runc_root = tempfile::tempdir().unwrap();
    let b2 = probe_bundle(Some(to_oci(&docker_profile())));
    let theirs = run_with(&runc, runc_root.path(), &b2, &format!("{id}-runc"));
    assert_eq!(
        keel, theirs,
        "keel-runtime and runc disagree under Docker's profile"
    );
}

#[test]
fn without_a_profile_the_probes_differ() {
    // The control for the test above: the same probes with no filter.
    let rt = Runtime::new();
    let b = probe_bundle(None);
    let id = id("no-seccomp");
    let out = run_with(common::BIN, rt.root.path(), &b, &id);
    assert!(out.contains("unshare -U true => rc=0"), "{out}");
    assert_nothing_left(&rt, &id, &b);
}

fn which(name: &str) -> Option<String> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = format!("{dir}/{name}");
        if std::path::Path::new(&p).exists() {
            return Some(p);
        }
    }
    None
}
