//! OCI `linux.seccomp` → classic BPF, compiled with `seccompiler` (no
//! libseccomp), and installed right before the container's `execve`.
//!
//! # Several actions in one profile
//! A seccompiler filter has one action for "a rule matched" and one for
//! "nothing matched". An OCI profile has a default action plus any number of
//! rule actions, so it becomes a *stack* of filters and the kernel's rule for
//! stacks does the rest: every installed filter runs and the result with the
//! highest precedence wins (KILL_PROCESS > KILL_THREAD > TRAP > ERRNO >
//! USER_NOTIF > TRACE > LOG > ALLOW).
//! - the *default* filter answers ALLOW for every syscall that any rule names
//!   (under that rule's argument conditions) and the default action otherwise;
//! - one filter per distinct non-ALLOW rule action answers that action for
//!   its rules and ALLOW otherwise.
//!
//! A syscall no rule matches gets the default action; one that an ALLOW rule
//! matches is allowed; one that an ERRNO/KILL/TRAP/TRACE/LOG rule matches gets
//! that action. Where rules with *different* non-ALLOW actions match the same
//! call, the kernel's precedence decides (libseccomp would refuse to load
//! such a profile or pick by rule order; no profile in use relies on that).
//!
//! # Arguments
//! runc's meaning is kept: conditions of one rule are ANDed, except when all
//! of them name the same argument, then they are ORed (libseccomp cannot AND
//! two conditions on one argument, and runc splits them into separate rules).
//! `SCMP_CMP_MASKED_EQ` takes `value` as the mask and `valueTwo` as the datum:
//! `(arg & value) == valueTwo`. Comparisons are on the full 64 bits.
//!
//! # Architectures
//! Filters are built for the native architecture only: seccompiler checks
//! `seccomp_data.arch` and kills the process for any other (x86 via `int 0x80`
//! on x86_64). runc also applies the profile's rules to the secondary
//! architectures it lists (SCMP_ARCH_X86, SCMP_ARCH_X32); under keel-runtime
//! 32-bit syscalls are refused outright. x32 syscall numbers have bit 30 set
//! and match no rule, so they get the default action.
//!
//! # Refused
//! `SCMP_ACT_NOTIFY` and `listenerPath`: user notification needs a listener
//! the runtime would have to hand over, which keel-runtime does not do.

pub mod privilege;
mod syscalls;

use std::collections::BTreeMap;

use libcontainer::oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{field}: SCMP_ACT_NOTIFY is not supported by keel-runtime")]
    Notify { field: String },
    #[error("listenerPath: seccomp user notification is not supported by keel-runtime")]
    Listener,
    #[error("{field}: argument index {index} is out of range (0-5)")]
    ArgIndex { field: String, index: usize },
    #[error(
        "{field}: SCMP_CMP_MASKED_EQ needs valueTwo (the value the masked argument must equal)"
    )]
    MaskedEqWithoutValueTwo { field: String },
    #[error("{field}: {source}")]
    Backend {
        field: String,
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("architecture {0} has no seccomp support in keel-runtime")]
    Arch(&'static str),
    #[error("loading seccomp filter {index} of {count}: {source}")]
    Install {
        index: usize,
        count: usize,
        #[source]
        source: std::io::Error,
    },
}

/// The filters of one profile, in the order they are installed.
#[derive(Debug, Clone, Default)]
pub struct CompiledSeccomp {
    filters: Vec<BpfProgram>,
    flags: libc::c_ulong,
}

fn native_arch() -> Result<TargetArch, SeccompError> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err(SeccompError::Arch(std::env::consts::ARCH))
    }
}

/// A rule action, comparable so that rules can be grouped by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Allow,
    Errno(u32),
    KillThread,
    KillProcess,
    Trap,
    Trace(u32),
    Log,
}

impl From<Action> for SeccompAction {
    fn from(a: Action) -> Self {
        match a {
            Action::Allow => SeccompAction::Allow,
            Action::Errno(e) => SeccompAction::Errno(e),
            Action::KillThread => SeccompAction::KillThread,
            Action::KillProcess => SeccompAction::KillProcess,
            Action::Trap => SeccompAction::Trap,
            Action::Trace(e) => SeccompAction::Trace(e),
            Action::Log => SeccompAction::Log,
        }
    }
}

fn action(a: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<Action, SeccompError> {
    // runc's default for ERRNO and TRACE without errnoRet is EPERM.
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActErrno => Action::Errno(errno),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            Action::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActTrace => Action::Trace(errno),
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Notify {
                field: field.to_string(),
            })
        }
    })
}

// c_long is i64 on the architectures built for, not by definition.
#[allow(clippy::unnecessary_cast)]
fn syscall_number(name: &str) -> Option<i64> {
    syscalls::SYSCALLS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr as i64)
}

fn condition(arg: &LinuxSeccompArg, field: &str) -> Result<SeccompCondition, SeccompError> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i <= 5)
        .ok_or_else(|| SeccompError::ArgIndex {
            field: field.to_string(),
            index: arg.index(),
        })?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        // An absent valueTwo is 0, as in Go: Docker's clone rule relies on
        // it ("none of these namespace flags").
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value).map_err(|source| {
        SeccompError::Backend {
            field: field.to_string(),
            source,
        }
    })
}

/// The seccompiler rules for one OCI syscall entry: `None` means "whatever
/// the arguments" (seccompiler's empty chain).
fn rules(sc: &LinuxSyscall, field: &str) -> Result<Option<Vec<SeccompRule>>, SeccompError> {
    let args = match sc.args() {
        Some(a) if !a.is_empty() => a,
        _ => return Ok(None),
    };
    let conds: Vec<SeccompCondition> = args
        .iter()
        .enumerate()
        .map(|(i, a)| condition(a, &format!("{field}.args[{i}]")))
        .collect::<Result<_, _>>()?;
    let backend = |source| SeccompError::Backend {
        field: field.to_string(),
        source,
    };
    let same_index = args.len() > 1 && args.iter().all(|a| a.index() == args[0].index());
    if same_index {
        conds
            .into_iter()
            .map(|c| SeccompRule::new(vec![c]).map_err(backend))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    } else {
        Ok(Some(vec![SeccompRule::new(conds).map_err(backend)?]))
    }
}

/// Per syscall number: `None` once any entry matches it unconditionally.
type RuleMap = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add(map: &mut RuleMap, nr: i64, r: Option<Vec<SeccompRule>>) {
    match (map.get_mut(&nr), r) {
        (Some(slot), Some(mut new)) => {
            if let Some(existing) = slot {
                existing.append(&mut new);
            }
        }
        (Some(slot), None) => *slot = None,
        (None, r) => {
            map.insert(nr, r);
        }
    }
}

fn build(
    map: RuleMap,
    mismatch: Action,
    matched: Action,
    arch: TargetArch,
) -> Result<BpfProgram, SeccompError> {
    let rules: BTreeMap<i64, Vec<SeccompRule>> = map
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let backend = |source| SeccompError::Backend {
        field: "linux.seccomp".into(),
        source,
    };
    let filter =
        SeccompFilter::new(rules, mismatch.into(), matched.into(), arch).map_err(backend)?;
    BpfProgram::try_from(filter).map_err(backend)
}

/// Compiles a profile. Unknown syscall names are skipped with a warning, as
/// runc does (profiles name syscalls of newer kernels and other arches).
pub fn compile(profile: &LinuxSeccomp) -> Result<CompiledSeccomp, SeccompError> {
    if profile.listener_path().is_some() {
        return Err(SeccompError::Listener);
    }
    let arch = native_arch()?;
    let default = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "defaultAction",
    )?;
    let mut unknown: Vec<&str> = Vec::new();
    let mut named = RuleMap::new();
    let mut by_action: BTreeMap<Action, RuleMap> = BTreeMap::new();
    for (i, sc) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("syscalls[{i}]");
        let act = action(sc.action(), sc.errno_ret(), &format!("{field}.action"))?;
        let r = rules(sc, &field)?;
        for name in sc.names() {
            let Some(nr) = syscall_number(name) else {
                unknown.push(name);
                continue;
            };
            add(&mut named, nr, r.clone());
            if act != Action::Allow {
                add(by_action.entry(act).or_default(), nr, r.clone());
            }
        }
    }
    if !unknown.is_empty() {
        unknown.sort_unstable();
        unknown.dedup();
        tracing::warn!(
            "seccomp: {} syscall name(s) unknown on {} skipped: {}",
            unknown.len(),
            std::env::consts::ARCH,
            unknown.join(" ")
        );
    }
    // The default filter goes in last: once it is loaded, a profile that
    // does not allow seccomp(2) itself would refuse the filters after it.
    let mut filters = Vec::new();
    for (act, map) in by_action {
        if !map.is_empty() {
            filters.push(build(map, Action::Allow, act, arch)?);
        }
    }
    if default != Action::Allow {
        filters.push(build(named, default, Action::Allow, arch)?);
    }
    let mut flags: libc::c_ulong = 0;
    for f in profile.flags().iter().flatten() {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // Only meaningful with a notification listener, which is refused.
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    Ok(CompiledSeccomp { filters, flags })
}

impl CompiledSeccomp {
    pub fn filter_count(&self) -> usize {
        self.filters.len()
    }

    /// Installs the filters in the calling thread. It is called after
    /// libcontainer dropped the capabilities, where runc would have loaded
    /// the filter before dropping them: so it is first tried without
    /// `no_new_privs` (which works while CAP_SYS_ADMIN is held), and only
    /// when the kernel refuses (EACCES) is `no_new_privs` set.
    pub fn install(&self) -> Result<(), SeccompError> {
        let count = self.filters.len();
        for (index, prog) in self.filters.iter().enumerate() {
            if prog.is_empty() {
                continue;
            }
            let fprog = libc::sock_fprog {
                len: prog.len() as libc::c_ushort,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            let load = || {
                // SAFETY: fprog points at `prog`, which outlives the call;
                // seccompiler's sock_filter has the kernel's layout.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        self.flags,
                        &fprog as *const libc::sock_fprog,
                    )
                };
                if r < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            match load() {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    // SAFETY: prctl with integer arguments.
                    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                    load().map_err(|source| SeccompError::Install {
                        index: index + 1,
                        count,
                        source,
                    })?;
                }
                Err(source) => {
                    return Err(SeccompError::Install {
                        index: index + 1,
                        count,
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
