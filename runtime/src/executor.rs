//! What runs in the container process right before `execve`: joining a fresh
//! session keyring and loading the seccomp filter, then the default executor.
//! Both are done here because libcontainer (built without libseccomp) does
//! neither, and this is the last point at which the process is still ours.

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};

use crate::seccomp::privilege::CapsAfterSeccomp;
use crate::seccomp::CompiledSeccomp;

#[derive(Clone, Default)]
pub struct KeelExecutor {
    /// Compiled in the runtime before any process exists, so a bad profile
    /// fails `create` with nothing to clean up.
    pub seccomp: Option<CompiledSeccomp>,
    /// `_ses.<id>`: the session keyring runc gives each container so that
    /// containers do not share the host's (unless `--no-new-keyring`).
    pub keyring: Option<String>,
    /// Set when the filter is loaded with a CAP_SYS_ADMIN kept only for
    /// that purpose: the capabilities to lower to afterwards (see
    /// `seccomp::privilege`).
    pub caps_after_seccomp: Option<CapsAfterSeccomp>,
}

const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;

fn join_session_keyring(name: &str) {
    let Ok(cname) = std::ffi::CString::new(name) else {
        return;
    };
    // SAFETY: keyctl with a valid NUL-terminated name; no memory is shared.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            cname.as_ptr(),
        )
    };
    if r < 0 {
        // runc too carries on where the kernel has no keyrings (ENOSYS) or
        // refuses them in this user namespace.
        tracing::debug!(
            "joining session keyring {name}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn set_console_size(rows: u16, cols: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize struct; stdin is the pty slave.
    if unsafe { libc::ioctl(0, libc::TIOCSWINSZ, &ws) } != 0 {
        tracing::debug!("setting console size: {}", std::io::Error::last_os_error());
    }
}

impl Executor for KeelExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(name) = &self.keyring {
            join_session_keyring(name);
        }
        if let Some(filter) = &self.seccomp {
            filter
                .install()
                .map_err(|e| ExecutorError::Other(format!("loading seccomp filter: {e}")))?;
        }
        if let Some(caps) = &self.caps_after_seccomp {
            caps.restore().map_err(|e| {
                ExecutorError::Other(format!("lowering capabilities after seccomp: {e}"))
            })?;
        }
        DefaultExecutor {}.exec(spec)
    }

    /// Runs in the container's init before it waits for `start`: the last
    /// point before start, so it is also where `process.consoleSize` is
    /// applied to the pty (libcontainer does not; runc does it at create).
    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        if let Some(p) = spec.process() {
            if let (Some(true), Some(size)) = (p.terminal(), p.console_size()) {
                set_console_size(size.height() as u16, size.width() as u16);
            }
        }
        DefaultExecutor {}.validate(spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        DefaultExecutor {}.setup_envs(envs)
    }
}
