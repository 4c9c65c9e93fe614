//! keel-runtime: an OCI runtime with runc's command line, built on
//! libcontainer. Each command is a function in `commands`; the binary only
//! parses flags and prints.

pub mod cgroup_prime;
pub mod cgroup_v1;
pub mod commands;
pub mod console;
pub mod container;
pub mod error;
pub mod executor;
pub mod foreground;
pub mod hooks;
pub mod log;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state_lock;

pub use container::GlobalOpts;
pub use error::{Result, RuntimeError};
