//! Loading the filter without `no_new_privs`, as runc does.
//!
//! The kernel lets a process load a seccomp filter only if it has
//! `no_new_privs` set or holds CAP_SYS_ADMIN. runc loads the filter before it
//! drops the container's capabilities; libcontainer (built without
//! libseccomp) gives us no hook before that point, only the executor, which
//! runs after. So when the container is not meant to have CAP_SYS_ADMIN and
//! not meant to have `no_new_privs`, the spec handed to libcontainer keeps
//! CAP_SYS_ADMIN in the *effective and permitted* sets only (never in the
//! bounding set, so no `execve` can regain it), the executor loads the filter
//! with it, and then lowers effective, permitted and inheritable to exactly
//! what the config asked for, right before `execve`.

use caps::{CapSet, Capability, CapsHashSet};
use libcontainer::oci_spec::runtime::{Capability as SpecCapability, Process};
use serde_json::Value;

const SYS_ADMIN: &str = "CAP_SYS_ADMIN";

/// The capability sets the container's process must end with.
#[derive(Debug, Clone, Default)]
pub struct CapsAfterSeccomp {
    effective: Vec<String>,
    permitted: Vec<String>,
    inheritable: Vec<String>,
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the process needs the window: it has a filter to load, asks for
/// capabilities (without them libcontainer drops nothing), does not ask for
/// `no_new_privs`, and would lack CAP_SYS_ADMIN.
pub fn needs_window(process: &Process, filters: usize) -> bool {
    if filters == 0 || process.no_new_privileges() == Some(true) {
        return false;
    }
    match process.capabilities() {
        None => false,
        Some(c) => !c
            .effective()
            .as_ref()
            .is_some_and(|e| e.contains(&SpecCapability::SysAdmin)),
    }
}

/// Adds CAP_SYS_ADMIN to the effective and permitted sets of a process
/// object (as JSON) and returns the sets to restore afterwards.
pub fn widen(process: &mut Value) -> CapsAfterSeccomp {
    let caps = &mut process["capabilities"];
    let keep = CapsAfterSeccomp {
        effective: names(&caps["effective"]),
        permitted: names(&caps["permitted"]),
        inheritable: names(&caps["inheritable"]),
    };
    for set in ["effective", "permitted"] {
        let mut v = names(&caps[set]);
        if !v.iter().any(|c| c == SYS_ADMIN) {
            v.push(SYS_ADMIN.to_string());
        }
        caps[set] = Value::from(v);
    }
    keep
}

fn to_set(list: &[String]) -> CapsHashSet {
    list.iter()
        .filter_map(|n| n.parse::<Capability>().ok())
        .collect()
}

impl CapsAfterSeccomp {
    /// Lowers the calling thread's capabilities to the configured sets.
    /// Effective first: permitted may only shrink below it once it is gone.
    pub fn restore(&self) -> Result<(), caps::errors::CapsError> {
        caps::set(None, CapSet::Effective, &to_set(&self.effective))?;
        caps::set(None, CapSet::Inheritable, &to_set(&self.inheritable))?;
        caps::set(None, CapSet::Permitted, &to_set(&self.permitted))
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    fn process(v: Value) -> Process {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn window_only_when_needed() {
        let base = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"effective": ["CAP_KILL"], "bounding": ["CAP_KILL"]}});
        assert!(needs_window(&process(base.clone()), 1));
        assert!(!needs_window(&process(base.clone()), 0), "no filter");
        let mut nnp = base.clone();
        nnp["noNewPrivileges"] = true.into();
        assert!(
            !needs_window(&process(nnp), 1),
            "no_new_privs wanted anyway"
        );
        let mut admin = base.clone();
        admin["capabilities"]["effective"] = serde_json::json!(["CAP_SYS_ADMIN"]);
        assert!(!needs_window(&process(admin), 1), "already privileged");
        let mut nocaps = base;
        nocaps.as_object_mut().unwrap().remove("capabilities");
        assert!(
            !needs_window(&process(nocaps), 1),
            "libcontainer drops nothing"
        );
    }

    #[test]
    fn widen_touches_effective_and_permitted_only() {
        let mut p = serde_json::json!({"capabilities": {
            "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "bounding": ["CAP_KILL"],
            "inheritable": ["CAP_KILL"]}});
        let keep = widen(&mut p);
        assert_eq!(keep.effective, ["CAP_KILL"]);
        assert_eq!(
            p["capabilities"]["effective"],
            serde_json::json!(["CAP_KILL", "CAP_SYS_ADMIN"])
        );
        assert_eq!(
            p["capabilities"]["permitted"],
            serde_json::json!(["CAP_KILL", "CAP_SYS_ADMIN"])
        );
        assert_eq!(
            p["capabilities"]["bounding"],
            serde_json::json!(["CAP_KILL"])
        );
        assert_eq!(
            p["capabilities"]["inheritable"],
            serde_json::json!(["CAP_KILL"])
        );
    }
}
