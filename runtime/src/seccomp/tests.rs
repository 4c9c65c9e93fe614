//! Behaviour, not bytes: each test installs a compiled profile in a forked
//! child and checks what its syscalls then do. (Root is not needed for that:
//! the child sets no_new_privs itself when it lacks CAP_SYS_ADMIN.)

use libcontainer::oci_spec::runtime::LinuxSeccomp;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde_json::json;

use super::*;

fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("test profile parses")
}

/// Runs `probe` in a child with the filter installed; returns the child's
/// exit code, or 128+signal.
fn in_child(filter: &CompiledSeccomp, probe: fn() -> i32) -> i32 {
    // SAFETY: the child only installs the filter, makes raw syscalls and
    // _exits; no locks are taken after fork.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            let code = match filter.install() {
                Ok(()) => probe(),
                Err(_) => 99,
            };
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => match waitpid(child, None).expect("waitpid") {
            WaitStatus::Exited(_, c) => c,
            WaitStatus::Signaled(_, s, _) => 128 + s as i32,
            other => panic!("unexpected {other:?}"),
        },
    }
}

/// errno of a raw getppid-free syscall, or 0 on success.
fn errno_of(r: libc::c_long) -> i32 {
    if r < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
    } else {
        0
    }
}

fn probe_mkdirat() -> i32 {
    let r = unsafe {
        libc::syscall(
            libc::SYS_mkdirat,
            libc::AT_FDCWD,
            c"/proc/nonexistent/x".as_ptr(),
            0o700,
        )
    };
    errno_of(r)
}

fn probe_getpid() -> i32 {
    let r = unsafe { libc::syscall(libc::SYS_getpid) };
    if r > 0 {
        0
    } else {
        1
    }
}

fn probe_personality_0x8() -> i32 {
    // PER_LINUX32 is 0x0008; the masked rule below keys on it.
    errno_of(unsafe { libc::syscall(libc::SYS_personality, 0x0008 as libc::c_ulong) })
}

fn probe_personality_query() -> i32 {
    errno_of(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffff as libc::c_ulong) })
}

fn probe_dup3_fd_7() -> i32 {
    errno_of(unsafe { libc::syscall(libc::SYS_dup3, 0, 7, 0) })
}

fn probe_dup3_fd_9() -> i32 {
    errno_of(unsafe { libc::syscall(libc::SYS_dup3, 0, 9, 0) })
}

#[test]
fn errno_rule_with_default_allow() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    })))
    .unwrap();
    assert_eq!(f.filter_count(), 1, "default ALLOW needs no default filter");
    assert_eq!(in_child(&f, probe_mkdirat), libc::EPERM);
    assert_eq!(in_child(&f, probe_getpid), 0);
}

#[test]
fn allow_list_with_default_errno() {
    // Everything a child needs to run and exit is allowed; mkdirat is not.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["getpid", "exit", "exit_group", "seccomp", "prctl", "personality"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_mkdirat), libc::ENOSYS);
    assert_eq!(in_child(&f, probe_getpid), 0);
}

#[test]
fn kill_default_with_log_rule() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_KILL_PROCESS",
        "syscalls": [
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["exit", "exit_group", "seccomp", "prctl"], "action": "SCMP_ACT_ALLOW"}
        ]
    })))
    .unwrap();
    assert_eq!(f.filter_count(), 2);
    assert_eq!(in_child(&f, probe_getpid), 0, "LOG lets the call through");
    assert_eq!(
        in_child(&f, probe_mkdirat),
        128 + libc::SIGSYS,
        "default kills"
    );
}

#[test]
fn kill_thread_and_trap_end_the_child_with_sigsys() {
    for act in ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"] {
        let f = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdirat"], "action": act}]
        })))
        .unwrap();
        assert_eq!(in_child(&f, probe_mkdirat), 128 + libc::SIGSYS, "{act}");
        assert_eq!(in_child(&f, probe_getpid), 0, "{act}");
    }
}

#[test]
fn two_errno_values_in_one_profile() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22}
        ]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_mkdirat), libc::EACCES);
    assert_eq!(in_child(&f, probe_personality_query), libc::EINVAL);
}

#[test]
fn masked_eq_uses_runcs_value_and_value_two() {
    // (arg0 & 0xff) == 0x08 → ERRNO; other personalities pass.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]}]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_personality_0x8), libc::EPERM);
    assert_eq!(in_child(&f, probe_personality_query), 0);
}

#[test]
fn conditions_on_one_argument_are_ored() {
    // runc: two conditions on arg 1 are two rules: newfd == 7 OR newfd == 9.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_dup3_fd_7), libc::EPERM);
    assert_eq!(in_child(&f, probe_dup3_fd_9), libc::EPERM);
}

#[test]
fn conditions_on_different_arguments_are_anded() {
    // oldfd == 0 AND newfd == 7: dup3(0, 7) refused, dup3(0, 9) allowed.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                     {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_dup3_fd_7), libc::EPERM);
    assert_eq!(in_child(&f, probe_dup3_fd_9), 0);
}

#[test]
fn allow_rule_with_args_under_errno_default() {
    // Docker's shape: personality allowed only for some values.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["getpid", "exit", "exit_group", "seccomp", "prctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
        ]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_personality_0x8), 0);
    assert_eq!(in_child(&f, probe_personality_query), libc::EPERM);
}

#[test]
fn notify_is_refused_naming_the_field() {
    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                     {"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"}]
    })))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("syscalls[1].action") && err.contains("SCMP_ACT_NOTIFY"),
        "{err}"
    );
    let err = compile(&profile(json!({"defaultAction": "SCMP_ACT_NOTIFY"})))
        .unwrap_err()
        .to_string();
    assert!(err.contains("defaultAction"), "{err}");
    let err = compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/x.sock"}),
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("listenerPath"), "{err}");
}

#[test]
fn bad_arguments_are_refused_naming_the_field() {
    let err = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["dup3"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 6, "value": 7, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("syscalls[0].args[0]") && err.contains("index 6"),
        "{err}"
    );
}

#[test]
fn masked_eq_without_value_two_compares_with_zero() {
    // Docker's clone rule: allowed only when no namespace flag is set.
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 0xff00, "op": "SCMP_CMP_MASKED_EQ"}]}]
    })))
    .unwrap();
    // 0x0008 & 0xff00 == 0 → refused; 0xffffffff & 0xff00 != 0 → allowed.
    assert_eq!(in_child(&f, probe_personality_0x8), libc::EPERM);
    assert_eq!(in_child(&f, probe_personality_query), 0);
}

#[test]
fn unknown_syscalls_are_skipped() {
    let f = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["no_such_syscall", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    assert_eq!(in_child(&f, probe_mkdirat), libc::EPERM);
}

#[test]
fn every_listed_syscall_name_is_unique() {
    let mut names: Vec<&str> = syscalls::SYSCALLS.iter().map(|(n, _)| *n).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(n, names.len());
    assert!(syscall_number("read").is_some() && syscall_number("clone3").is_some());
}

#[test]
fn unconditional_rule_wins_over_conditional_ones_for_a_syscall() {
    let mut m = RuleMap::new();
    let r = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::Eq,
        1,
    )
    .unwrap()])
    .unwrap();
    add(&mut m, 1, Some(vec![r.clone()]));
    add(&mut m, 1, None);
    add(&mut m, 1, Some(vec![r]));
    assert!(m[&1].is_none());
}
