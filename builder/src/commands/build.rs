//! `keel-build build`: docker build's flags; the image id on stdout with -q.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use keel_builder::build::guard::spawn_guardian;
use keel_builder::build::{build, BuildOptions};
use keel_builder::exec::Network;
use keel_builder::progress::{Mode, Progress};
use keel_builder::store::Store;

use crate::cli::{BuildArgs, NetworkArg, ProgressArg};

pub fn enter_private_mount_namespace() -> Result<()> {
    use nix::mount::{mount, MsFlags};
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .context("unshare(CLONE_NEWNS): keel-build needs root to mount overlays")?;
    // Nothing we mount propagates to the host, and everything we mount
    // disappears with the namespace if we are killed (kill -9 included).
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("making / a slave mount in keel-build's namespace")?;
    Ok(())
}

/// Forks the process that cleans up after this build if it is killed
/// (`keel_builder::build::guard`). A build without one still works, only
/// that cleanup is lost: so a failure is a warning.
pub fn start_guardian(root: &Path, runtime: &Path) {
    // A runtime that cannot be found fails the build in `run`, with the message.
    let Ok(runtime) = find_runtime(runtime) else {
        return;
    };
    if let Err(e) = spawn_guardian(root, &runtime) {
        tracing::warn!("{e}; a killed build will leave its RUN containers behind");
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    // One atomic store: async-signal-safe.
    keel_builder::exec::cancel_all();
}

fn handle_signals() -> Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        unsafe { sigaction(s, &action) }.with_context(|| format!("installing a {s} handler"))?;
    }
    Ok(())
}

/// `keel-runtime` on PATH, else beside this binary (a cargo target dir).
/// Checked now, not at the first RUN: a build must not run its other steps
/// only to fail there.
fn find_runtime(given: &Path) -> Result<PathBuf> {
    keel_runtime_client::locate(given).ok_or_else(|| {
        anyhow::anyhow!(
            "runtime \"{}\" not found (as a path, on PATH or beside keel-build); give --runtime PATH",
            given.display()
        )
    })
}

fn parse_build_args(raw: &[String]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for a in raw {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => out.push((k.to_string(), v.to_string())),
            Some(_) => bail!("--build-arg \"{a}\": the name is empty"),
            // docker: `--build-arg NAME` takes NAME from the environment.
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.push((a.clone(), v));
                }
            }
        }
    }
    Ok(out)
}

pub fn run(store: &Store, a: BuildArgs) -> Result<u8> {
    handle_signals()?;
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => Some(
            s.parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH=\"{s}\": want seconds since 1970"))?,
        ),
        _ => None,
    };
    let mode = if a.quiet {
        Mode::Quiet
    } else {
        match a.progress {
            ProgressArg::Auto => Mode::Auto,
            ProgressArg::Plain => Mode::Plain,
            ProgressArg::Quiet => Mode::Quiet,
        }
    };
    let opts = BuildOptions {
        context: a.context.clone(),
        dockerfile: a.file.clone(),
        tags: a.tags.clone(),
        build_args: parse_build_args(&a.build_args)?,
        target: a.target.clone(),
        no_cache: a.no_cache,
        runtime: find_runtime(&a.runtime)?,
        network: match a.network {
            NetworkArg::Host => Network::Host,
            NetworkArg::None => Network::None,
        },
        source_date_epoch,
    };
    let mut progress = Progress::new(mode);
    let out = match build(store, &opts, &mut progress) {
        Ok(o) => o,
        Err(keel_builder::build::BuildError::Cancelled) => {
            eprintln!("keel-build: build cancelled");
            return Ok(130);
        }
        Err(e) => return Err(e.into()),
    };
    let id = out.image.config_digest.to_string();
    if mode == Mode::Quiet {
        crate::commands::print(&format!("{id}\n"))?;
    } else {
        let names = if out.image.names.is_empty() {
            String::new()
        } else {
            format!(", tagged {}", out.image.names.join(", "))
        };
        progress.finish(&format!(
            "built {id}{names} ({} steps run, {} cached)",
            out.executed, out.cached
        ));
    }
    Ok(0)
}
