//! One function per runc command. Each takes the global options and its own
//! option struct and returns a typed error; the binary only parses flags.

pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use libcgroups::common::{AnyCgroupManager, CgroupConfig};
use libcontainer::container::Container;

use crate::error::{Result, RuntimeError};

/// The cgroup manager of an existing container.
pub(crate) fn cgroup_manager(c: &Container) -> Result<AnyCgroupManager> {
    let cfg = c.spec().map_err(|e| {
        RuntimeError::container(format!("loading config of container {}", c.id()), e)
    })?;
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: cfg.cgroup_path,
        systemd_cgroup: c.systemd(),
        container_name: c.id().to_string(),
    })
    .map_err(|e| RuntimeError::Cgroup {
        what: format!("cgroup of container {}", c.id()),
        message: crate::error::chain(&e),
    })
}
